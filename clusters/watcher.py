"""One long-lived watcher that turns platform changes into portal state.

Five streams (the ``Kubernetes`` objects, their MachineDeployments, the kubeconfig Secrets, the
``kubernetes`` ApplicationDefinition that carries the schema, and the ``KubernetesNodes`` pools
attached to clusters on the platform), each: list → apply the
differences → watch from the list's resourceVersion → on a dropped connection resume from the
last resourceVersion applied (with backoff) → on 410 relist. An event is applied before its
resourceVersion is remembered, so a failure replays it instead of skipping it; applying is
idempotent (``clusters.observe``), so a replay changes nothing twice.

Only one watcher is active: a lock (PostgreSQL advisory lock, or a file lock on the embedded
default) makes a second one wait until the first goes away. The periodic resync
(``clusters.resync``) runs the same list-and-compare as a relist, so anything missed is
repaired within a minute even without a watcher.

Taking the lock also takes a new term: a fencing token (``LeaderTerm.epoch``, one more each
time). A leader applies a batch only while the row still carries its term, checked inside the
transaction that applies it (the row stays share-locked until commit, so a new term waits for a
batch in flight): a leader whose database session was lost while its process lives (so another
took the lock) has its next batch rolled back and steps down. Two watchers never apply events
at the same time.

``lead`` is the loop around all this (``manage.py watch_platform``, and the embedded runner):
it never exits on a database error. It closes the broken connection, backs off with jitter,
takes the lock again or stands by, and resumes each stream from the last resourceVersion it
applied (a relist if the platform answers 410 Gone).
"""

from __future__ import annotations

import fcntl
import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import (
    InterfaceError,
    OperationalError,
    close_old_connections,
    connection,
    connections,
    transaction,
)
from django.db.models import F
from django.utils import timezone

from clusters import events, observe, options, platform_quota, platform_release, schema
from clusters.models import Cluster, LeaderTerm, NodeGroup, NodePool
from cozystack.gateway import (
    APP_DEFINITIONS,
    APPS,
    KUBERNETES_NODES,
    MACHINE_DEPLOYMENTS,
    SECRETS,
    Expired,
    Gateway,
    Kind,
    Listing,
    NotFound,
    PlatformError,
    WatchEvent,
    get_gateway,
)
from portal import metrics
from portal.caching import held
from portal.connections import between_jobs
from portal.logging import redact

_PENDING = object()  # the queue had nothing more for now


class _Batch(list[WatchEvent]):
    """Events taken off a watch together; ``received_at`` is when the first one arrived
    (``time.monotonic``), so the metrics can tell how long the batch waited and applied."""

    received_at: float = 0.0

logger = logging.getLogger("clusters.watcher")
HEALTH_KEY = "clusters:watcher-health"
TENANT_RESOURCE_LABEL = "internal.cozystack.io/tenantresource=true"
ADVISORY_LOCK_ID = 0x6B756265  # "kube"
# A stream of a resource the platform does not serve (``KubernetesNodes`` before v1.6, or where
# it is not installed) looks again this often: a platform upgrade may bring it.
ABSENT_RETRY_SECONDS = 60.0
# An applier thread reads what every event reads alike (the dialect of observed state) once
# per this many seconds.
HOLD_SECONDS = 1.0


@dataclass
class StreamHealth:
    name: str
    resource_version: str = ""
    last_event_at: float | None = None
    events: int = 0
    applied: int = 0
    relists: int = 0
    reconnects: int = 0
    last_error: str = ""


@dataclass
class WatcherHealth:
    started_at: float = field(default_factory=time.time)
    streams: dict[str, StreamHealth] = field(default_factory=dict)

    def publish(self) -> None:
        try:
            cache.set(HEALTH_KEY, {
                "started_at": self.started_at,
                "published_at": time.time(),
                "streams": {name: vars(s) for name, s in self.streams.items()},
            }, 3600)
        except Exception as exc:  # the cache is down: health waits, watching goes on
            logger.warning("cluster.watch.health_unpublished",
                           extra={"error": redact(repr(exc))[:200]})


def watcher_health() -> dict[str, Any] | None:
    return cache.get(HEALTH_KEY)


# --------------------------------------------------------------------------- applying events

