"""The only module that talks to the management cluster (and the only one importing ``kubernetes``).

Every call turns client errors into ``PlatformError``s that say whether retrying can help
(``transient``) and, in words, what a person can do about it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import urllib3
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes import watch as k8s_watch
from kubernetes.client.exceptions import ApiException

logger = logging.getLogger("clusters.gateway")

APPS = ("apps.cozystack.io", "v1alpha1", "kuberneteses")
TENANT_SECRETS = ("core.cozystack.io", "v1alpha1", "tenantsecrets")
MACHINE_DEPLOYMENTS = ("cluster.x-k8s.io", "v1beta1", "machinedeployments")
APP_DEFINITIONS = ("cozystack.io", "v1alpha1", "applicationdefinitions")
KUBECONFIG_KEYS = ("admin.conf", "super-admin.conf")
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
CONFLICT_RETRIES = 5


class PlatformError(Exception):
    """A failed call to the management cluster, classified."""

    transient = False

    def __init__(self, message: str, *, status: int | None = None, reason: str = "",
                 detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.detail = detail


class PlatformUnavailable(PlatformError):
    """Connection refused, timeouts, 429 and 5xx: retrying later can succeed."""

    transient = True


class PlatformRejected(PlatformError):
    """400, 403, 422 and friends: the same request will fail again."""


class NotFound(PlatformError):
    pass


class Conflict(PlatformError):
    pass


class Expired(PlatformError):
    """A watch resourceVersion is too old (410): relist and start again."""


def _status_message(exc: ApiException) -> tuple[str, str]:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    return str(body.get("message") or exc.reason or ""), str(body.get("reason") or "")


def classify(exc: BaseException, what: str) -> PlatformError:
    """Turn any client-side failure into a PlatformError a person can act on."""
    if isinstance(exc, PlatformError):
        return exc
    if isinstance(exc, ApiException):
        status = exc.status or 0
        detail, reason = _status_message(exc)
        if status == 0 or status == 429 or status >= 500:
            return PlatformUnavailable(
                f"The platform could not {what} right now (HTTP {status or 'error'}); "
                "retrying.", status=status, reason=reason, detail=detail)
        if status == 404:
            return NotFound(f"The platform has no such object ({what}).", status=status,
                            reason=reason, detail=detail)
        if status == 409:
            return Conflict(f"The platform reported a conflicting change while trying to {what}.",
                            status=status, reason=reason, detail=detail)
        if status == 410:
            return Expired("The watch position expired; starting over.", status=status,
                           reason=reason, detail=detail)
        if status in (401, 403):
            return PlatformRejected(
                f"The portal is not allowed to {what} on the platform (HTTP {status}); "
                "staff must check the portal's platform credentials.",
                status=status, reason=reason, detail=detail)
        return PlatformRejected(f"The platform refused to {what}: {detail or exc.reason}",
                                status=status, reason=reason, detail=detail)
    if isinstance(exc, (urllib3.exceptions.HTTPError, ConnectionError, TimeoutError, OSError)):
        return PlatformUnavailable(
            f"The platform is unreachable ({type(exc).__name__}) while trying to {what}; "
            "retrying.", detail=str(exc)[:300])
    raise exc


@dataclass(frozen=True)
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED, BOOKMARK
    object: dict[str, Any]


class Gateway:
    """Typed calls against one management cluster through one ``ApiClient``."""

    def __init__(self, api_client: k8s.ApiClient, *, request_timeout: float = 10.0) -> None:
        self.api_client = api_client
        self.custom = k8s.CustomObjectsApi(api_client)
        self.core = k8s.CoreV1Api(api_client)
        self.version_api = k8s.VersionApi(api_client)
        self.timeout = request_timeout
        self._schema_cache: tuple[str, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", self.timeout)
        try:
            return fn(*args, **kwargs)
        except Exception as exc:  # classified below; anything unknown is re-raised
            raise classify(exc, what) from exc

    # -- health and schema -------------------------------------------------------------------

    def ping(self) -> dict[str, Any]:
        info = self._call("answer a version request", self.version_api.get_code)
        return info.to_dict() if hasattr(info, "to_dict") else dict(info)

    def kubernetes_schema(self) -> dict[str, Any]:
        """The values schema the platform publishes (ApplicationDefinition ``kubernetes``).

        Cached by resourceVersion: one GET per call, the parsed schema is reused until the
        platform changes it.
        """
        obj = self._call("read the Kubernetes application definition",
                         self.custom.get_cluster_custom_object, *APP_DEFINITIONS[:2],
                         APP_DEFINITIONS[2], "kubernetes")
        version = obj.get("metadata", {}).get("resourceVersion", "")
        with self._lock:
            if self._schema_cache and self._schema_cache[0] == version:
                return self._schema_cache[1]
            raw = obj.get("spec", {}).get("application", {}).get("openAPISchema") or "{}"
            schema = json.loads(raw) if isinstance(raw, str) else raw
            self._schema_cache = (version, schema)
            return schema

    # -- the Kubernetes object -----------------------------------------------------------------

    def get_cluster(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._call(f"read cluster {name}", self.custom.get_namespaced_custom_object,
                              *APPS[:2], namespace, APPS[2], name)
        except NotFound:
            return None

    def list_clusters(self, namespace: str | None = None) -> tuple[list[dict[str, Any]], str]:
        if namespace:
            result = self._call("list clusters", self.custom.list_namespaced_custom_object,
                                *APPS[:2], namespace, APPS[2])
        else:
            result = self._call("list clusters", self.custom.list_cluster_custom_object, *APPS)
        return result.get("items", []), result.get("metadata", {}).get("resourceVersion", "")

    def apply_cluster(self, manifest: dict[str, Any]) -> dict[str, Any]:
        """Create the object, or bring an existing one to ``manifest``'s spec (idempotent).

        A create that meets an existing object (a redelivered task, a retry after a timeout)
        replaces its spec instead, guarded by resourceVersion and retried on 409.
        """
        meta = manifest["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        try:
            return self._call(f"create cluster {name}",
                              self.custom.create_namespaced_custom_object, *APPS[:2], namespace,
                              APPS[2], manifest)
        except Conflict:
            pass
        return self.replace_cluster_spec(namespace, name, manifest["spec"],
                                         labels=meta.get("labels"))

    def replace_cluster_spec(self, namespace: str, name: str, spec: dict[str, Any], *,
                             labels: dict[str, str] | None = None) -> dict[str, Any]:
        """GET → set spec → PUT with the resourceVersion; on 409 re-read and try again."""
        last: Conflict | None = None
        for _attempt in range(CONFLICT_RETRIES):
            current = self.get_cluster(namespace, name)
            if current is None:
                raise NotFound(f"Cluster {name} no longer exists on the platform.", status=404)
            if current.get("metadata", {}).get("deletionTimestamp"):
                raise Conflict(f"Cluster {name} is being deleted on the platform.", status=409)
            body = dict(current)
            body["spec"] = spec
            if labels:
                body["metadata"] = {**current["metadata"],
                                    "labels": {**current["metadata"].get("labels", {}),
                                               **labels}}
            try:
                return self._call(f"update cluster {name}",
                                  self.custom.replace_namespaced_custom_object, *APPS[:2],
                                  namespace, APPS[2], name, body)
            except Conflict as exc:
                last = exc
        raise Conflict(f"Cluster {name} kept changing on the platform while it was being "
                       f"updated ({CONFLICT_RETRIES} attempts); try again.",
                       status=409, detail=last.detail if last else "")

    def patch_cluster(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self._call(f"patch cluster {name}", self.custom.patch_namespaced_custom_object,
                          *APPS[:2], namespace, APPS[2], name, patch)

    def delete_cluster(self, namespace: str, name: str) -> bool:
        """Ask for deletion; True if the object existed. A repeated delete is harmless."""
        try:
            self._call(f"delete cluster {name}", self.custom.delete_namespaced_custom_object,
                       *APPS[:2], namespace, APPS[2], name)
        except NotFound:
            return False
        return True

    # -- observed objects ----------------------------------------------------------------------

    def list_machine_deployments(self, namespace: str, cluster_name: str) -> list[dict[str, Any]]:
        result = self._call(f"list node groups of {cluster_name}",
                            self.custom.list_namespaced_custom_object, *MACHINE_DEPLOYMENTS[:2],
                            namespace, MACHINE_DEPLOYMENTS[2],
                            label_selector=f"{CLUSTER_LABEL}=kubernetes-{cluster_name}")
        return result.get("items", [])

    def kubeconfig_exists(self, namespace: str, cluster_name: str) -> bool:
        try:
            self._read_kubeconfig_secret(namespace, cluster_name)
        except NotFound:
            return False
        return True

    def _read_kubeconfig_secret(self, namespace: str, cluster_name: str) -> dict[str, str]:
        name = f"kubernetes-{cluster_name}-admin-kubeconfig"
        try:
            obj = self._call(f"read the kubeconfig of {cluster_name}",
                             self.custom.get_namespaced_custom_object, *TENANT_SECRETS[:2],
                             namespace, TENANT_SECRETS[2], name)
            return obj.get("data") or {}
        except NotFound:
            pass
        secret = self._call(f"read the kubeconfig of {cluster_name}",
                            self.core.read_namespaced_secret, name, namespace)
        return secret.data or {}

    def read_kubeconfig(self, namespace: str, cluster_name: str, key: str = "admin.conf") -> bytes:
        """The kubeconfig file, fetched on demand and never cached: certificates rotate."""
        if key not in KUBECONFIG_KEYS:
            raise ValueError(f"unsupported kubeconfig key {key!r}")
        data = self._read_kubeconfig_secret(namespace, cluster_name)
        if key not in data:
            raise NotFound(f"The platform has not issued a {key} for {cluster_name} yet.")
        # `.data` is base64 exactly once (the TenantSecret's stringData quirk is ignored).
        return base64.b64decode(data[key])

    # -- watching ------------------------------------------------------------------------------

    def list_resource(self, kind: tuple[str, str, str], namespace: str | None = None,
                      label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        kwargs: dict[str, Any] = {}
        if label_selector:
            kwargs["label_selector"] = label_selector
        if namespace:
            result = self._call(f"list {kind[2]}", self.custom.list_namespaced_custom_object,
                                *kind[:2], namespace, kind[2], **kwargs)
        else:
            result = self._call(f"list {kind[2]}", self.custom.list_cluster_custom_object,
                                *kind, **kwargs)
        return result.get("items", []), result.get("metadata", {}).get("resourceVersion", "")

    def list_secrets(self, label_selector: str | None = None) -> tuple[list[dict[str, Any]], str]:
        result = self._call("list secrets", self.core.list_secret_for_all_namespaces,
                            label_selector=label_selector, _preload_content=False)
        body = json.loads(result.data)
        return body.get("items", []), body.get("metadata", {}).get("resourceVersion", "")

    def watch(self, kind: tuple[str, str, str] | str, resource_version: str, *,
              timeout_seconds: int = 60, label_selector: str | None = None
              ) -> Iterator[WatchEvent]:
        """Stream events after ``resource_version``. Raises ``Expired`` on 410 (relist)."""
        watcher = k8s_watch.Watch()
        kwargs: dict[str, Any] = {
            "resource_version": resource_version,
            "timeout_seconds": timeout_seconds,
            "_request_timeout": (self.timeout, timeout_seconds + self.timeout),
            "allow_watch_bookmarks": True,
        }
        if label_selector:
            kwargs["label_selector"] = label_selector
        if kind == "secrets":
            func: Callable[..., Any] = self.core.list_secret_for_all_namespaces
            args: tuple[Any, ...] = ()
            kwargs["_preload_content"] = False
        else:
            func = self.custom.list_cluster_custom_object
            args = tuple(kind)  # type: ignore[arg-type]
        try:
            for event in watcher.stream(func, *args, **kwargs):
                obj = event.get("raw_object") or event.get("object")
                if event["type"] == "ERROR":
                    code = (obj or {}).get("code")
                    if code == 410:
                        raise Expired("The watch position expired; starting over.", status=410)
                    raise PlatformUnavailable(f"The platform ended a watch: {obj}",
                                              status=code)
                if not isinstance(obj, dict):
                    obj = self.api_client.sanitize_for_serialization(obj)
                yield WatchEvent(event["type"], obj)
        except PlatformError:
            raise
        except Exception as exc:
            raise classify(exc, "watch for changes") from exc
        finally:
            watcher.stop()


def build_api_client(*, kubeconfig: str | None = None, in_cluster: bool = False) -> k8s.ApiClient:
    if in_cluster:
        configuration = k8s.Configuration()
        k8s_config.load_incluster_config(client_configuration=configuration)
        return k8s.ApiClient(configuration)
    return k8s_config.new_client_from_config(config_file=kubeconfig)


_gateway: Gateway | None = None
_gateway_lock = threading.Lock()


def get_gateway() -> Gateway:
    """The process-wide gateway built from settings (kubeconfig path or in-cluster)."""
    global _gateway
    with _gateway_lock:
        if _gateway is None:
            from django.conf import settings

            try:
                api_client = build_api_client(kubeconfig=settings.PLATFORM_KUBECONFIG,
                                              in_cluster=settings.PLATFORM_IN_CLUSTER)
            except (k8s_config.ConfigException, OSError) as exc:
                raise PlatformUnavailable(
                    "The portal has no usable connection to the platform (check KUBECONFIG or "
                    f"the in-cluster service account): {exc}") from exc
            _gateway = Gateway(api_client, request_timeout=settings.PLATFORM_REQUEST_TIMEOUT)
        return _gateway


def reset_gateway() -> None:
    """Forget the cached gateway (tests point the portal at a new simulator)."""
    global _gateway
    with _gateway_lock:
        _gateway = None
