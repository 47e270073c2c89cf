"""The only module that talks to the management cluster (and the only one importing ``kubernetes``).

Every call turns client errors into ``PlatformError``s that say whether retrying can help
(``transient``) and, in words, what a person can do about it. Callers never see a
``kubernetes`` type: objects are plain dicts, exactly as the API serves them.

It uses Django for two things only: the settings that say how to reach the management cluster
(``get_gateway``), and the translation of the messages people read.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from django.conf import settings
from django.utils.translation import gettext as _
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from cozystack.quotas import QUOTA_NAMES
from cozystack.specs import parse_quantity

logger = logging.getLogger("clusters.gateway")

Kind = tuple[str, str, str]
APPS: Kind = ("apps.cozystack.io", "v1alpha1", "kuberneteses")
TENANT_SECRETS: Kind = ("core.cozystack.io", "v1alpha1", "tenantsecrets")
MACHINE_DEPLOYMENTS: Kind = ("cluster.x-k8s.io", "v1beta1", "machinedeployments")
APP_DEFINITIONS: Kind = ("cozystack.io", "v1alpha1", "applicationdefinitions")
# v1.6: the Option API (dropdown sources, computed per namespace; get and list only) and the
# optional ``KubernetesNodes`` app (worker pools attached to a cluster outside its spec).
OPTIONS: Kind = ("core.cozystack.io", "v1alpha1", "options")
KUBERNETES_NODES: Kind = ("apps.cozystack.io", "v1alpha1", "kubernetesnodes")
OPTION_SOURCES = ("instancetype", "gpu", "storageclass")
SECRETS = "secrets"  # core v1, watched across namespaces by label
RESOURCE_QUOTAS = "resourcequotas"  # core v1, read in a tenant's namespace
KUBECONFIG_KEYS = ("admin.conf", "super-admin.conf")
OIDC_KUBECONFIG_KEY = "kubeconfig"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "kube-portal"
CONFLICT_RETRIES = 5
LIST_PAGE = 500
# A static token never needs re-reading; an exec/OIDC one is re-checked this often.
TOKEN_REFRESH_SECONDS = 30.0


class PlatformError(Exception):
    """A failed call to the management cluster, classified, with a sentence for people."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "",
                 detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.detail = detail


class PlatformUnavailable(PlatformError):
    """Connection refused or dropped, timeouts, 429 and 5xx: retrying later can succeed."""

    transient = True


class PlatformRejected(PlatformError):
    """400, 401, 403, 422 and friends: the same request will fail again."""