def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def apply_cluster_event(kind: str, obj: dict[str, Any]) -> bool:
    meta = _meta(obj)
    if kind == "DELETED":
        return observe.apply_cluster_object(meta.get("namespace", ""), None,
                                            name=meta.get("name"))
    return observe.apply_cluster_object(meta.get("namespace", ""), obj)


def apply_md_event(kind: str, obj: dict[str, Any]) -> bool:
    return observe.apply_machine_deployment(_meta(obj).get("namespace", ""), obj,
                                            deleted=kind == "DELETED")


def apply_pool_event(kind: str, obj: dict[str, Any]) -> bool:
    return observe.apply_node_pool(_meta(obj).get("namespace", ""), obj,
                                   deleted=kind == "DELETED")


def apply_secret_event(kind: str, obj: dict[str, Any]) -> bool:
    meta = _meta(obj)
    cluster_name = observe.kubeconfig_cluster(meta.get("name", ""))
    if cluster_name is None:
        return False
    return observe.apply_kubeconfig_presence(meta.get("namespace", ""), cluster_name,
                                             kind != "DELETED")


def apply_schema_event(kind: str, obj: dict[str, Any]) -> bool:
    """A new or changed schema: cache it and choose the dialect again (a platform upgrade is
    followed without a restart)."""
    if kind != "DELETED":
        schema.schema_published(obj)
        return choose_release(get_gateway()) > 0
    return False


def choose_release(gateway: Gateway) -> int:
    """Choose the dialect from the schema just cached; when it changed (a platform upgrade),
    read every cluster again in the new one, so what the upgrade migrated in the objects is
    taken into the rows at once. Returns how many clusters changed."""
    before = platform_release.observed_dialect().name
    release = platform_release.current()
    if release.dialect is None or release.dialect.name == before:
        return 0
    logger.info("cluster.watch.release_changed",
                extra={"from": before, "to": release.dialect.name})
    options.forget_all()  # the new release may serve the Option API (or stop serving it)
    platform_quota.forget_all()  # and may add the hierarchical quota's tenant-quota-allocated
    items, _version = gateway.list_clusters()
    return sum(bool(apply_cluster_event("MODIFIED", obj)) for obj in items)


# --------------------------------------------------------------------------- list and compare

def _namespace(slug: str) -> str:
    return f"{observe.TENANT_NS_PREFIX}{slug}"


def sync_clusters(items: Iterable[dict[str, Any]], gateway: Gateway) -> int:
    """Apply every listed ``Kubernetes`` object the portal has not seen at this version, and
    the absence of clusters the platform no longer has (confirmed one by one first: the list
    may predate a creation). Returns how many clusters changed."""
    known = {(_namespace(slug), name): rv for slug, name, rv in
             Cluster.objects.live().values_list("tenant__slug", "name",
                                                "platform_resource_version")}
    changed = 0
    present = set()
    for obj in items:
        meta = _meta(obj)
        key = (meta.get("namespace", ""), meta.get("name", ""))
        present.add(key)
        if key in known and known[key] != str(meta.get("resourceVersion") or ""):
            changed += observe.apply_cluster_object(key[0], obj)
    for (namespace, name), rv in known.items():
        if rv and (namespace, name) not in present and \
                gateway.get_cluster(namespace, name) is None:
            changed += observe.apply_cluster_object(namespace, None, name=name)
    return changed


