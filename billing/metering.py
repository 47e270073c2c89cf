"""Metering: the only module that writes usage.

The ledger is a set of segments "``quantity`` of ``sku`` for this cluster (and node group)
from ``start`` to ``end``". ``observe_cluster`` is called by ``clusters.observe`` inside the
transaction that applies each platform observation; it reconciles the cluster's open segments
with what the observation says is running:

* a key (node group, SKU) whose quantity is unchanged keeps its open segment;
* a key whose quantity changed, or that stopped, has its segment closed at the observation
  instant; a key that started (or changed) gets a new segment opened at that same instant.
  Closed and opened segments meet exactly, so nothing is lost or counted twice;
* replaying an observation changes nothing (same quantities → nothing to do), and an
  observation older than what the ledger already holds for the cluster (an open segment that
  starts later, or a segment that ends later) is ignored: the past is never rewritten.

What is metered, from **observed** state (never min/max): worker nodes per instance type and
node group (``observed_nodes``), GPUs per model (nodes × GPUs per node), disk GiB
(disk size × nodes), control-plane replicas per size preset while the cluster exists on the
platform, and each enabled add-on the price book has a SKU for (per cluster-hour).

``KubernetesNodes`` pools (Cozystack v1.6: worker pools attached to a cluster on the platform,
outside its spec) are metered as the platform reports them, like node groups: their
MachineDeployment's ``status.replicas`` × the pool's instance type (or ``node.custom``), GPUs
and disk. They are the cluster's nodes and the tenant pays for them; the cluster page shows them
and their cost. Their usage is the cluster's, with no node group (the ledger's node-group column
names the portal's own groups only), summed per SKU when several pools share one. Nothing is
counted twice: a pool's MachineDeployment is never taken for a node group's (they are told apart
by the release that renders them, ``clusters.observe.pool_of``), and a pool whose size is not
known yet (its ``KubernetesNodes`` object not read yet) is metered from the moment it is.

Instants are truncated to the whole second (billing is per second).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from billing.models import MeteringRun, Sku, UsageSegment
from clusters.models import Cluster
from portal import metrics

if TYPE_CHECKING:
    from collections.abc import Iterable

    from clusters.events import ClusterObserved, WatcherStarted
    from clusters.models import Cluster, NodeGroup, NodePool

logger = logging.getLogger("billing.metering")

DISK_SKU = "disk.gib"
_QTY = Decimal("0.0001")

Key = tuple[int | None, str]  # (node group id or None for cluster-wide usage, SKU code)


def node_sku(instance_type: str) -> str:
    return f"node.{instance_type or 'custom'}"


def gpu_sku(model: str) -> str:
    return f"gpu.{model}"


def control_plane_sku(preset: str) -> str:
    return f"cp.{preset}"


def addon_sku(key: str) -> str:
    return f"addon.{key}"


def billing_instant(at: datetime) -> datetime:
    """``at`` in UTC, truncated to the whole second."""
    if at.tzinfo is None:
        raise ValueError("metering needs an aware datetime")
    return at.astimezone(UTC).replace(microsecond=0)


def deletion_time(cluster: Cluster) -> datetime | None:
    """When the cluster stopped existing: the platform's word first, else the portal's."""
    return cluster.platform_deleted_at or cluster.deleted_at


def enabled_addons(addons: dict[str, Any] | None) -> list[str]:
    return sorted(key for key, value in (addons or {}).items()
                  if isinstance(value, dict) and value.get("enabled"))


def group_quantities(group: NodeGroup) -> dict[str, Decimal]:
    """What one node group uses right now, by SKU (zero quantities left out)."""
    nodes = int(group.observed_nodes or 0)
    if nodes <= 0:
        return {}
    usage = {node_sku(group.instance_type): Decimal(nodes)}
    if group.gpu_model and group.gpus_per_node:
        usage[gpu_sku(group.gpu_model)] = Decimal(nodes * int(group.gpus_per_node))
    if group.disk_gib:
        usage[DISK_SKU] = Decimal(nodes * int(group.disk_gib))
    return usage


def pool_quantities(pool: NodePool) -> dict[str, Decimal]:
    """What one ``KubernetesNodes`` pool uses right now, by SKU, as the platform reports it
    (nothing while its size is not known)."""
    nodes = int(pool.observed_nodes or 0)
    if nodes <= 0 or not pool.sized:
        return {}
    usage = {node_sku(pool.instance_type): Decimal(nodes)}
    if pool.gpu_model and pool.gpus_per_node:
        usage[gpu_sku(pool.gpu_model)] = Decimal(nodes * int(pool.gpus_per_node))
    if pool.disk_gib:
        usage[DISK_SKU] = Decimal(nodes * int(pool.disk_gib))
    return usage


def billable_quantities(cluster: Cluster, groups: Iterable[NodeGroup], *,
                        priced_addons: set[str],
                        pools: Iterable[NodePool] = ()) -> dict[Key, Decimal]:
    """Everything the cluster uses at the moment of an observation, by (node group, SKU);
    ``KubernetesNodes`` pools count as the cluster's (no node group)."""
    if deletion_time(cluster) is not None:
        return {}
    usage: dict[Key, Decimal] = {}
    for group in groups:
        for sku, quantity in group_quantities(group).items():
            usage[(group.pk, sku)] = quantity
    for pool in pools:
        for sku, quantity in pool_quantities(pool).items():
            usage[(None, sku)] = usage.get((None, sku), Decimal(0)) + quantity
    if cluster.control_plane_replicas:
        usage[(None, control_plane_sku(cluster.control_plane_preset))] = Decimal(
            cluster.control_plane_replicas)
    for key in enabled_addons(cluster.addons):
        if addon_sku(key) in priced_addons:
            usage[(None, addon_sku(key))] = Decimal(1)
    return usage


