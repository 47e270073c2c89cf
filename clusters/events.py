"""Domain events of the clusters domain (published through ``portal.events``).

Subscribers register in their ``AppConfig.ready``: billing meters ``ClusterObserved`` in the
applying transaction, the web floor pushes ``ClusterChanged`` to open pages, staff are alerted
of ``OperationFinished`` failures. The domain imports none of them.

``ClusterChanged`` is delivered with care for its volume: ``batched()`` collects the clusters a
block changed and delivers each once at its end, and a process that applies many changes (the
watcher) installs a ``Coalescer`` that delivers from a background thread, at most once per
cluster per interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager as ContextManager
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from django.apps import apps
from django.db import connection, connections

from portal.connections import between_jobs
from portal.events import deliver, publish, subscribe

logger = logging.getLogger("clusters.events")

if TYPE_CHECKING:  # the events name models in their fields only
    from clusters.models import Cluster, Hibernation, NodeGroup, NodePool, Operation

__all__ = ["ClusterChanged", "ClusterExpiring", "ClusterObserved", "ClusterPhaseChanged",
           "Coalescer", "MaintenanceScheduled", "OfferingsChanged", "OperationFinished",
           "VersionEndOfLifeSoon", "WatcherStarted",
           "batched", "cluster_changed", "count_change", "count_changes", "counting",
           "deliver_changed",
           "on_delivery_thread", "publish", "subscribe"]


@dataclass(frozen=True)
class ClusterChanged:
    """A cluster's committed state changed: whatever shows it should show it anew."""

    cluster_id: int


@dataclass(frozen=True)
class ClusterObserved:
    """The platform's view of a cluster was applied (in the applying transaction).

    ``groups`` are the node groups that still have nodes on the platform: live ones, and removed
    ones whose nodes are not gone yet. ``pools`` are the ``KubernetesNodes`` pools the platform
    runs for the cluster outside its spec (v1.6), likewise.
    """

    cluster: Cluster
    groups: list[NodeGroup]
    at: datetime
    pools: list[NodePool] = field(default_factory=list)


@dataclass(frozen=True)
class OperationFinished:
    """An operation reached a final state (succeeded, failed or cancelled).

    ``actor_label`` names the person who ended it (a cancel, staff taking over); it is empty
    when the platform or a worker decided.
    """

    operation: Operation
    actor_label: str = ""


@dataclass(frozen=True)
class ClusterPhaseChanged:
    """A cluster's phase changed (published in the transaction that writes the new phase):
    ``before`` → ``cluster.phase``. Webhooks and emails say "ready" and "deleted" from it."""

    cluster: Cluster
    before: str
    at: datetime


@dataclass(frozen=True)
class VersionEndOfLifeSoon:
    """A live cluster runs a Kubernetes version whose end of life (set by staff) is near or
    past; published once per cluster and version, in the transaction that records it."""

    cluster: Cluster
    version: str
    end_of_life_on: date
    upgrade_to: str
    at: datetime


@dataclass(frozen=True)
class MaintenanceScheduled:
    """An automatic upgrade was scheduled for a maintenance window (published once per
    scheduled upgrade, in the transaction that schedules it): the announcement."""

    cluster: Cluster
    from_version: str
    to_version: str
    starts_at: datetime
    ends_at: datetime
    time_zone: str
    rolls: str  # what will roll, in words
    at: datetime


@dataclass(frozen=True)
class ClusterExpiring:
    """A cluster's expiry is ``lead_hours`` away (24 or 1): published once per cluster, expiry
    time and lead, in the transaction that records the reminder (``clusters.expiry``)."""

    cluster: Cluster
    expires_at: datetime
    lead_hours: int
    at: datetime


@dataclass(frozen=True)
class OfferingsChanged:
    """Staff changed what tenants are offered (hidden items, end-of-life dates)."""


@dataclass(frozen=True)
class WatcherStarted:
    """The platform watcher starts following the platform (before its first event)."""

    at: datetime