def sync_machine_deployments(items: Iterable[dict[str, Any]]) -> int:
    """Apply every listed MachineDeployment whose counts differ from the rows, and zero the
    groups whose MachineDeployment is gone. Returns how many groups changed."""
    fields = ("desired_nodes", "observed_nodes", "ready_nodes", "updated_nodes",
              "observed_phase")
    rows = (NodeGroup.objects.filter(cluster__deleted_at__isnull=True)
            .exclude(removed_at__isnull=False, observed_phase="Deleted")
            .order_by("removed_at", "pk")  # live rows (NULL) last: they win the dict
            .values_list("cluster__tenant__slug", "cluster__name", "name", *fields))
    known = {(_namespace(r[0]), r[1], r[2]): tuple(r[3:]) for r in rows}
    pools = {(_namespace(r[0]), r[1], r[2]): tuple(r[3:]) for r in
             NodePool.objects.filter(cluster__deleted_at__isnull=True, removed_at__isnull=True)
             .values_list("cluster__tenant__slug", "cluster__name", "name", *fields)}
    changed = 0
    present = set()
    pools_present = set()
    for obj in items:
        pool = observe.pool_of(obj)
        if pool is not None:
            key = (_meta(obj).get("namespace", ""), *pool)
            pools_present.add(key)
            if pools.get(key) != tuple(observe.md_values(obj).values()):
                changed += observe.apply_machine_deployment(key[0], obj)
            continue
        located = observe.group_of(obj)
        if located is None:
            continue
        key = (_meta(obj).get("namespace", ""), *located)
        present.add(key)
        values = tuple(observe.md_values(obj).values())
        if key in known and known[key] != values:
            changed += observe.apply_machine_deployment(key[0], obj)
    for (namespace, cluster_name, pool_name), values in pools.items():
        if (namespace, cluster_name, pool_name) in pools_present or values[4] == "Deleted":
            continue
        release = f"{observe.RELEASE_PREFIX}{cluster_name}"
        absent = {"metadata": {
            "name": f"{release}-{pool_name}", "namespace": namespace,
            "labels": {observe.CLUSTER_LABEL: release},
            "annotations": {observe.RELEASE_ANNOTATION:
                            f"{observe.POOL_RELEASE_PREFIX}{cluster_name}-{pool_name}"}}}
        changed += observe.apply_machine_deployment(namespace, absent, deleted=True)
    for (namespace, cluster_name, group_name), values in known.items():
        if (namespace, cluster_name, group_name) in present or not (values[0] or values[1]):
            continue
        release = f"{observe.RELEASE_PREFIX}{cluster_name}"
        absent = {"metadata": {"name": f"{release}-{group_name}", "namespace": namespace,
                               "labels": {observe.CLUSTER_LABEL: release}}}
        changed += observe.apply_machine_deployment(namespace, absent, deleted=True)
    return changed


def sync_node_pools(items: Iterable[dict[str, Any]]) -> int:
    """Apply every listed ``KubernetesNodes`` object whose pool differs from its row, and the
    absence of pools whose object is gone. Returns how many pools changed."""
    rows = {(_namespace(slug), cluster, name): seen for slug, cluster, name, seen in
            NodePool.objects.filter(cluster__deleted_at__isnull=True, removed_at__isnull=True)
            .values_list("cluster__tenant__slug", "cluster__name", "name", "spec_seen")}
    changed = 0
    present = set()
    for obj in items:
        located = observe.pool_spec(obj)
        if located is None:
            continue
        namespace = _meta(obj).get("namespace", "")
        present.add((namespace, located[0], located[1]))
        changed += observe.apply_node_pool(namespace, obj)
    for (namespace, cluster_name, name), seen in rows.items():
        if seen and (namespace, cluster_name, name) not in present:
            gone = {"metadata": {"name": f"{cluster_name}-{name}", "namespace": namespace},
                    "spec": {"cluster": cluster_name}}
            changed += observe.apply_node_pool(namespace, gone, deleted=True)
    return changed


def sync_kubeconfigs(items: Iterable[dict[str, Any]]) -> int:
    present = set()
    for obj in items:
        cluster_name = observe.kubeconfig_cluster(_meta(obj).get("name", ""))
        if cluster_name:
            present.add((_meta(obj).get("namespace", ""), cluster_name))
    changed = 0
    for slug, name, ready in Cluster.objects.live().values_list("tenant__slug", "name",
                                                                 "kubeconfig_ready"):
        key = (_namespace(slug), name)
        if (key in present) != ready:
            changed += observe.apply_kubeconfig_presence(key[0], name, key in present)
    return changed


def sync_schema(items: Iterable[dict[str, Any]], gateway: Gateway) -> int:
    for obj in items:
        schema.schema_published(obj)
    return choose_release(gateway)


def sync_all(gateway: Gateway) -> int:
    """The resync: list everything once and apply what differs (same code as a relist). A
    resource the platform does not serve (``optional`` streams) is skipped."""
    changed = 0
    for stream in streams():
        try:
            changed += stream.sync(stream.list(gateway), gateway)
        except NotFound:
            if not stream.optional:
                raise
    return changed