class QuotaExceeded(PlatformRejected):
    """The tenant's quota on the platform refused the write (a synchronous 403 or 422):
    ``shortfalls`` says, per resource, what was asked and what is left."""

    def __init__(self, message: str, *, shortfalls: tuple[QuotaShortfall, ...],
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.shortfalls = shortfalls


@dataclass(frozen=True)
class QuotaShortfall:
    """One resource a quota refused: ``requested`` against what is ``available`` (quantities
    as the platform writes them); ``limit``/``used``/``allocated`` when it says them."""

    resource: str
    requested: str
    available: str
    limit: str = ""
    used: str = ""
    allocated: str = ""

    def words(self) -> str:
        text = _("%(resource)s: %(requested)s requested, %(available)s left") % {
            "resource": self.resource, "requested": self.requested,
            "available": self.available}
        details = []
        if self.limit:
            details.append(_("limit %(limit)s") % {"limit": self.limit})
        if self.allocated:
            details.append(_("%(allocated)s given to other tenants")
                           % {"allocated": self.allocated})
        if self.used:
            details.append(_("%(used)s in use") % {"used": self.used})
        return f"{text} ({', '.join(details)})" if details else text


# The hierarchical quota's declaration gate (cozystack-api, v1.6; a 422 whose causes read
# ``spec.resourceQuotas[cpu]: Forbidden: requested 8 exceeds …``; releases before the pool usage
# was counted end the parenthesis after the sibling tenants) and Kubernetes' ResourceQuota
# admission, in the words they answer with.
_PARENT_QUOTA = re.compile(
    r'requested (?P<requested>\S+) exceeds the parent tenant\'s remaining "(?P<resource>[^"]+)" '
    r"quota of (?P<available>\S+) \(parent allows (?P<limit>[^\s,]+), (?P<allocated>\S+) already "
    r"allocated to sibling tenants(?:, (?P<used>\S+) currently in use[^)]*)?\)")
_RESOURCE_QUOTA = re.compile(
    r"exceeded quota: (?P<quota>[^,]+), requested: (?P<requested>\S+), "
    r"used: (?P<used>\S+), limited: (?P<limited>[^\s;]+)")


def _pairs(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.rstrip(".,").split(",") if "=" in item)


def _minus(limit: str, used: str) -> str:
    total, taken = parse_quantity(limit), parse_quantity(used)
    if total is None or taken is None:
        return "?"
    left: Decimal = total - taken if total > taken else Decimal(0)
    for suffix, size in (("Gi", 2**30), ("Mi", 2**20)):
        if limit.endswith(suffix):
            return f"{(left / size).normalize():f}{suffix}"
    return f"{left.normalize():f}"


def quota_shortfalls(detail: str) -> tuple[QuotaShortfall, ...]:
    """What a quota refusal says, per resource (empty when ``detail`` is no quota refusal)."""
    found = [QuotaShortfall(m["resource"], m["requested"], m["available"], m["limit"],
                            m["used"] or "", m["allocated"])
             for m in _PARENT_QUOTA.finditer(detail)]
    for match in _RESOURCE_QUOTA.finditer(detail):
        requested, used, limited = (_pairs(match[k]) for k in ("requested", "used", "limited"))
        for resource, amount in requested.items():
            limit = limited.get(resource, "")
            taken = used.get(resource, "")
            found.append(QuotaShortfall(resource, amount, _minus(limit, taken) if limit else "?",
                                        limit, taken))
    return tuple(found)


def quota_message(shortfalls: tuple[QuotaShortfall, ...]) -> str:
    return _("The tenant's quota on the platform does not allow this: %(what)s. Ask for a "
             "higher quota, or ask for less.") % {
        "what": "; ".join(s.words() for s in shortfalls)}


class NotFound(PlatformError):
    pass


class Conflict(PlatformError):
    """409: a write raced another one, or the name is taken."""


class Expired(PlatformError):
    """A watch resourceVersion is too old (410): relist and start again."""


def _status_body(exc: ApiException) -> dict[str, Any]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def classify(exc: BaseException, what: str) -> PlatformError:
    """Turn any client-side failure into a PlatformError a person can act on.

    ``what`` completes "The platform could not …" (e.g. "create cluster demo").
    """
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, ApiException):
        status = int(exc.status or 0)
        body = _status_body(exc)
        detail = str(body.get("message") or exc.reason or "")
        reason = str(body.get("reason") or "")
        kw: dict[str, Any] = {"status": status, "reason": reason, "detail": detail}
        if status == 0:
            return PlatformUnavailable(
                _("The platform is unreachable while trying to %(what)s; retrying.")
                % {"what": what}, **kw)
        if status == 429 or status >= 500:
            return PlatformUnavailable(
                _("The platform could not %(what)s right now (HTTP %(status)s); retrying.")
                % {"what": what, "status": status}, **kw)
        if status == 404:
            return NotFound(_("The platform has no such object (%(what)s).") % {"what": what},
                            **kw)
        if status == 409:
            return Conflict(
                _("The platform reported a conflicting change while trying to %(what)s.")
                % {"what": what}, **kw)
        if status == 410:
            return Expired(_("The watch position expired; starting over."), **kw)
        shortfalls = quota_shortfalls(detail) if status in (403, 422) else ()
        if shortfalls:
            return QuotaExceeded(quota_message(shortfalls), shortfalls=shortfalls, **kw)
        if status in (401, 403):
            return PlatformRejected(
                _("The portal is not allowed to %(what)s on the platform (HTTP %(status)s); "
                  "staff must check the portal's platform credentials.")
                % {"what": what, "status": status}, **kw)
        return PlatformRejected(
            _("The platform refused to %(what)s: %(detail)s")
            % {"what": what, "detail": detail or exc.reason}, **kw)
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
        return PlatformUnavailable(
            _("The platform is unreachable while trying to %(what)s; retrying.")
            % {"what": what}, detail=f"{type(exc).__name__}: {str(exc)[:300]}")
    raise exc


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return str((self.object.get("metadata") or {}).get("resourceVersion") or "")


