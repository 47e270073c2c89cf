"""Which API host names a tenant may give a cluster.

The platform serves every cluster's API on its ingress, routed by host name (TLS passthrough).
A host that another cluster already has, that names an address (the metadata service,
loopback), a name internal to the platform, the portal itself, or a name under the platform's
domain (where every tenant's default names live: ``kubernetes-<cluster>.<tenant>.<root>``)
would take traffic meant for someone else. ``check_api_host`` refuses those, in words that say
why and never who holds a name; ``clusters.actions.check_spec`` runs it, so the create form, the
API and the actions refuse alike. The unique index on live clusters' hosts backs the "already
in use" rule against two creates racing.

The same domains bound the hosts Ingress NGINX routes to a cluster (``addons.ingressNginx
.hosts``): since v1.5 the platform's admission policy lets a tenant's Ingress name only hosts
inside the tenant's own domain (``<slug>.<root>``) or outside the platform's root domain, and
never a wildcard. ``check_ingress_hosts`` applies that rule before anything is sent, on every
release (``clusters.spec_rules`` runs it).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Iterator
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.translation import gettext as _

from clusters.models import Cluster
from cozystack.rules import FieldError, is_dns_name
from cozystack.specs import ClusterSpec
from portal.models import Tenant

FIELD = "host"
INGRESS_HOSTS_FIELD = "addons.ingressNginx.hosts"
HOST_IN_USE = "already_exists"
# Last labels that never resolve in public DNS: loopback, multicast DNS, cluster-internal
# service names, cloud-internal names, reverse lookups and reserved test names.
_INTERNAL_SUFFIXES = ("localhost", "local", "localdomain", "internal", "intranet", "lan",
                      "home", "corp", "svc", "arpa", "invalid")
_HEX_NUMBER = re.compile(r"^0x[0-9a-f]*$")


def check_api_host(tenant: Tenant, spec: ClusterSpec, *, cluster_id: int | None = None
                   ) -> list[FieldError]:
    """Why ``spec.host`` cannot be this new cluster's API host, if it cannot.

    An empty host (the platform's default) always passes; a host that is not a DNS name at all
    is left to the platform rules, which say so. ``cluster_id`` is the cluster itself (a
    retried creation), whose own host does not count as taken.
    """
    host = spec.host
    if not host or not is_dns_name(host):
        return []
    for reason in (_address, _internal, _portal, _platform_domain):
        error = reason(host, tenant, spec)
        if error is not None:
            return [FieldError(FIELD, error, "reserved_host")]
    taken = Cluster.objects.live().filter(host=host)
    if cluster_id is not None:
        taken = taken.exclude(pk=cluster_id)
    if taken.exists():
        return [host_in_use(host)]
    return []


def host_in_use(host: str) -> FieldError:
    return FieldError(FIELD, _("The host name “%(host)s” is already in use; choose another.")
                      % {"host": host}, HOST_IN_USE)


def looks_like_address(host: str) -> bool:
    """An IP address in any spelling a resolver or browser accepts as one: dotted, IPv6, or a
    name whose last label is a number (``2130706433``, ``0x7f.1``, ``127.1``), which URL parsers
    read as IPv4."""
    bare = host.strip("[]")
    try:
        ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return True
    last = bare.rstrip(".").rsplit(".", 1)[-1].lower()
    return last.isdigit() or bool(_HEX_NUMBER.match(last))


def default_host(tenant: Tenant, cluster_name: str) -> str:
    """The platform's default API host of a cluster of ``tenant`` (PLATFORM.md f), or ``""``
    when the platform's root host is not configured."""
    domain = tenant_domain(tenant)
    return f"kubernetes-{cluster_name}.{domain}" if domain else ""


def tenant_domain(tenant: Tenant) -> str:
    root = platform_root_host()
    return f"{tenant.slug}.{root}" if root else ""


def platform_root_host() -> str:
    return settings.PLATFORM_ROOT_HOST.strip().strip(".").lower()


def portal_hosts() -> Iterator[str]:
    """The portal's own host names: ``ALLOWED_HOSTS`` (a leading dot keeps its meaning, every
    name under it), ``SITE_URL`` and the trusted CSRF origins. ``*`` names nothing."""
    for entry in settings.ALLOWED_HOSTS:
        entry = entry.strip().lower()
        if entry and entry != "*":
            yield entry
    for url in (settings.SITE_URL, *settings.CSRF_TRUSTED_ORIGINS):
        hostname = urlsplit(url).hostname or ""
        if hostname.startswith("*."):
            yield hostname[1:]
        elif hostname:
            yield hostname


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)


def _address(host: str, tenant: Tenant, spec: ClusterSpec) -> str | None:
    if not looks_like_address(host):
        return None
    return _("“%(host)s” is an IP address. The API host must be a DNS name in a domain of your "
             "own, pointing at the platform ingress; or leave it empty for the default.") % {
        "host": host}


def _internal(host: str, tenant: Tenant, spec: ClusterSpec) -> str | None:
    labels = host.split(".")
    internal = labels[-1] in _INTERNAL_SUFFIXES or _under(host, "cluster.local") or \
        labels[:2] == ["kubernetes", "default"]
    if not internal:
        return None
    return _("“%(host)s” is a name internal to the platform or a private network; choose a "
             "name in a public domain of your own.") % {"host": host}


def _portal(host: str, tenant: Tenant, spec: ClusterSpec) -> str | None:
    for own in portal_hosts():
        if (own.startswith(".") and _under(host, own[1:])) or _under(host, own):
            return _("“%(host)s” belongs to this portal; choose a name in a domain of your "
                     "own.") % {"host": host}
    return None


def _platform_domain(host: str, tenant: Tenant, spec: ClusterSpec) -> str | None:
    root = platform_root_host()
    if not root or not _under(host, root) or host == default_host(tenant, spec.name):
        return None
    return _("Names under %(domain)s belong to the platform and its tenants. Leave the field "
             "empty to get %(default)s, or choose a name in a domain of your own.") % {
        "domain": root, "default": default_host(tenant, spec.name)}


def check_ingress_hosts(tenant: Tenant, hosts: Iterable[str]) -> list[FieldError]:
    """Why each of ``hosts`` cannot be routed to a cluster of ``tenant``, if it cannot.

    A name that is not a DNS name at all is left to the add-on rules, which say so.
    """
    errors = []
    for index, host in enumerate(hosts):
        reason = ingress_host_refusal(tenant, host.strip().lower().rstrip("."))
        if reason:
            errors.append(FieldError(f"{INGRESS_HOSTS_FIELD}[{index}]", reason, "reserved_host"))
    return errors


def ingress_host_refusal(tenant: Tenant, host: str) -> str:
    """The platform's admission rule for one Ingress host, as a sentence ("" when allowed)."""
    if "*" in host:
        return _("“%(host)s” is a wildcard: the platform refuses wildcard hosts. List each "
                 "name the cluster serves.") % {"host": host}
    root, domain = platform_root_host(), tenant_domain(tenant)
    if not root or not _under(host, root) or _under(host, domain):
        return ""
    return _("“%(host)s” is under the platform's domain %(root)s but outside your tenant's "
             "domain %(domain)s. Use a name under %(domain)s, or a name in a domain of your "
             "own.") % {"host": host, "root": root, "domain": domain}