# --------------------------------------------------------------------------- streams

@dataclass
class Stream:
    name: str
    kind: Kind | str
    apply: Callable[[str, dict[str, Any]], bool]
    sync: Callable[[Iterable[dict[str, Any]], Gateway], int]
    label_selector: str | None = None
    # Appliers working on one batch at once, each on its own clusters and connection.
    parallel: int = 1
    # The platform may not serve the resource (404): nothing to follow until it does.
    optional: bool = False

    def list(self, gateway: Gateway) -> Listing:
        return gateway.list_pages(self.kind, label_selector=self.label_selector)

    def cluster_of(self, event: WatchEvent) -> tuple[str, str] | None:
        """(namespace, cluster name) an event is about, to lock all of a batch at once."""
        meta = _meta(event.object)
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if self.kind == APPS:
            return namespace, name
        if self.kind == MACHINE_DEPLOYMENTS:
            located = observe.group_of(event.object)
            return (namespace, located[0]) if located else None
        if self.kind == SECRETS:
            cluster = observe.kubeconfig_cluster(name)
            return (namespace, cluster) if cluster else None
        if self.kind == KUBERNETES_NODES:
            pool = observe.pool_spec(event.object)
            return (namespace, pool[0]) if pool else None
        return None


def streams() -> list[Stream]:
    """The schema first: a relist (and the resync) chooses the dialect before it reads the
    objects with it."""
    return [
        Stream("schema", APP_DEFINITIONS, apply_schema_event, sync_schema),
        Stream("clusters", APPS, apply_cluster_event, sync_clusters),
        # Pools before their machines: a relist learns a pool's size before its nodes.
        Stream("nodepools", KUBERNETES_NODES, apply_pool_event,
               lambda items, _gw: sync_node_pools(items), optional=True),
        Stream("machinedeployments", MACHINE_DEPLOYMENTS, apply_md_event,
               lambda items, _gw: sync_machine_deployments(items), parallel=3),
        Stream("kubeconfigs", SECRETS, apply_secret_event,
               lambda items, _gw: sync_kubeconfigs(items),
               label_selector=TENANT_RESOURCE_LABEL),
    ]


def _transient(exc: BaseException) -> bool:
    """The database went away (terminated session, restart) or refused the transaction for now
    (deadlock, lock timeout): nothing was applied, so the stream replays from its last applied
    resourceVersion after a backoff, instead of skipping the events one by one."""
    return isinstance(exc, (OperationalError, InterfaceError))