class Listing:
    """Objects of a (paginated) list; ``resource_version`` is the first page's, from which a
    watch continues without missing anything."""

    def __init__(self, fetch: Callable[[str | None], dict[str, Any]]) -> None:
        self._fetch = fetch
        self.resource_version = ""

    def __iter__(self) -> Iterator[dict[str, Any]]:
        token: str | None = None
        while True:
            body = self._fetch(token)
            meta = body.get("metadata") or {}
            if not self.resource_version:
                self.resource_version = str(meta.get("resourceVersion") or "")
            yield from body.get("items") or []
            token = meta.get("continue")
            if not token:
                return


@dataclass(frozen=True)
class Applied:
    """What a create-or-replace did on the platform.

    ``changed`` is False when the platform already held this exact spec (a repeated apply):
    nothing will move there, so the caller must not wait for a new transition. ``baseline``
    is the ``Ready`` condition seen just before the write: a later ``Ready`` equal to it
    still describes the previous spec.
    """

    object: dict[str, Any]
    created: bool
    changed: bool
    baseline: dict[str, Any] | None


def ready_condition(obj: dict[str, Any] | None) -> dict[str, Any] | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return dict(cond)
    return None


@dataclass(frozen=True)
class OptionItem:
    """One choice the platform's Option API offers (``spec.items[]``): ``value`` is what a
    spec carries; ``label`` and ``description`` are the platform's words (a GPU's says how many
    are available on which nodes); ``default`` marks the platform's default."""

    value: str
    label: str = ""
    description: str = ""
    default: bool = False


def option_items(obj: dict[str, Any]) -> tuple[OptionItem, ...]:
    """The items of an ``Option`` object; entries without a string ``value`` are skipped (a
    malformed entry never becomes a choice)."""
    spec = obj.get("spec") if isinstance(obj, dict) else None
    raw = spec.get("items") if isinstance(spec, dict) else None
    if not isinstance(raw, list):
        raise PlatformRejected(_("The platform answered an option list without items."))
    items = []
    for entry in raw:
        if not isinstance(entry, dict):
            continue
        value = entry.get("value")
        if not isinstance(value, str) or not value.strip():
            continue
        items.append(OptionItem(value=value.strip(), label=str(entry.get("label") or ""),
                                description=str(entry.get("description") or ""),
                                default=entry.get("default") is True))
    return tuple(items)


def _generation(obj: dict[str, Any] | None) -> int:
    return int(((obj or {}).get("metadata") or {}).get("generation") or 0)


