"""Which host names a tenant may route to a cluster.

The platform serves every tenant's names on its ingress, routed by host name. Since v1.5 its
admission policy lets a tenant's Ingress name only hosts inside the tenant's own domain
(``<slug>.<root>``) or outside the platform's root domain altogether, and never a wildcard:
anything else could take traffic meant for another tenant or for the platform. The portal
applies the same rule to the hosts Ingress NGINX routes to a cluster
(``addons.ingressNginx.hosts``) before anything is sent, on every release, and says why in
words. ``clusters.spec_rules`` runs it, so the create form, the detail page and the API refuse
alike.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.utils.translation import gettext as _

from cozystack.rules import FieldError
from portal.models import Tenant

INGRESS_HOSTS_FIELD = "addons.ingressNginx.hosts"


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


def _under(host: str, domain: str) -> bool:
    return host == domain or host.endswith("." + domain)