class Watcher:
    """Runs every stream in its own thread until ``stop()``; pushes leave from a coalescer.

    ``fence``: the leader's term, checked in every transaction that applies a batch (``None``:
    unfenced, for a watcher that is alone by construction). ``resume``: the resourceVersion
    each stream goes on from (a previous watcher's ``positions()``), instead of a relist.
    ``fenced`` is set when another leader's term replaced this one's: the streams have stopped
    and the watcher must be stopped.
    """

    def __init__(self, gateway: Gateway | None = None, *, watch_timeout: int = 300,
                 max_backoff: float = 30.0, min_backoff: float = 0.5,
                 broadcast_interval: float = 0.25, max_batch: int = 200,
                 push: Callable[[int], None] = events.deliver_changed,
                 fence: Fence | None = None, resume: Mapping[str, str] | None = None) -> None:
        self.fence = fence
        self.resume = dict(resume or {})
        self.fenced = threading.Event()
        self.gateway = gateway or get_gateway()
        self.watch_timeout = watch_timeout
        self.max_backoff = max_backoff
        self.min_backoff = min_backoff
        self.stopping = threading.Event()
        self.health = WatcherHealth()
        self.threads: list[threading.Thread] = []
        self.coalescer = events.Coalescer(broadcast_interval, send=push)
        self.max_batch = max_batch
        self.synced = threading.Event()
        self._synced_streams: set[str] = set()
        self._readers: set[threading.Event] = set()
        self._appliers: dict[str, list[Applier]] = {}
        self._lock = threading.Lock()

    def start(self) -> Watcher:
        events.publish(events.WatcherStarted(timezone.now()))
        self.coalescer.start()
        all_streams = streams()
        for stream in all_streams:
            self.health.streams[stream.name] = StreamHealth(stream.name)
            if stream.parallel > 1:
                self._appliers[stream.name] = [Applier(self, f"apply-{stream.name}-{i}")
                                               for i in range(stream.parallel)]
        for stream in all_streams:
            thread = threading.Thread(target=self._run_stream, args=(stream, len(all_streams)),
                                      name=f"watch-{stream.name}", daemon=True)
            thread.start()
            self.threads.append(thread)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        with self._lock:
            readers = list(self._readers)
        for done in readers:
            done.set()
            self.gateway.interrupt_watches(done)
        for thread in self.threads:
            thread.join(timeout)
        for appliers in self._appliers.values():
            for applier in appliers:
                applier.stop(timeout)
        self.coalescer.stop(timeout)
        self.health.publish()

    def positions(self) -> dict[str, str]:
        """The last resourceVersion each stream applied (where a successor resumes)."""
        return {name: health.resource_version for name, health in self.health.streams.items()
                if health.resource_version}

    def _deposed(self, stream: Stream) -> None:
        """Another leader took a newer term: stop every stream (nothing more is applied)."""
        logger.warning("cluster.watch.fenced", extra={"stream": stream.name,
                                                      "epoch": getattr(self.fence, "epoch", 0)})
        self.fenced.set()
        self.stopping.set()
        with self._lock:
            readers = list(self._readers)
        for done in readers:
            done.set()
            self.gateway.interrupt_watches(done)

    def _check_fence(self) -> None:
        """In the transaction that applies: raise ``Fenced`` unless the term is still ours."""
        if self.fence is not None:
            self.fence.check()

    def drop_connections(self) -> None:
        """Cut the open watch connections (as a network blip would); streams resume."""
        with self._lock:
            readers = list(self._readers)
        for done in readers:
            self.gateway.interrupt_watches(done)

    def _relist(self, stream: Stream) -> str:
        listing = stream.list(self.gateway)
        with transaction.atomic():
            self._check_fence()
        stream.sync(listing, self.gateway)
        return listing.resource_version

    def _backoff(self, failures: int) -> float:
        return min(self.max_backoff, self.min_backoff * 2 ** min(failures - 1, 8))

    def _batches(self, stream: Stream, resource_version: str) -> Iterator[list[WatchEvent]]:
        """Events of one watch, grouped as they queue up: a reader thread takes them off the
        connection while the previous group is being applied, so a burst is applied in a few
        transactions rather than one per event. Ends (or raises) when the watch does."""
        queue: Queue[Any] = Queue(maxsize=10 * self.max_batch)
        done = threading.Event()
        with self._lock:
            self._readers.add(done)

        def hand_over(item: Any) -> None:
            item = (time.monotonic(), item)
            while True:
                try:
                    queue.put(item, timeout=0.5)
                    return
                except Full:
                    if done.is_set():  # nobody takes them any more
                        return

        def take() -> tuple[float, Any]:
            while True:
                try:
                    return queue.get(timeout=0.5)
                except Empty:
                    if self.stopping.is_set():
                        return 0.0, None

        def read() -> None:
            try:
                for event in self.gateway.watch(stream.kind, resource_version,
                                                timeout_seconds=self.watch_timeout,
                                                label_selector=stream.label_selector,
                                                stop=done):
                    hand_over(event)
                hand_over(None)
            except BaseException as exc:  # handed to the applying thread
                hand_over(exc)

        reader = threading.Thread(target=read, name=f"read-{stream.name}", daemon=True)
        reader.start()
        try:
            while True:
                arrived, item = take()
                events = _Batch()
                events.received_at = arrived
                while isinstance(item, WatchEvent):
                    events.append(item)
                    if len(events) >= self.max_batch:
                        item = _PENDING
                        break
                    try:
                        _arrived, item = queue.get_nowait()
                    except Empty:
                        item = _PENDING
                if events:
                    yield events
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
        finally:
            done.set()
            self.gateway.interrupt_watches(done)
            reader.join(1.0)
            with self._lock:
                self._readers.discard(done)

    def _apply_parallel(self, stream: Stream, events: list[WatchEvent],
                        health: StreamHealth) -> None:
        """Split a batch by cluster over the stream's appliers and wait for all of them: the
        events of one cluster stay in order, and the batch is done before the next begins (so
        the resourceVersion to resume from is always fully applied)."""
        appliers = self._appliers.get(stream.name) or []
        if len(appliers) < 2 or len(events) < 2 * len(appliers):
            self._apply(stream, events, health)
            return
        parts: list[list[WatchEvent]] = [[] for _ in appliers]
        for event in events:
            parts[hash(stream.cluster_of(event)) % len(appliers)].append(event)
        jobs = [applier.submit(stream, part, health)
                for applier, part in zip(appliers, parts, strict=True) if part]
        errors = [job.wait() for job in jobs]
        for error in errors:
            if error is not None:
                raise error

    def _apply(self, stream: Stream, events: list[WatchEvent], health: StreamHealth) -> None:
        """Apply a group of events in one transaction; if it fails, one by one (a bad event
        must not hold back the others; it is retried by the next relist or resync)."""
        changes = [e for e in events if e.type != "BOOKMARK"]
        if not changes:
            return
        applied = 0
        try:
            with observe.batch():
                self._check_fence()
                observe.lock_clusters(k for k in map(stream.cluster_of, changes) if k)
                for event in changes:
                    applied += bool(stream.apply(event.type, event.object))
            health.applied += applied
        except Exception as exc:
            if isinstance(exc, Fenced) or _transient(exc):
                raise  # rolled back: replayed from the last applied resourceVersion, or never
            logger.warning("cluster.watch.batch_failed", exc_info=True,
                           extra={"stream": stream.name, "events": len(changes)})
            for event in changes:
                try:
                    with observe.batch():
                        self._check_fence()
                        health.applied += bool(stream.apply(event.type, event.object))
                except Exception as error:
                    if len(changes) == 1 or isinstance(error, Fenced) or _transient(error):
                        raise
                    logger.exception("cluster.watch.event_failed",
                                     extra={"stream": stream.name,
                                            "rv": event.resource_version})
        health.events += len(changes)
        health.last_event_at = time.time()

    @staticmethod
    def _measure(stream: Stream, events: list[WatchEvent], changed: int) -> None:
        count = sum(e.type != "BOOKMARK" for e in events)
        if count:
            received_at = getattr(events, "received_at", 0.0)
            metrics.watcher_applied(stream.name, events=count, changed=changed,
                                    lag=time.monotonic() - received_at if received_at else None)

    def _run_stream(self, stream: Stream, total: int) -> None:
        health = self.health.streams[stream.name]
        resource_version = self.resume.get(stream.name, "")
        if resource_version:  # a successor of a watcher that had listed: it goes on from there
            health.resource_version = resource_version
            with self._lock:
                self._synced_streams.add(stream.name)
                if len(self._synced_streams) == total:
                    self.synced.set()
        failures = 0
        last_publish = 0.0
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    if not resource_version:
                        resource_version = self._relist(stream)
                        health.relists += 1
                        metrics.watcher_relisted(stream.name)
                        health.resource_version = resource_version
                        with self._lock:
                            self._synced_streams.add(stream.name)
                            if len(self._synced_streams) == total:
                                self.synced.set()
                        self.health.publish()
                    for events in self._batches(stream, resource_version):
                        applied_before = health.applied
                        self._apply_parallel(stream, events, health)
                        self._measure(stream, events, health.applied - applied_before)
                        resource_version = events[-1].resource_version or resource_version
                        health.resource_version = resource_version
                        failures = 0
                        if time.monotonic() - last_publish > 5:
                            last_publish = time.monotonic()
                            self.health.publish()
                except Fenced:
                    self._deposed(stream)
                    return
                except Expired:
                    resource_version = ""
                    logger.info("cluster.watch.expired", extra={"stream": stream.name})
                except PlatformError as exc:
                    if isinstance(exc, NotFound) and stream.optional:
                        # Not served by this platform: nothing to follow (the stream counts as
                        # synced); look again later, without a reconnect storm or a warning.
                        resource_version = ""
                        with self._lock:
                            self._synced_streams.add(stream.name)
                            if len(self._synced_streams) == total:
                                self.synced.set()
                        logger.info("cluster.watch.not_served", extra={"stream": stream.name})
                        self.stopping.wait(ABSENT_RETRY_SECONDS)
                        continue
                    failures += 1
                    health.reconnects += 1
                    metrics.watcher_reconnected(stream.name)
                    health.last_error = exc.message
                    self.health.publish()
                    delay = self._backoff(failures)
                    logger.warning("cluster.watch.reconnect",
                                   extra={"stream": stream.name, "delay": delay,
                                          "error": exc.message})
                    self.stopping.wait(delay)
                except Exception as exc:  # a database hiccup: replay from the last applied rv
                    failures += 1
                    health.reconnects += 1
                    metrics.watcher_reconnected(stream.name)
                    health.last_error = redact(repr(exc))[:300]
                    if _transient(exc):
                        logger.warning("cluster.watch.database_error",
                                       extra={"stream": stream.name,
                                              "error": health.last_error})
                    else:
                        logger.exception("cluster.watch.error", extra={"stream": stream.name})
                    _close_connection()
                    self.stopping.wait(self._backoff(failures))
        finally:
            connections.close_all()