_delivery_contexts: list[Callable[[], ContextManager[Any]]] = []
_batch_ends: list[Callable[[], None]] = []


def on_delivery_thread(context: Callable[[], ContextManager[Any]],
                       batch_end: Callable[[], None] | None = None) -> None:
    """Enter ``context()`` around the life of every background delivery thread (a subscriber
    that keeps per-thread resources, such as an event loop for its sends, sets them up there),
    and call ``batch_end()`` there after each batch of deliveries (a subscriber that gathers
    what the batch's deliveries asked of it sends it then, together)."""
    if context not in _delivery_contexts:
        _delivery_contexts.append(context)
    if batch_end is not None and batch_end not in _batch_ends:
        _batch_ends.append(batch_end)


# ClusterChanged: batched within a block, or coalesced by an installed Coalescer.

_local = threading.local()
_sink: Callable[[int], None] | None = None


def deliver_changed(cluster_id: int) -> None:
    """Deliver one ``ClusterChanged`` to its after-commit subscribers, now, in this thread."""
    deliver(ClusterChanged(cluster_id))


def _changed(cluster_id: int) -> None:
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.add(cluster_id)
    elif _sink is not None:
        _sink(cluster_id)
    else:
        deliver_changed(cluster_id)


def cluster_changed(cluster_id: int) -> None:
    """Publish that ``cluster_id`` changed (delivered once the current transaction commits,
    batched or coalesced), and count the change in the cluster's revision, in the current
    transaction: a state read with its revision in one snapshot is never older than another
    read with a lower one (the live pages order pushes by it)."""
    count_change(cluster_id)
    publish(ClusterChanged(cluster_id), after_commit=lambda: _changed(cluster_id))


def count_change(cluster_id: int) -> None:
    """One more change of ``cluster_id`` in its ``ClusterRevision``: now (one statement), or
    with the others of a ``counting`` block when it ends. Concurrent writers of one cluster
    wait for each other on its row, so every change gets its own number, in commit order."""
    deferred = getattr(_local, "counting", None)
    if deferred is not None:
        deferred.add(cluster_id)
        return
    count_changes([cluster_id])


def count_changes(cluster_ids: Iterable[int]) -> dict[int, int]:
    """One more change of each of these clusters, in one statement on PostgreSQL (rows locked
    in id order, so two writers cannot deadlock); their new revisions."""
    ids = sorted(set(cluster_ids))
    if not ids:
        return {}
    table = connection.ops.quote_name(
        apps.get_model("clusters", "ClusterRevision")._meta.db_table)
    # Only the quoted table name is interpolated; the ids are parameters.
    upsert = (f"ON CONFLICT (cluster_id) DO UPDATE SET revision = {table}.revision + 1 "
              f"RETURNING cluster_id, revision")
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                f"INSERT INTO {table} (cluster_id, revision) "  # noqa: S608
                f"SELECT id, 1 FROM unnest(%s::bigint[]) AS id ORDER BY id {upsert}", [ids])
            return dict(cursor.fetchall())
        found = {}
        for cluster_id in ids:
            cursor.execute(f"INSERT INTO {table} (cluster_id, revision) "  # noqa: S608
                           f"VALUES (%s, 1) {upsert}", [cluster_id])
            found.update(cursor.fetchall())
        return found


@contextmanager
def counting() -> Iterator[None]:
    """Within the block (inside one transaction), the changes of each cluster are counted
    together when the block ends: one statement for a batch of observations rather than one
    per cluster. A block that raises counts nothing (its transaction rolls back)."""
    if getattr(_local, "counting", None) is not None:
        yield
        return
    deferred: set[int] = set()
    _local.counting = deferred
    try:
        yield
        _local.counting = None
        count_changes(deferred)
    finally:
        _local.counting = None