def _priced_addons(cluster: Cluster, metered: set[str]) -> set[str]:
    """The enabled add-ons the price book has a SKU for. An add-on with an open segment was
    priced when it opened, so only the others cost a (small) query."""
    codes = {addon_sku(k) for k in enabled_addons(cluster.addons)}
    unknown = codes - metered
    if not unknown:
        return codes
    return (codes & metered) | set(Sku.objects.filter(code__in=unknown)
                                   .values_list("code", flat=True))


@dataclass(frozen=True)
class MeterResult:
    opened: int = 0
    closed: int = 0
    ignored: bool = False

    @property
    def changed(self) -> bool:
        return bool(self.opened or self.closed)


def _close(rows: list[tuple[int, datetime]], at: datetime) -> int:
    """Close open segments at ``at``; one that would end where it starts never billed a second
    and is removed instead (the database forbids empty segments)."""
    ended = [pk for pk, start in rows if start < at]
    empty = [pk for pk, start in rows if start >= at]
    if ended:
        UsageSegment.objects.filter(pk__in=ended, end__isnull=True).update(end=at)
    if empty:
        UsageSegment.objects.filter(pk__in=empty, end__isnull=True).delete()
    return len(rows)


def _current(cluster_id: int, at: datetime) -> list[tuple]:
    """The cluster's open segments, and any that end after ``at`` (which make it stale)."""
    return list(UsageSegment.objects.filter(cluster_id=cluster_id)
                .filter(Q(end__isnull=True) | Q(end__gt=at)).order_by()
                .values_list("pk", "node_group_id", "sku", "quantity", "start", "end"))


# On PostgreSQL the function ``billing_observe`` (migrations 0005 and 0007) does what
# ``_observe_portable`` does, in one statement whose plan stays cached: metering runs in the
# watcher's hot path. Tests run both on PostgreSQL and compare the ledgers they write.
# The target travels as four arrays written in PostgreSQL's array input syntax
# (``_pg_array``): the driver's generic list adaptation inspects every element and cost the
# watcher more than the rest of an observation's client-side work together.
_PG_OBSERVE = ("SELECT stale, closed, opened FROM billing_observe(%s, %s, %s, %s::bigint[], "
               "%s::varchar[], %s::numeric[], %s::boolean[])")


def _pg_array(values: Iterable[object]) -> str:
    """``values`` as PostgreSQL array input text: every element double-quoted (backslash and
    quote escaped), ``None`` as an unquoted NULL. Cast on the server to the element type."""
    return "{" + ",".join(
        "NULL" if value is None
        else '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
        for value in values) + "}"

# Set to True to use the portable path on PostgreSQL too (tests compare both).
FORCE_PORTABLE = False


def _observe_postgres(cluster: Cluster, groups: Iterable[NodeGroup],
                      at: datetime, pools: Iterable[NodePool] = ()) -> MeterResult:
    addons = {addon_sku(k) for k in enabled_addons(cluster.addons)}
    target = sorted(billable_quantities(cluster, groups, priced_addons=addons,
                                        pools=pools).items(), key=_order)
    with connection.cursor() as cursor:
        cursor.execute(_PG_OBSERVE, [
            cluster.pk, cluster.tenant_id, at, _pg_array(g for (g, _s), _q in target),
            _pg_array(s for (_g, s), _q in target), _pg_array(q for _k, q in target),
            _pg_array("t" if s in addons else "f" for (_g, s), _q in target)])
        stale, closed, opened = cursor.fetchone()
    if stale:
        logger.info("billing.metering.stale_observation",
                    extra={"cluster_id": cluster.pk, "at": at.isoformat()})
        return MeterResult(ignored=True)
    return MeterResult(opened=opened, closed=closed)


def close_cluster(cluster: Cluster, at: datetime) -> int:
    """Close every open segment of ``cluster`` at ``at`` (or at a segment's own start if it
    began later: a deletion never reaches into closed history). Safe to repeat."""
    at = billing_instant(at)
    with transaction.atomic(savepoint=False):
        rows = list(UsageSegment.objects.filter(cluster_id=cluster.pk, end__isnull=True)
                    .values_list("pk", "start"))
        return _close(rows, at) if rows else 0