class _Job:
    def __init__(self, stream: Stream, events: list[WatchEvent], health: StreamHealth) -> None:
        self.stream, self.events, self.health = stream, events, health
        self.error: BaseException | None = None
        self.done = threading.Event()

    def wait(self) -> BaseException | None:
        self.done.wait()
        return self.error


class Applier:
    """A thread with its own database connection that applies the share of a batch it is
    handed (its clusters only, so appliers never wait on each other's row locks)."""

    def __init__(self, watcher: Watcher, name: str) -> None:
        self.watcher = watcher
        self.jobs: Queue[_Job | None] = Queue()
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, stream: Stream, events: list[WatchEvent], health: StreamHealth) -> _Job:
        job = _Job(stream, events, health)
        self.jobs.put(job)
        return job

    def stop(self, timeout: float) -> None:
        self.jobs.put(None)
        self.thread.join(timeout)

    def _run(self) -> None:
        try:
            while (job := self.jobs.get()) is not None:
                between_jobs()
                try:
                    # What every event reads alike (the dialect) is read once a moment.
                    with held(HOLD_SECONDS):
                        self.watcher._apply(job.stream, job.events, job.health)
                except BaseException as exc:  # the stream thread decides what to do
                    job.error = exc
                    _close_connection()
                finally:
                    job.done.set()
        finally:
            connections.close_all()


