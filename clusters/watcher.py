"""One long-lived watcher that turns platform changes into portal state.

Three streams (the ``Kubernetes`` objects, their MachineDeployments, the kubeconfig Secrets),
each: list → apply → watch from the list's resourceVersion → on a dropped connection resume
from the last resourceVersion seen (with backoff) → on 410 relist. Only one watcher is active:
a lock (PostgreSQL advisory lock, or a file lock on the embedded default) makes a second one
wait until the first goes away.
"""

from __future__ import annotations

import fcntl
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import close_old_connections, connection, connections
from django.utils import timezone

from billing import metering
from clusters import observe
from clusters.models import Cluster, Operation
from clusters.platform.gateway import (
    APPS,
    MACHINE_DEPLOYMENTS,
    Expired,
    Gateway,
    PlatformError,
    get_gateway,
)

logger = logging.getLogger("clusters.watcher")
HEALTH_KEY = "clusters:watcher-health"
KUBECONFIG_SUFFIX = "-admin-kubeconfig"
TENANT_RESOURCE_LABEL = "internal.cozystack.io/tenantresource=true"
ADVISORY_LOCK_ID = 0x6B756265  # "kube"


@dataclass
class StreamHealth:
    name: str
    resource_version: str = ""
    last_event_at: float | None = None
    last_lag_ms: float | None = None
    events: int = 0
    relists: int = 0
    reconnects: int = 0
    last_error: str = ""


@dataclass
class WatcherHealth:
    started_at: float = field(default_factory=time.time)
    streams: dict[str, StreamHealth] = field(default_factory=dict)

    def publish(self) -> None:
        cache.set(HEALTH_KEY, {
            "started_at": self.started_at,
            "published_at": time.time(),
            "streams": {name: vars(s) for name, s in self.streams.items()},
        }, 3600)


def watcher_health() -> dict[str, Any] | None:
    return cache.get(HEALTH_KEY)


# --------------------------------------------------------------------------- applying objects

def _apply_cluster(kind: str, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata", {})
    namespace = meta.get("namespace", "")
    if kind == "DELETED":
        observe.apply_cluster_object(namespace, None, name=meta.get("name"))
    else:
        observe.apply_cluster_object(namespace, obj)


def _apply_md(kind: str, obj: dict[str, Any]) -> None:
    namespace = obj.get("metadata", {}).get("namespace", "")
    observe.apply_machine_deployment(namespace, obj, deleted=kind == "DELETED")


def _apply_secret(kind: str, obj: dict[str, Any]) -> None:
    meta = obj.get("metadata", {})
    name = meta.get("name", "")
    if not (name.startswith("kubernetes-") and name.endswith(KUBECONFIG_SUFFIX)):
        return
    cluster_name = name[len("kubernetes-"):-len(KUBECONFIG_SUFFIX)]
    observe.apply_kubeconfig_presence(meta.get("namespace", ""), cluster_name,
                                      kind != "DELETED")


def _absent_clusters(items: list[dict[str, Any]]) -> None:
    """After a relist: clusters the platform no longer has were deleted while nobody watched."""
    present = {(i["metadata"].get("namespace"), i["metadata"].get("name")) for i in items}
    submitted = Cluster.objects.live().select_related("tenant").exclude(
        operations__kind=Operation.Kind.CREATE, operations__submitted_at__isnull=True)
    for cluster in submitted.filter(platform_resource_version__gt=""):
        if (cluster.tenant.namespace, cluster.name) not in present:
            observe.apply_cluster_object(cluster.tenant.namespace, None, name=cluster.name)


@dataclass
class Stream:
    name: str
    kind: tuple[str, str, str] | str
    apply: Callable[[str, dict[str, Any]], None]
    label_selector: str | None = None
    after_list: Callable[[list[dict[str, Any]]], None] | None = None


def streams() -> list[Stream]:
    return [
        Stream("clusters", APPS, _apply_cluster, after_list=_absent_clusters),
        Stream("machinedeployments", MACHINE_DEPLOYMENTS, _apply_md),
        Stream("kubeconfigs", "secrets", _apply_secret, label_selector=TENANT_RESOURCE_LABEL),
    ]


class Watcher:
    """Runs every stream in its own thread until ``stop()``."""

    def __init__(self, gateway: Gateway | None = None, *, watch_timeout: int = 300,
                 max_backoff: float = 30.0) -> None:
        self.gateway = gateway or get_gateway()
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.stopping = threading.Event()
        self.health = WatcherHealth()
        self.threads: list[threading.Thread] = []

    def start(self) -> Watcher:
        metering.reconcile_ledger(timezone.now())
        for stream in streams():
            self.health.streams[stream.name] = StreamHealth(stream.name)
            thread = threading.Thread(target=self._run_stream, args=(stream,),
                                      name=f"watch-{stream.name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout)

    def _list(self, stream: Stream) -> str:
        if stream.kind == "secrets":
            items, rv = self.gateway.list_secrets(label_selector=stream.label_selector)
        else:
            items, rv = self.gateway.list_resource(stream.kind,  # type: ignore[arg-type]
                                                   label_selector=stream.label_selector)
        for item in items:
            stream.apply("ADDED", item)
        if stream.after_list:
            stream.after_list(items)
        return rv

    def _run_stream(self, stream: Stream) -> None:
        health = self.health.streams[stream.name]
        resource_version = ""
        failures = 0
        while not self.stopping.is_set():
            close_old_connections()
            try:
                if not resource_version:
                    resource_version = self._list(stream)
                    health.relists += 1
                    health.resource_version = resource_version
                    self.health.publish()
                for event in self.gateway.watch(stream.kind, resource_version,
                                                timeout_seconds=self.watch_timeout,
                                                label_selector=stream.label_selector):
                    if self.stopping.is_set():
                        return
                    rv = event.object.get("metadata", {}).get("resourceVersion")
                    if event.type != "BOOKMARK":
                        stream.apply(event.type, event.object)
                        health.events += 1
                        health.last_event_at = time.time()
                    if rv:
                        resource_version = rv
                        health.resource_version = rv
                    failures = 0
                    if health.events % 50 == 0:
                        self.health.publish()
            except Expired:
                resource_version = ""  # relist
                logger.info("cluster.watch.expired", extra={"stream": stream.name})
            except PlatformError as exc:
                failures += 1
                health.reconnects += 1
                health.last_error = exc.message
                self.health.publish()
                delay = min(self.max_backoff, 0.5 * 2 ** min(failures, 6))
                logger.warning("cluster.watch.reconnect",
                               extra={"stream": stream.name, "delay": delay,
                                      "error": exc.message})
                self.stopping.wait(delay)
            except Exception:
                failures += 1
                health.reconnects += 1
                logger.exception("cluster.watch.error", extra={"stream": stream.name})
                self.stopping.wait(min(self.max_backoff, 0.5 * 2 ** min(failures, 6)))
        connections.close_all()


# --------------------------------------------------------------------------- leader lock

class LeaderLock:
    """One active watcher: PostgreSQL advisory lock, or a file lock for SQLite."""

    def __init__(self) -> None:
        self._file: Any = None

    def try_acquire(self) -> bool:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK_ID])
                return bool(cursor.fetchone()[0])
        path = Path(settings.VAR_DIR) / "watcher.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            return False
        return True

    def wait(self, stopping: threading.Event, poll: float = 2.0) -> bool:
        while not stopping.is_set():
            if self.try_acquire():
                return True
            stopping.wait(poll)
        return False

    def release(self) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK_ID])
        elif self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