def observe_cluster(cluster: Cluster, groups: Iterable[NodeGroup], at: datetime, *,
                    pools: Iterable[NodePool] = ()) -> MeterResult:
    """Record what ``cluster`` uses from ``at`` on, given its live node groups (and the
    ``KubernetesNodes`` pools the platform runs for it) as observed.

    Runs in the caller's transaction (the one that applies the observation). Idempotent: the
    same observation twice writes nothing the second time; an older one is ignored. A deleted
    cluster (``platform_deleted_at`` / ``deleted_at``) has everything closed at its deletion time.
    """
    gone = deletion_time(cluster)
    if gone is not None:
        closed = close_cluster(cluster, gone)
        return MeterResult(closed=closed)
    at = billing_instant(at)
    if connection.vendor == "postgresql" and not FORCE_PORTABLE:
        return _observe_postgres(cluster, groups, at, pools)
    return _observe_portable(cluster, groups, at, pools)


def _observe_portable(cluster: Cluster, groups: Iterable[NodeGroup],
                      at: datetime, pools: Iterable[NodePool] = ()) -> MeterResult:
    """The metering diff in Python (SQLite, and the reference for the PostgreSQL statement)."""
    with transaction.atomic(savepoint=False):
        current = _current(cluster.pk, at)
        if any(end is not None or start > at for _pk, _g, _s, _q, start, end in current):
            logger.info("billing.metering.stale_observation",
                        extra={"cluster_id": cluster.pk, "at": at.isoformat()})
            return MeterResult(ignored=True)
        metered = {sku for _pk, _g, sku, _q, _s, _e in current}
        target = billable_quantities(cluster, groups,
                                     priced_addons=_priced_addons(cluster, metered),
                                     pools=pools)
        keep: set[Key] = set()
        closing: list[tuple[int, datetime]] = []
        for pk, group_id, sku, quantity, start, _end in current:
            key = (group_id, sku)
            wanted = target.get(key)
            if wanted is not None and key not in keep and \
                    wanted.quantize(_QTY) == Decimal(quantity).quantize(_QTY):
                keep.add(key)
            else:
                closing.append((pk, start))
        opening = [(group_id, sku, quantity)
                   for (group_id, sku), quantity in sorted(target.items(), key=_order)
                   if (group_id, sku) not in keep]
        if closing:
            _close(closing, at)
        if opening:
            UsageSegment.objects.bulk_create([
                UsageSegment(tenant_id=cluster.tenant_id, cluster_id=cluster.pk,
                             node_group_id=group_id, sku=sku, quantity=quantity, start=at)
                for group_id, sku, quantity in opening])
    return MeterResult(opened=len(opening), closed=len(closing))


def _order(item: tuple[Key, Decimal]) -> tuple[int, str]:
    (group_id, sku), _quantity = item
    return (group_id or 0, sku)


def reconcile_ledger(at: datetime | None = None, *, trigger: str = "watcher") -> MeteringRun:
    """Close the open segments of clusters that no longer run, and record that it ran.

    A cluster the platform deleted is closed at the deletion time the platform reported
    (``platform_deleted_at``); one deleted only in the portal at ``deleted_at``. Clusters that
    still run keep their open segments (the watcher's relist then confirms or corrects them),
    so a watcher restart loses nothing and counts nothing twice. Safe to repeat.
    """
    at = billing_instant(at or timezone.now())
    run = MeteringRun.objects.create(at=at, trigger=trigger[:32])
    stale = (UsageSegment.objects.filter(end__isnull=True)
             .filter(Q(cluster__deleted_at__isnull=False)
                     | Q(cluster__platform_deleted_at__isnull=False))
             .values_list("cluster_id", flat=True).distinct())
    clusters = segments = 0
    for cluster_id in sorted(set(stale)):
        with transaction.atomic():
            cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
            gone = deletion_time(cluster)
            if gone is None:
                continue
            closed = close_cluster(cluster, min(gone, at))
            if closed:
                clusters += 1
                segments += closed
    MeteringRun.objects.filter(pk=run.pk).update(
        finished_at=timezone.now(), clusters_closed=clusters, segments_closed=segments)
    run.refresh_from_db()
    metrics.metering_run(trigger[:32], segments_closed=segments)
    if segments:
        logger.info("billing.metering.reconciled",
                    extra={"clusters": clusters, "segments": segments, "trigger": trigger})
    return run


def on_cluster_observed(event: ClusterObserved) -> None:
    """Meter what an observation shows, in the transaction that applies it."""
    observe_cluster(event.cluster, event.groups, event.at, pools=event.pools)


def on_watcher_started(event: WatcherStarted) -> None:
    """Close what the ledger left open while nobody watched the platform."""
    reconcile_ledger(event.at)