# --------------------------------------------------------------------------- leader lock


def _close_connection() -> None:
    """Drop this thread's database connection (broken, or holding a session to end)."""
    try:
        connection.close()
    except Exception:  # already gone
        logger.debug("cluster.watch.close_failed", exc_info=True)


class Fenced(Exception):
    """Another leader took a newer term: this one's write is refused (rolled back)."""


class Fence:
    """A leader's term: ``check()`` inside the transaction that writes."""

    def __init__(self, name: str, epoch: int) -> None:
        self.name, self.epoch = name, epoch

    def check(self) -> None:
        """Raise ``Fenced`` unless the term row still carries this epoch. On PostgreSQL the row
        stays share-locked until the transaction ends, so a new leader's term (an update of
        the row) waits for the write in flight, and every later write sees the new term."""
        table = connection.ops.quote_name(LeaderTerm._meta.db_table)
        lock = " FOR SHARE" if connection.vendor == "postgresql" else ""
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT epoch FROM {table} WHERE name = %s{lock}",  # noqa: S608 - the table name is the model's
                           [self.name])
            row = cursor.fetchone()
        if row is None or row[0] != self.epoch:
            raise Fenced(f"term {self.epoch} of {self.name} is over "
                         f"(now {row[0] if row else 'none'})")


def take_term(name: str) -> int:
    """Begin a new term of ``name`` (the caller just took its lock): the fencing token."""
    holder = f"{socket.gethostname()}:{os.getpid()}:{threading.current_thread().name}"[:200]
    with transaction.atomic():
        LeaderTerm.objects.get_or_create(name=name)
        LeaderTerm.objects.filter(name=name).update(epoch=F("epoch") + 1, holder=holder,
                                                    taken_at=timezone.now())
        return LeaderTerm.objects.values_list("epoch", flat=True).get(name=name)