class Gateway:
    """Typed calls against one management cluster through one ``ApiClient``."""

    def __init__(self, api_client: k8s.ApiClient, *, request_timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.version_api = k8s.VersionApi(api_client)
        self.timeout = request_timeout
        self._schema_cache: tuple[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()
        self._watches: dict[int, tuple[threading.Event | None, Any]] = {}

    def close(self) -> None:
        self.api_client.close()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # classified below; anything unknown is re-raised
            raise classify(exc, what) from exc

    def _get(self, what: str | Callable[[], str], path: str,
             query: list[tuple[str, Any]] | None = None, *, timeout: Any = None) -> Any:
        """GET ``path`` through the client's REST layer, its connection pool and credentials;
        the urllib3 response, unread (a watch streams it).

        Reads are the hot path (polls, lists, watches), so they skip the generated API
        methods, whose argument validation and (de)serialisation cost more than the request
        itself on a local network; writes keep using them.
        """
        headers = {"Accept": "application/json", **self.api_client.default_headers}
        self.api_client.update_params_for_auth(headers, [], ["BearerToken"], path, "GET", None)
        url = self.api_client.configuration.host + path
        if query:
            url += "?" + urlencode([(k, _query_value(v)) for k, v in query if v is not None])
        try:
            response = self.api_client.call_api("GET", url, header_params=headers,
                                                _request_timeout=timeout or self.timeout)
            if not 200 <= response.status <= 299:
                raise ApiException.from_response(
                    http_resp=response, body=response.read().decode(errors="replace"), data=None)
        except Exception as exc:  # classified below; anything unknown is re-raised
            raise classify(exc, what() if callable(what) else what) from exc
        return response.response

    def _get_json(self, what: str | Callable[[], str], path: str,
                  query: list[tuple[str, Any]] | None = None, *,
                  timeout: float | None = None) -> dict[str, Any]:
        """``what`` may be a callable: the sentence is only translated if something fails."""
        response = self._get(what, path, query, timeout=timeout)
        try:
            body = json.loads(response.data)
            if not isinstance(body, dict):  # re-raised as is, like a body that is not JSON
                raise ValueError(f"{path} answered JSON that is not an object")
            return body
        except Exception as exc:
            raise classify(exc, what() if callable(what) else what) from exc
        finally:
            response.release_conn()

    # -- health and schema -------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        info = self._call(_("answer a version request"), self.version_api.get_code)
        return info.to_dict() if hasattr(info, "to_dict") else dict(info)

    def application_definition(self) -> dict[str, Any]:
        return self._get_json(_("read the Kubernetes application definition"),
                              _path(APP_DEFINITIONS, None, "kubernetes"))

    def kubernetes_schema(self) -> tuple[str, dict[str, Any]]:
        """(resourceVersion, values schema) the platform publishes in its ApplicationDefinition.

        One GET per call; the parsed schema is reused until the platform changes it.
        """
        obj = self.application_definition()
        version = str(obj.get("metadata", {}).get("resourceVersion", ""))
        with self._lock:
            if self._schema_cache and self._schema_cache[0] == version:
                return self._schema_cache
        raw = obj.get("spec", {}).get("application", {}).get("openAPISchema") or "{}"
        try:
            schema = json.loads(raw) if isinstance(raw, str) else dict(raw)
        except ValueError as exc:
            raise PlatformRejected(
                _("The platform publishes an unreadable schema for clusters: %(e)s")
                % {"e": exc}) from exc
        with self._lock:
            self._schema_cache = (version, schema)
        return self._schema_cache

    # -- the Option API (v1.6) ------------------------------------------------------------------

    def read_options(self, namespace: str, source: str, *,
                     timeout: float | None = None) -> tuple[OptionItem, ...]:
        """What the platform offers ``namespace`` for one dropdown source (``instancetype``,
        ``gpu``, ``storageclass``): ``GET .../namespaces/<ns>/options/<source>``.

        ``NotFound`` when the platform has no Option API (v1.3) or no such source; any other
        ``PlatformError`` as for every call. ``timeout`` (seconds) bounds a read that a page
        waits for.
        """
        if source not in OPTION_SOURCES:
            raise ValueError(f"unknown option source {source!r}")
        obj = self._get_json(lambda: _("read the %(source)s options") % {"source": source},
                             _path(OPTIONS, namespace, source), timeout=timeout)
        return option_items(obj)

    # -- the tenant's quotas ----------------------------------------------------------------------

    def read_resource_quotas(self, namespace: str, *, timeout: float | None = None
                             ) -> dict[str, dict[str, Any] | None]:
        """The tenant's ResourceQuotas ``tenant-quota`` and ``tenant-quota-allocated`` (core v1,
        as served: ``status.hard`` / ``status.used``), by name; None for one the platform does
        not have (no quota set, or a release without the hierarchical quota). ``timeout``
        (seconds) bounds each read a page waits for (``cozystack.quotas.combine_quotas``
        combines them)."""
        found: dict[str, dict[str, Any] | None] = {}
        for name in QUOTA_NAMES:
            what = functools.partial(_quota_read_words, name)
            try:
                found[name] = self._get_json(what, _path(RESOURCE_QUOTAS, namespace, name),
                                             timeout=timeout)
            except NotFound:
                found[name] = None
        return found

    # -- the Kubernetes object -----------------------------------------------------------------

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._get_json(lambda: _("read cluster %(name)s") % {"name": name},
                                  _path(APPS, namespace, name))
        except NotFound:
            return None

    def list_clusters(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        return self.list_resource(APPS, namespace)

    def create_cluster(self, manifest: dict[str, Any]) -> Applied:
        """Create the object; if it exists already (a redelivered task, a retry after a timeout
        whose POST did land), bring it to ``manifest``'s spec instead. Safe to repeat.

        An existing object that the portal did not create is never taken over.
        """
        meta = manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            created = self._call(_("create cluster %(name)s") % {"name": name},
                                 self.custom.create_namespaced_custom_object,
                                 *APPS[:2], namespace, APPS[2], manifest)
            return Applied(created, created=True, changed=True, baseline=None)
        except Conflict:
            pass
        current = self.get_cluster(namespace, name)
        labels = ((current or {}).get("metadata") or {}).get("labels") or {}
        if current is not None and labels.get(MANAGED_BY_LABEL) != MANAGED_BY:
            raise PlatformRejected(
                _("A cluster named %(name)s already exists on the platform and was not created "
                  "by the portal; choose another name.") % {"name": name}, status=409)
        return self.replace_cluster(manifest)

    def replace_cluster(self, manifest: dict[str, Any]) -> Applied:
        """GET → set spec (and our labels) → PUT with the resourceVersion; on 409 re-read and
        try again. Putting the same spec twice changes nothing on the platform."""
        meta = manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        last: Conflict | None = None
        for _attempt in range(CONFLICT_RETRIES):
            current = self.get_cluster(namespace, name)
            if current is None:
                raise NotFound(_("Cluster %(name)s no longer exists on the platform.")
                               % {"name": name}, status=404)
            current_meta = current.get("metadata") or {}
            if current_meta.get("deletionTimestamp"):
                raise Conflict(_("Cluster %(name)s is being deleted on the platform.")
                               % {"name": name}, status=409)
            body = {
                "apiVersion": current.get("apiVersion"),
                "kind": current.get("kind"),
                "metadata": {**current_meta,
                             "labels": {**(current_meta.get("labels") or {}),
                                        **(meta.get("labels") or {})}},
                "spec": manifest["spec"],
            }
            try:
                written = self._call(_("update cluster %(name)s") % {"name": name},
                                     self.custom.replace_namespaced_custom_object,
                                     *APPS[:2], namespace, APPS[2], name, body)
            except Conflict as exc:
                last = exc
                continue
            changed = _generation(written) != _generation(current)
            return Applied(written, created=False, changed=changed,
                           baseline=ready_condition(current))
        raise Conflict(_("Cluster %(name)s kept changing on the platform while it was being "
                         "updated (%(n)s attempts); try again.")
                       % {"name": name, "n": CONFLICT_RETRIES},
                       status=409, detail=last.detail if last else "")

    def patch_cluster(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge-patch (applied by the platform on the defaulted object)."""
        patched: dict[str, Any] = self._call(
            _("update cluster %(name)s") % {"name": name},
            self.custom.patch_namespaced_custom_object,
            *APPS[:2], namespace, APPS[2], name, patch,
            _content_type="application/merge-patch+json")
        return patched

    def delete_cluster(self, namespace: str, name: str) -> bool:
        """Ask for deletion; True if the object existed. A repeated delete is harmless."""
        try:
            self._call(_("delete cluster %(name)s") % {"name": name},
                       self.custom.delete_namespaced_custom_object,
                       *APPS[:2], namespace, APPS[2], name)
        except NotFound:
            return False
        return True

    # -- observed objects ----------------------------------------------------------------------

    def list_machine_deployments(self, namespace: str, cluster_name: str) -> list[dict[str, Any]]:
        items, _rv = self.list_resource(
            MACHINE_DEPLOYMENTS, namespace,
            label_selector=f"{CLUSTER_LABEL}=kubernetes-{cluster_name}")
        return items

    def kubeconfig_exists(self, namespace: str, cluster_name: str) -> bool:
        try:
            data = self._read_kubeconfig_secret(namespace, cluster_name)
        except NotFound:
            return False
        return any(key in data for key in KUBECONFIG_KEYS)

    def _read_kubeconfig_secret(self, namespace: str, cluster_name: str,
                                suffix: str = "admin-kubeconfig") -> dict[str, str]:
        """``.data`` of the TenantSecret (what tenant credentials may read), else the Secret."""
        name = f"kubernetes-{cluster_name}-{suffix}"
        what = _("read the kubeconfig of %(name)s") % {"name": cluster_name}
        try:
            return self._get_json(what, _path(TENANT_SECRETS, namespace, name)).get("data") or {}
        except (NotFound, PlatformRejected):
            pass
        return self._get_json(what, _path(SECRETS, namespace, name)).get("data") or {}

    def read_kubeconfig(self, namespace: str, cluster_name: str, key: str = "admin.conf") -> bytes:
        """The kubeconfig file, fetched on demand and never cached: certificates rotate.

        ``admin.conf`` is the normal cluster-admin kubeconfig; ``super-admin.conf`` bypasses
        RBAC and is only handed out deliberately.
        """
        if key not in KUBECONFIG_KEYS:
            raise ValueError(f"unsupported kubeconfig key {key!r}")
        data = self._read_kubeconfig_secret(namespace, cluster_name)
        if key not in data:
            raise NotFound(_("The platform has not issued a kubeconfig for %(name)s yet.")
                           % {"name": cluster_name})
        # `.data` is base64 exactly once; TenantSecret's stringData (base64 again) is ignored.
        return base64.b64decode(data[key])

    def read_oidc_kubeconfig(self, namespace: str, cluster_name: str) -> bytes:
        """The single sign-on kubeconfig of a cluster whose access goes through the platform's
        identity provider (v1.6 ``oidc.mode: System``): Secret
        ``kubernetes-<name>-oidc-kubeconfig``, key ``kubeconfig``. It holds no credential (each
        person signs in with ``kubectl oidc-login``). Until the platform's bootstrap Job has
        written it, it holds a placeholder (``is_placeholder_kubeconfig``); ``NotFound`` when
        the platform has none."""
        data = self._read_kubeconfig_secret(namespace, cluster_name, "oidc-kubeconfig")
        if OIDC_KUBECONFIG_KEY not in data:
            raise NotFound(_("The platform has no single sign-on kubeconfig for %(name)s.")
                           % {"name": cluster_name})
        return base64.b64decode(data[OIDC_KUBECONFIG_KEY])

    # -- listing and watching ------------------------------------------------------------------

    def list_pages(self, kind: Kind | str, namespace: str | None = None, *,
                   label_selector: str | None = None, limit: int = LIST_PAGE) -> Listing:
        """The objects of a list as plain dicts, fetched ``limit`` at a time while iterating
        (a list of 10,000 clusters never sits in memory at once)."""
        name = kind if isinstance(kind, str) else kind[2]
        what = _("list %(kind)s") % {"kind": name}
        path = _path(kind, namespace)

        def fetch(token: str | None) -> dict[str, Any]:
            return self._get_json(what, path, [("labelSelector", label_selector),
                                               ("limit", limit), ("continue", token)])

        return Listing(fetch)

    def list_resource(self, kind: Kind | str, namespace: str | None = None, *,
                      label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        """(items, resourceVersion of the list) as plain dicts; ``kind`` may be ``"secrets"``."""
        listing = self.list_pages(kind, namespace, label_selector=label_selector)
        items = list(listing)
        return items, listing.resource_version

    def watch(self, kind: Kind | str, resource_version: str, *, timeout_seconds: int = 60,
              label_selector: str | None = None, stop: threading.Event | None = None
              ) -> Iterator[WatchEvent]:
        """Stream events after ``resource_version`` until the server ends the watch.

        Raises ``Expired`` on 410 (the caller relists) and ``PlatformUnavailable`` when the
        connection drops. Lines are decoded here rather than by ``kubernetes.watch`` so that
        objects stay plain dicts (no model round trip per event).
        """
        what = _("watch for changes")
        query = [("watch", True), ("resourceVersion", resource_version or None),
                 ("timeoutSeconds", timeout_seconds), ("allowWatchBookmarks", True),
                 ("labelSelector", label_selector)]
        # Read timeout beyond the server's own end of the watch: a silent dead connection is
        # noticed instead of hanging forever.
        response = self._get(what, _path(kind, None), query,
                             timeout=(self.timeout, timeout_seconds + self.timeout))
        with self._lock:
            self._watches[id(response)] = (stop, response)
        try:
            buffer = b""
            for chunk in response.stream(amt=None, decode_content=False):
                if stop is not None and stop.is_set():
                    return
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if line.strip():
                        yield self._event(line)
            if buffer.strip():
                yield self._event(buffer)
        except PlatformError:
            raise
        except Exception as exc:
            if stop is not None and stop.is_set():
                return
            raise classify(exc, what) from exc
        finally:
            with self._lock:
                self._watches.pop(id(response), None)
            # Never hand a half-read stream back to the pool.
            response.close()
            response.release_conn()

    def interrupt_watches(self, stop: threading.Event) -> None:
        """End the open watches started with ``stop`` now (their generators return)."""
        with self._lock:
            responses = [r for s, r in self._watches.values() if s is stop]
        for response in responses:
            sock = getattr(getattr(response, "connection", None), "sock", None)
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    @staticmethod
    def _event(line: bytes) -> WatchEvent:
        event = json.loads(line)
        obj = event.get("object") or {}
        if event.get("type") == "ERROR":
            code = int(obj.get("code") or 0)
            if code == 410:
                raise Expired(_("The watch position expired; starting over."), status=410,
                              reason=str(obj.get("reason") or ""))
            raise PlatformUnavailable(
                _("The platform ended a watch: %(message)s") % {"message": obj.get("message")},
                status=code, reason=str(obj.get("reason") or ""))
        return WatchEvent(str(event.get("type")), obj)


def _quota_read_words(name: str) -> str:
    return _("read the quota %(name)s") % {"name": name}


def is_placeholder_kubeconfig(content: bytes) -> bool:
    """True for what the platform writes before the real file (``# awaiting OIDC bootstrap
    Job …``): nothing but comments and blank lines."""
    lines = [line.strip() for line in content.decode("utf-8", "replace").splitlines()]
    return all(not line or line.startswith("#") for line in lines)


def _path(kind: Kind | str, namespace: str | None, name: str | None = None) -> str:
    """The API path of a collection or of one object (a plural alone, ``"secrets"``, is core
    v1)."""
    base = "/api/v1" if isinstance(kind, str) else f"/apis/{kind[0]}/{kind[1]}"
    plural = kind if isinstance(kind, str) else kind[2]
    path = base
    if namespace:
        path += f"/namespaces/{quote(namespace, safe='')}"
    path += f"/{plural}"
    if name is not None:
        path += f"/{quote(name, safe='')}"
    return path


def _query_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _throttle_token_refresh(configuration: k8s.Configuration) -> None:
    """The kubeconfig loader re-reads the whole config before *every* request (to catch an
    expired exec/OIDC token); a few times a minute is plenty and saves most of a request's
    client-side cost."""
    hook = configuration.refresh_api_key_hook
    if hook is None:
        return
    last = [time.monotonic()]

    def refresh(config: k8s.Configuration) -> None:
        now = time.monotonic()
        if now - last[0] >= TOKEN_REFRESH_SECONDS:
            last[0] = now
            hook(config)

    configuration.refresh_api_key_hook = refresh


def build_api_client(*, kubeconfig: str | None = None, in_cluster: bool = False) -> k8s.ApiClient:
    configuration = type.__call__(k8s.Configuration)
    if in_cluster:
        k8s_config.load_incluster_config(client_configuration=configuration)
    else:
        k8s_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration,
                                    persist_config=False)
    # The engine retries with its own backoff; the client only retries a failed connect and,
    # once, an idempotent read (a keep-alive connection the server had just closed).
    configuration.retries = urllib3.util.Retry(total=2, connect=2, read=1, status=0,
                                               redirect=0, raise_on_status=False)
    _throttle_token_refresh(configuration)
    return k8s.ApiClient(configuration)


_gateway: Gateway | None = None
_gateway_lock = threading.Lock()


def get_gateway() -> Gateway:
    """The process-wide gateway built from settings (kubeconfig path or in-cluster)."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            try:
                api_client = build_api_client(kubeconfig=settings.PLATFORM_KUBECONFIG,
                                              in_cluster=settings.PLATFORM_IN_CLUSTER)
            except (k8s_config.ConfigException, OSError) as exc:
                raise PlatformUnavailable(
                    _("The portal has no usable connection to the platform (check KUBECONFIG "
                      "or the in-cluster service account): %(e)s") % {"e": exc}) from exc
            _gateway = Gateway(api_client, request_timeout=settings.PLATFORM_REQUEST_TIMEOUT)
        return _gateway


def reset_gateway() -> None:
    """Forget the cached gateway (tests point the portal at a new simulator)."""
    global _gateway
    with _gateway_lock:
        old, _gateway = _gateway, None
    if old is not None:
        old.close()