@contextmanager
def batched() -> Iterator[None]:
    """Deliver each cluster changed inside the block once, when the block ends (a task that
    commits several steps of one change sends one push, with the final state)."""
    if getattr(_local, "pending", None) is not None:
        yield
        return
    pending: set[int] = set()
    _local.pending = pending
    try:
        yield
    finally:
        _local.pending = None
        for cluster_id in sorted(pending):
            _changed(cluster_id)


class Coalescer:
    """Background delivery: many changes of one cluster within ``interval`` make one.

    Clusters are delivered in the order of their oldest change not yet delivered, ``batch`` at
    a time: when deliveries fall behind, a cluster waits only for those that changed before it
    (a cluster that changes again meanwhile keeps its place), never for one big batch taken as
    a whole. A cluster just delivered waits ``interval`` before its next delivery, so a busy one
    cannot take the place of the others.
    """

    def __init__(self, interval: float = 0.25,
                 send: Callable[[int], None] = deliver_changed, batch: int = 20) -> None:
        self.interval = interval
        self.send = send
        self.batch = batch
        self._pending: dict[int, None] = {}  # insertion order: oldest undelivered change first
        self._resting: dict[int, float] = {}  # cluster → when its next delivery may leave
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.sent = 0

    def submit(self, cluster_id: int) -> None:
        with self._cond:
            if cluster_id not in self._pending:
                self._pending[cluster_id] = None
                self._cond.notify()

    def start(self) -> Coalescer:
        global _sink
        self._thread = threading.Thread(target=self._run, name="broadcast", daemon=True)
        self._thread.start()
        _sink = self.submit
        return self

    def stop(self, timeout: float = 5.0) -> None:
        global _sink
        if _sink == self.submit:
            _sink = None
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _take(self) -> list[int]:
        """The next batch, oldest first, waiting for one if need be; empty once stopped and
        nothing is left (what is pending at stop leaves at once, resting or not)."""
        with self._cond:
            while True:
                now = time.monotonic()
                self._resting = {c: at for c, at in self._resting.items() if at > now}
                batch: list[int] = []
                wake: float | None = None
                for cluster_id in self._pending:
                    at = self._resting.get(cluster_id)
                    if at is None or self._stopping:
                        batch.append(cluster_id)
                        if len(batch) == self.batch:
                            break
                    elif wake is None or at < wake:
                        wake = at
                if batch:
                    for cluster_id in batch:
                        del self._pending[cluster_id]
                    return batch
                if self._stopping:
                    return []
                self._cond.wait(None if wake is None else wake - now)

    def _run(self) -> None:
        with ExitStack() as stack:
            for context in _delivery_contexts:
                stack.enter_context(context())
            try:
                while batch := self._take():
                    between_jobs()
                    for cluster_id in batch:
                        self.send(cluster_id)
                        self.sent += 1
                        with self._cond:
                            self._resting[cluster_id] = time.monotonic() + self.interval
                    for batch_end in _batch_ends:
                        try:
                            batch_end()
                        except Exception:  # a delivery must never stop the deliveries
                            logger.exception("cluster.changed.batch_end_failed")
            finally:
                connections.close_all()


# --------------------------------------------------------------------------- part B: hibernation


@dataclass(frozen=True)
class ClusterHibernated:
    """A cluster's workers went to 0 nodes (its hibernate operation succeeded); published in
    that transaction. ``wakes_at``: the schedule's next wake, if any."""

    cluster: Cluster
    hibernation: Hibernation
    at: datetime
    wakes_at: datetime | None = None


@dataclass(frozen=True)
class ClusterWoken:
    """A hibernating cluster's node groups are back (its wake operation succeeded)."""

    cluster: Cluster
    hibernation: Hibernation
    at: datetime


@dataclass(frozen=True)
class WakeFailing:
    """A cluster's wake failed ``attempts`` times (published once, after the retries): staff
    are alerted; the planner keeps trying."""

    hibernation: Hibernation
    operation: Operation | None
    attempts: int


__all__ += ["ClusterHibernated", "ClusterWoken", "WakeFailing"]