class LeaderLock:
    """One active watcher: PostgreSQL advisory lock, or a file lock for SQLite.

    The advisory lock belongs to the database session of the thread that took it; ``held()``
    tells whether that session (and so the lock) is still there. Each acquisition takes a new
    term (``epoch``, see ``fence()``).
    """

    def __init__(self, key: int = ADVISORY_LOCK_ID) -> None:
        self.key = key
        self.term_name = f"watcher-{key:x}"
        self.epoch = 0
        self._file: Any = None

    def try_acquire(self) -> bool:
        if not self._try_lock():
            return False
        try:
            self.epoch = take_term(self.term_name)
        except BaseException:
            self.release()
            raise
        return True

    def fence(self) -> Fence:
        return Fence(self.term_name, self.epoch)

    def _try_lock(self) -> bool:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [self.key])
                return bool(cursor.fetchone()[0])
        path = Path(settings.VAR_DIR) / f"watcher-{self.key:x}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("w")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._file.close()
            self._file = None
            return False
        return True

    def held(self) -> bool:
        if connection.vendor != "postgresql":
            return self._file is not None
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                    "AND pid = pg_backend_pid() AND objid = %s", [self.key])
                return bool(cursor.fetchone()[0])
        except Exception:  # the session is gone, and the lock with it; so is the connection
            _close_connection()
            return False

    def wait(self, stopping: threading.Event, poll: float = 2.0) -> bool:
        while not stopping.is_set():
            if self.try_acquire():
                return True
            stopping.wait(poll)
        return False

    def release(self) -> None:
        if connection.vendor == "postgresql":
            try:
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_advisory_unlock(%s)", [self.key])
            except Exception:  # the session is gone, and the lock with it
                logger.info("cluster.watch.lock_session_gone")
        elif self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


# --------------------------------------------------------------------------- the leader's loop


def lead(stopping: threading.Event, *, key: int = ADVISORY_LOCK_ID, lock_poll: float = 2.0,
         lock_check: float = 2.0, watch_timeout: int = 300, min_backoff: float = 1.0,
         max_backoff: float = 15.0,
         say: Callable[[str], None] = logger.info,
         make_watcher: Callable[..., Watcher] = Watcher) -> None:
    """Watch the platform whenever this process holds the leader lock, until ``stopping``.

    Stands by while another watcher leads; steps down when its lock's session is lost (checked
    every ``lock_check`` seconds) or another leader's term fences it; never exits on a database
    error: the broken connection is closed, and after a backoff with jitter the loop takes the
    lock again (or stands by). Each new watcher resumes the streams of the previous one from
    their last applied resourceVersion.
    """
    lock = LeaderLock(key)
    positions: dict[str, str] = {}
    failures = 0
    while not stopping.is_set():
        watcher: Watcher | None = None
        try:
            if not lock.try_acquire():
                say("Another watcher is active; waiting for its lock.")
                if not lock.wait(stopping, poll=lock_poll):
                    return
            say(f"Watching the management cluster (term {lock.epoch}"
                + (", resuming)." if positions else ")."))
            watcher = make_watcher(watch_timeout=watch_timeout, fence=lock.fence(),
                                   resume=positions).start()
            metrics.watcher_leading(True)
            failures = 0
            next_check = time.monotonic() + lock_check
            while not stopping.wait(0.2):
                if watcher.fenced.is_set():
                    say("Another watcher took over (newer term); stepping down.")
                    break
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + lock_check
                    if not lock.held():
                        say("Lost the leader lock; stepping down.")
                        break
                    # A heartbeat: the web role's metrics tell a quiet platform from a
                    # watcher that stopped (portal_watcher_heartbeat_age_seconds).
                    watcher.health.publish()
        except Exception as exc:
            failures += 1
            if _transient(exc):
                logger.warning("cluster.watch.database_error",
                               extra={"error": redact(repr(exc))[:300]})
            else:
                logger.exception("cluster.watch.leader_error")
        finally:
            metrics.watcher_leading(False)
            if watcher is not None:
                watcher.stop()
                positions = watcher.positions() or positions
            lock.release()
            # A new session next time: no broken connection kept, no lock left behind.
            _close_connection()
        if failures and not stopping.is_set():
            delay = min(max_backoff, min_backoff * 2 ** min(failures - 1, 6))
            stopping.wait(random.uniform(delay / 2, delay))
