"""Turn what the platform reports into portal state (the watcher and the poller share this).

Every function here is idempotent: applying the same observation twice writes nothing the
second time, emits no event, meters nothing and broadcasts nothing. Usage is recorded through
``billing.metering`` in the same transaction as the state change it follows from.

Observations are applied in a ``batch()``: one transaction in which each cluster is locked
and read once, however many of its objects changed, and its derived state (phase, operation
progress, usage) is recomputed once at the end. A single call outside a batch is a batch of
one. Locks are always taken cluster row first, then its operation (actions and tasks do the
same), and never on the tenant row, so observers, workers and actions never deadlock.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import events, operations, progress
from clusters.desired import write_desired_rows
from clusters.models import (
    HELD_NODE_GROUPS,
    Cluster,
    ClusterEvent,
    NodeGroup,
    NodePool,
    Operation,
)
from clusters.platform_release import note_chart_revision, observed_dialect
from cozystack import dialects
from cozystack.gateway import CLUSTER_LABEL
from cozystack.specs import quantity_to_gib

logger = logging.getLogger("clusters.observe")
RELEASE_PREFIX = "kubernetes-"
# A KubernetesNodes pool's Helm release (v1.6): ``kubernetes-nodes-<cluster>-<pool>``.
POOL_RELEASE_PREFIX = "kubernetes-nodes-"
RELEASE_ANNOTATION = "meta.helm.sh/release-name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
TENANT_NS_PREFIX = "tenant-"
_HELD_POOLS = "_held_node_pools"  # as ``HELD_NODE_GROUPS``, for the KubernetesNodes pools
KUBECONFIG_SUFFIX = "-admin-kubeconfig"
# A cluster whose derived state did not change is written at most this often (last_observed_at).
TOUCH_EVERY = timedelta(seconds=60)
CLUSTER_STATE_FIELDS = ("phase", "status_message", "conditions", "platform_ready",
                        "ready_since", "kubeconfig_ready", "chart_revision",
                        "platform_resource_version", "last_error", "platform_deleted_at",
                        "platform_terminating", "deleted_at")


@dataclass
class Batch:
    """Clusters locked in the current transaction, and those whose state must be recomputed."""

    clusters: dict[tuple[str, str], Cluster | None] = field(default_factory=dict)
    dirty: dict[int, tuple[Cluster, datetime]] = field(default_factory=dict)
    seen: dict[int, Cluster] = field(default_factory=dict)
    snapshots: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    # Written in bulk when the batch ends.
    groups: dict[int, NodeGroup] = field(default_factory=dict)
    events: list[ClusterEvent] = field(default_factory=list)
    saves: dict[int, tuple[Cluster, set[str]]] = field(default_factory=dict)
    # Clusters whose billable state may have changed (node counts, existence, or a Ready
    # transition that can follow a change of add-ons or control plane).
    metered: set[int] = field(default_factory=set)

    def flush(self) -> None:
        fields = (*MD_FIELDS, "last_observed_at")
        _save_many([(g, fields) for _pk, g in sorted(self.groups.items())])
        self.groups.clear()
        _save_many([(c, tuple(sorted(f))) for _pk, (c, f) in sorted(self.saves.items())])
        self.saves.clear()
        if self.events:
            ClusterEvent.objects.bulk_create(self.events)
            self.events.clear()


def _save_many(rows: list[tuple[Any, tuple[str, ...]]]) -> None:
    """``UPDATE … WHERE id = …`` for each (object, fields), sent in one pipelined round trip
    per set of fields (Django's ``bulk_update`` builds a CASE per field and row, which costs
    more than it saves at these sizes)."""
    by_fields: dict[tuple[type, tuple[str, ...]], list[Any]] = {}
    for obj, fields in rows:
        by_fields.setdefault((type(obj), fields), []).append(obj)
    for (model, names), objs in by_fields.items():
        opts = model._meta  # type: ignore[attr-defined]  # the class of a model instance
        columns = [opts.get_field(name) for name in names]
        # Only quoted model column names are interpolated; every value is a parameter.
        sql = "UPDATE {} SET {} WHERE {} = %s".format(  # noqa: S608
            connection.ops.quote_name(opts.db_table),
            ", ".join(f"{connection.ops.quote_name(c.column)} = %s" for c in columns),
            connection.ops.quote_name(opts.pk.column))
        params = [[c.get_db_prep_save(getattr(obj, c.attname), connection) for c in columns]
                  + [obj.pk] for obj in objs]
        with connection.cursor() as cursor:
            cursor.executemany(sql, params)


_local = threading.local()


@contextmanager
def batch() -> Iterator[Batch]:
    """Apply several observations in one transaction (nested calls join the outer batch)."""
    current: Batch | None = getattr(_local, "batch", None)
    if current is not None:
        yield current
        return
    current = _local.batch = Batch()
    try:
        with transaction.atomic(), events.counting():
            yield current
            for cluster, at in current.dirty.values():
                _refresh(cluster, at=at, before=current.snapshots.get(cluster.pk),
                         meter=cluster.pk in current.metered)
            for pk, cluster in current.seen.items():
                if pk not in current.dirty:
                    _save_if_changed(cluster, current.snapshots[pk])
            current.flush()
    finally:
        _local.batch = None


def _snapshot(cluster: Cluster) -> tuple[Any, ...]:
    return tuple(getattr(cluster, name) for name in CLUSTER_STATE_FIELDS)


def tenant_slug(namespace: str) -> str | None:
    return namespace[len(TENANT_NS_PREFIX):] if namespace.startswith(TENANT_NS_PREFIX) else None


def _locked_clusters() -> QuerySet[Cluster]:
    active = Operation.objects.filter(cluster=OuterRef("pk"), state__in=Operation.ACTIVE_STATES)
    return (Cluster.objects.select_for_update(no_key=True, of=("self",))
            .filter(deleted_at__isnull=True)
            .select_related("tenant")
            .annotate(has_active_operation=Exists(active))
            .order_by("pk"))


def _with_rows(clusters: list[Cluster]) -> list[Cluster]:
    """Read the node groups and pools of these locked clusters in one query each and keep
    them on each cluster for the batch (``_groups``, ``_pools``): the objects the batch changes
    and saves when it ends. Django's ``prefetch_related`` did the same at several times the
    cost (a related queryset built per cluster)."""
    if not clusters:
        return clusters
    ids = [c.pk for c in clusters]
    by_id = {c.pk: c for c in clusters}
    for model, attribute in ((NodeGroup, HELD_NODE_GROUPS), (NodePool, _HELD_POOLS)):
        held: dict[int, list[Any]] = {pk: [] for pk in ids}
        back = model._meta.get_field("cluster")
        for row in model.objects.filter(cluster_id__in=ids).order_by("pk"):
            back.set_cached_value(row, by_id[row.cluster_id])
            held[row.cluster_id].append(row)
        for cluster in clusters:
            cluster.__dict__[attribute] = held[cluster.pk]
    return clusters


def lock_clusters(keys: Iterable[tuple[str, str]]) -> None:
    """Lock and read, in one go, the clusters behind these (namespace, name) pairs for the
    current batch (in id order, so concurrent observers cannot deadlock)."""
    current: Batch = _local.batch
    names: dict[str, set[str]] = {}
    for namespace, name in keys:
        slug = tenant_slug(namespace)
        if (namespace, name) not in current.clusters and slug is not None:
            names.setdefault(slug, set()).add(name)
    if not names:
        return
    wanted = Q()
    for slug, cluster_names in names.items():
        wanted |= Q(tenant__slug=slug, name__in=sorted(cluster_names))
    found = {(f"{TENANT_NS_PREFIX}{c.tenant.slug}", c.name): c
             for c in _with_rows(list(_locked_clusters().filter(wanted)))}
    for slug, cluster_names in names.items():
        for name in cluster_names:
            key = (f"{TENANT_NS_PREFIX}{slug}", name)
            _admit(key, found.get(key))


def _admit(key: tuple[str, str], cluster: Cluster | None) -> Cluster | None:
    current: Batch = _local.batch
    if cluster is not None and not cluster.platform_resource_version and (
            not cluster.has_active_operation  # type: ignore[attr-defined]  # annotated by the batch's query
            and not cluster.operations.filter(submitted_at__isnull=False).exists()):
        # The portal never sent this cluster (a POST whose answer was lost, from a creation
        # that then failed): not ours to show or meter; the orphan cleanup removes it. While
        # its operation runs, the object may show up before the worker records the answer:
        # that one is ours, and dropping its events would leave the row behind until a resync.
        cluster = None
    current.clusters[key] = cluster
    if cluster is not None:
        current.seen[cluster.pk] = cluster
        current.snapshots[cluster.pk] = _snapshot(cluster)
    return cluster


def _locate(namespace: str, name: str) -> Cluster | None:
    """The live cluster behind a platform object, row-locked once per batch, with its node
    groups (the tenant row is never locked)."""
    current: Batch = _local.batch
    key = (namespace, name)
    if key in current.clusters:
        return current.clusters[key]
    slug = tenant_slug(namespace)
    cluster = None
    if slug is not None:
        cluster = next(iter(_with_rows(list(
            _locked_clusters().filter(tenant__slug=slug, name=name)[:1]))), None)
    return _admit(key, cluster)


def reevaluate(namespace: str, name: str, *, at: datetime | None = None) -> None:
    """Weigh the cluster's operation in flight against what is stored, even when the latest
    observation changed nothing: someone else (the watcher) may have applied the same state
    before the operation was recorded as sent, when there was nothing to weigh it against."""
    with batch():
        cluster = _locate(namespace, name)
        if cluster is None or cluster.pk in _local.batch.dirty:
            return  # gone, or weighed anyway when the batch ends
        active = cluster.operations.filter(state__in=Operation.ACTIVE_STATES,
                                           submitted_at__isnull=False).first()
        if active is None:
            return
        live = [g for g in _groups(cluster) if g.removed_at is None]
        verdict = progress.evaluate(active, cluster, live, now=at)
        if verdict.outcome is not None or verdict.steps != active.steps:
            refresh(cluster, at=at, meter=False)


def refresh(cluster: Cluster, *, at: datetime | None = None, meter: bool = True) -> None:
    """Recompute progress, phase and usage of ``cluster`` (row-locked by the caller) once the
    current batch ends, or now outside a batch; live pages are told after commit.

    ``meter=False``: nothing billable changed (a node became ready, a kubeconfig appeared), so
    the usage ledger is not consulted.
    """
    at = at or timezone.now()
    current: Batch | None = getattr(_local, "batch", None)
    if current is None:
        with transaction.atomic():
            _refresh(cluster, at=at, meter=True)
        return
    current.dirty[cluster.pk] = (cluster, at)
    if meter:
        current.metered.add(cluster.pk)


def _event(cluster: Cluster, reason: str, message: str, severity: str = "info",
           at: datetime | None = None, operation: Operation | None = None) -> None:
    event = ClusterEvent(tenant_id=cluster.tenant_id, cluster=cluster, reason=reason[:64],
                         message=message[:2000], severity=severity,
                         source=ClusterEvent.Source.PLATFORM, at=at or timezone.now(),
                         operation=operation)
    current: Batch | None = getattr(_local, "batch", None)
    if current is not None:
        current.events.append(event)
    else:
        event.save()


def _conditions_summary(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    return {c.get("type", ""): (c.get("status", ""), c.get("reason", ""), c.get("message", ""))
            for c in conditions}


# --------------------------------------------------------------------------- the cluster object

def cluster_values(obj: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``Cluster`` an observed ``Kubernetes`` object determines."""
    meta = obj.get("metadata") or {}
    status = obj.get("status") or {}
    conditions = status.get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None) or {}
    return {
        "conditions": conditions,
        "platform_ready": ready.get("status") == "True",
        "chart_revision": str(status.get("version") or "")[:64],
        "platform_terminating": bool(meta.get("deletionTimestamp")),
    }


def apply_cluster_object(namespace: str, obj: dict[str, Any] | None, *, name: str | None = None,
                         at: datetime | None = None) -> bool:
    """Apply a ``Kubernetes`` object as observed (``None``: it is gone). True if it changed."""
    name = name or (obj or {}).get("metadata", {}).get("name")
    if not name:
        return False
    at = at or timezone.now()
    with batch():
        cluster = _locate(namespace, name)
        if cluster is None:
            return False
        if obj is None:
            return _apply_absence(cluster, at)
        values = cluster_values(obj)
        cluster.platform_resource_version = str(
            (obj.get("metadata") or {}).get("resourceVersion") or "")
        followed = _follow_platform_upgrade(cluster, obj, at)
        before = _conditions_summary(cluster.conditions or [])
        after = _conditions_summary(values["conditions"])
        changed = after != before or any(
            getattr(cluster, key) != value for key, value in values.items()
            if key != "conditions")
        if not changed:
            return followed
        for kind, (state, reason, message) in after.items():
            if before.get(kind) != (state, reason, message) and kind in ("Ready",
                                                                        "WorkloadsReady"):
                severity = "error" if state == "False" and kind == "Ready" else (
                    "warning" if state == "False" else "info")
                _event(cluster, reason or kind, f"{kind}={state}: {message}".strip(),
                       severity=severity, at=at)
        if values["chart_revision"] != cluster.chart_revision:
            note_chart_revision(values["chart_revision"])
        if values["platform_ready"] and not cluster.platform_ready:
            cluster.ready_since = at
        elif not values["platform_ready"]:
            cluster.ready_since = None
        for key, value in values.items():
            setattr(cluster, key, value)
        refresh(cluster, at=at)
        return True


def _follow_platform_upgrade(cluster: Cluster, obj: dict[str, Any], at: datetime) -> bool:
    """Take into the desired rows what the platform's own upgrade migrations changed in the
    object (``Dialect.follow_platform_upgrade``), so rows and object agree. Not while a change
    of the portal's is in flight: its outcome decides what the rows say."""
    if getattr(cluster, "has_active_operation", True) or obj.get("spec") is None:
        return False
    dialect = observed_dialect()
    desired = cluster.to_spec(_live_groups_for_spec(cluster))
    after, said = dialect.follow_platform_upgrade(desired, dialect.spec_from_platform(obj))
    if not said:
        return False
    write_desired_rows(cluster, after)
    cluster.__dict__.pop(HELD_NODE_GROUPS, None)
    for sentence in said:
        _event(cluster, "PlatformUpgrade", sentence[0].upper() + sentence[1:], at=at)
    logger.info("cluster.observe.followed_platform_upgrade",
                extra={"cluster_id": cluster.pk, "changes": len(said)})
    refresh(cluster, at=at)
    return True


def _live_groups_for_spec(cluster: Cluster) -> list[NodeGroup]:
    return [g for g in _groups(cluster) if g.removed_at is None]


def _deletion_requested(cluster: Cluster) -> bool:
    return cluster.operations.filter(kind=Operation.Kind.DELETE,
                                      submitted_at__isnull=False).exists()


def _apply_absence(cluster: Cluster, at: datetime) -> bool:
    """The platform has no object for ``cluster``: deleted (by the portal or behind its back),
    or never created. Only the first two change anything."""
    if cluster.platform_deleted_at is not None:
        return False
    if _deletion_requested(cluster):
        _event(cluster, "Deleted", _("The platform removed the cluster and its volumes."),
               at=at)
    elif cluster.platform_resource_version:
        # Seen before, gone without a deletion from the portal: say so, and stop metering.
        _event(cluster, "Vanished", _("The cluster disappeared from the platform without a "
                                      "deletion from the portal."), severity="error", at=at)
    else:
        return False  # never reached the platform: nothing to observe
    cluster.platform_deleted_at = at
    cluster.platform_ready = False
    cluster.kubeconfig_ready = False  # its secret went with it
    cluster.platform_terminating = False
    refresh(cluster, at=at)
    return True


# --------------------------------------------------------------------------- node groups

def _md_names(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(cluster name, last part) of a MachineDeployment ``kubernetes-<cluster>-<part>``."""
    meta = obj.get("metadata", {})
    release = (meta.get("labels") or {}).get(CLUSTER_LABEL, "")
    if not release.startswith(RELEASE_PREFIX):
        return None
    name = meta.get("name", "")
    if not name.startswith(release + "-"):
        return None
    return release[len(RELEASE_PREFIX):], name[len(release) + 1:]


def md_release(obj: dict[str, Any]) -> str:
    """The Helm release that renders a MachineDeployment (its ownership annotation, else its
    instance label)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return str(annotations.get(RELEASE_ANNOTATION) or labels.get(INSTANCE_LABEL) or "")


def pool_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(cluster name, pool name) of a MachineDeployment a ``KubernetesNodes`` pool renders:
    named like a group of the cluster, but owned by the release
    ``kubernetes-nodes-<cluster>-<pool>`` (rows 23, 24)."""
    names = _md_names(obj)
    if names is None or md_release(obj) != f"{POOL_RELEASE_PREFIX}{names[0]}-{names[1]}":
        return None
    return names


def group_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(cluster name, group name) of a MachineDeployment ``kubernetes-<cluster>-<group>`` the
    cluster's own release renders (a pool's, ``pool_of``, is never a group's)."""
    if pool_of(obj) is not None:
        return None
    return _md_names(obj)


MD_FIELDS = ("desired_nodes", "observed_nodes", "ready_nodes", "updated_nodes", "observed_phase")


def md_values(obj: dict[str, Any] | None) -> dict[str, Any]:
    """The ``NodeGroup`` fields an observed MachineDeployment determines (None: it is gone)."""
    if obj is None:
        return {"desired_nodes": 0, "observed_nodes": 0, "ready_nodes": 0, "updated_nodes": 0,
                "observed_phase": "Deleted"}
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    return {
        "desired_nodes": int(spec.get("replicas") or 0),
        "observed_nodes": int(status.get("replicas") or 0),
        "ready_nodes": int(status.get("readyReplicas") or 0),
        "updated_nodes": int(status.get("updatedReplicas") or 0),
        "observed_phase": str(status.get("phase") or "")[:32],
    }


def _held(cluster: Cluster, attribute: str, read: Callable[[], Iterable[Any]]) -> list[Any]:
    """The rows kept on ``cluster`` under ``attribute`` when it was locked in a batch, else
    ``read()`` now."""
    held = cluster.__dict__.get(attribute)
    return list(held) if held is not None else list(read())


def _groups(cluster: Cluster) -> list[NodeGroup]:
    """All node groups of ``cluster`` (those read with it when locked in a batch)."""
    return _held(cluster, HELD_NODE_GROUPS, lambda: cluster.node_groups.all())


def _group_named(cluster: Cluster, name: str) -> NodeGroup | None:
    """The live group ``name``, else the most recently removed one (its nodes may still run)."""
    named = [g for g in _groups(cluster) if g.name == name]
    live = [g for g in named if g.removed_at is None]
    if live:
        return live[-1]
    removed = sorted(named, key=lambda g: (g.removed_at, g.pk))
    return removed[-1] if removed else None


def apply_machine_deployment(namespace: str, obj: dict[str, Any], *, deleted: bool = False,
                             at: datetime | None = None) -> bool:
    """Apply one group's MachineDeployment (``deleted``: it is gone). True if it changed. A
    ``KubernetesNodes`` pool's goes to its pool (``apply_pool_deployment``)."""
    if pool_of(obj) is not None:
        return apply_pool_deployment(namespace, obj, deleted=deleted, at=at)
    located = group_of(obj)
    if located is None:
        return False
    cluster_name, group_name = located
    values = md_values(None if deleted else obj)
    at = at or timezone.now()
    with batch():
        cluster = _locate(namespace, cluster_name)
        if cluster is None:
            return False
        group = _group_named(cluster, group_name)
        if group is None:
            logger.warning("cluster.observe.unknown_group",
                           extra={"cluster": cluster_name, "group": group_name})
            return False
        if all(getattr(group, k) == v for k, v in values.items()):
            return False
        nodes_before = (group.observed_nodes, group.ready_nodes)
        billable = group.observed_nodes != values["observed_nodes"]
        for key, value in values.items():
            setattr(group, key, value)
        group.last_observed_at = at
        _local.batch.groups[group.pk] = group
        if nodes_before != (group.observed_nodes, group.ready_nodes):
            _event(cluster, "NodeGroup",
                   _("%(group)s: %(nodes)s nodes, %(ready)s ready (target %(target)s).")
                   % {"group": group.name, "nodes": group.observed_nodes,
                      "ready": group.ready_nodes, "target": group.desired_nodes}, at=at)
        refresh(cluster, at=at, meter=billable)
        return True


# --------------------------------------------------------------------------- KubernetesNodes pools

def _pools(cluster: Cluster) -> list[NodePool]:
    """All pools of ``cluster`` (those read with it when locked in a batch)."""
    return _held(cluster, _HELD_POOLS, lambda: cluster.node_pools.all())


def _pool_named(cluster: Cluster, name: str, *, create: bool, at: datetime) -> NodePool | None:
    """The pool ``name`` the platform runs for ``cluster``; with ``create`` a new row when there
    is none (the batch's pools learn it, so its refresh meters it)."""
    live = [p for p in _pools(cluster) if p.name == name and p.removed_at is None]
    if live or not create:
        return live[-1] if live else None
    pool = NodePool.objects.create(cluster=cluster, name=name, first_seen_at=at)
    held = cluster.__dict__.get(_HELD_POOLS)
    if held is not None:  # in id order, as read: the new row has the highest id
        held.append(pool)
    return pool


def pool_spec(obj: dict[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(cluster name, pool name, ``NodePool`` fields) of a ``KubernetesNodes`` object
    ``<cluster>-<pool>`` with ``spec.cluster``, or None when it names no cluster (the platform
    refuses to render it then)."""
    meta = obj.get("metadata") or {}
    raw = obj.get("spec")
    spec: dict[str, Any] = raw if isinstance(raw, dict) else {}
    cluster = str(spec.get("cluster") or "")
    name = str(meta.get("name") or "")
    if not cluster or not name.startswith(f"{cluster}-") or name == f"{cluster}-":
        return None
    given = spec.get("resources")
    resources: dict[str, Any] = given if isinstance(given, dict) else {}
    cpu, memory = str(resources.get("cpu") or ""), str(resources.get("memory") or "")
    custom = bool(cpu and memory)  # both together size the node; the instance type is ignored
    gpus = [str(g.get("name") or "") for g in spec.get("gpus") or [] if isinstance(g, dict)]
    gpus = [g for g in gpus if g]
    conditions = (obj.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if isinstance(c, dict) and c.get("type") == "Ready"),
                 {})
    return cluster, name[len(cluster) + 1:], {
        "spec_seen": True,
        "instance_type": "" if custom else str(spec.get("instanceType") or "")[:64],
        "cpu": cpu[:20] if custom else "",
        "memory": memory[:20] if custom else "",
        "min_replicas": _count(spec.get("minReplicas")),
        "max_replicas": _count(spec.get("maxReplicas")),
        "disk_gib": quantity_to_gib(spec.get("diskSize")) or 0,
        "gpu_model": gpus[0][:100] if gpus else "",
        "gpus_per_node": min(len(gpus), 32767),
        "status_message": "" if ready.get("status") in (None, "True") else
        str(ready.get("message") or ready.get("reason") or "")[:500],
    }


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def apply_node_pool(namespace: str, obj: dict[str, Any], *, deleted: bool = False,
                    at: datetime | None = None) -> bool:
    """Apply a ``KubernetesNodes`` object as observed (``deleted``: it is gone). Read-only:
    nothing of it ever goes into the cluster's spec. True if the pool's row changed."""
    located = pool_spec(obj)
    if located is None:
        return False
    cluster_name, name, values = located
    at = at or timezone.now()
    with batch():
        cluster = _locate(namespace, cluster_name)
        if cluster is None:
            return False
        pool = _pool_named(cluster, name, create=not deleted, at=at)
        if pool is None:
            return False
        if deleted:
            values = {"spec_seen": False, "status_message": ""}
        changed = _set_pool(pool, values, at)
        if deleted or not pool.spec_seen or changed:
            _retire_if_gone(pool, at)
        if changed:
            if deleted:
                _event(cluster, "NodePool", _("Pool %(pool)s was removed on the platform.")
                       % {"pool": name}, at=at)
            refresh(cluster, at=at)
        return changed


def apply_pool_deployment(namespace: str, obj: dict[str, Any], *, deleted: bool = False,
                          at: datetime | None = None) -> bool:
    """Apply a pool's MachineDeployment (its nodes), as for a node group's."""
    located = pool_of(obj)
    if located is None:
        return False
    cluster_name, name = located
    values = md_values(None if deleted else obj)
    at = at or timezone.now()
    with batch():
        cluster = _locate(namespace, cluster_name)
        if cluster is None:
            return False
        pool = _pool_named(cluster, name, create=not deleted, at=at)
        if pool is None:
            return False
        nodes_before = (pool.observed_nodes, pool.ready_nodes)
        billable = pool.observed_nodes != values["observed_nodes"]
        changed = _set_pool(pool, values, at)
        if not changed:
            return False
        _retire_if_gone(pool, at)
        if nodes_before != (pool.observed_nodes, pool.ready_nodes):
            _event(cluster, "NodePool",
                   _("Pool %(pool)s (managed on the platform): %(nodes)s nodes, %(ready)s "
                     "ready.") % {"pool": name, "nodes": pool.observed_nodes,
                                  "ready": pool.ready_nodes}, at=at)
        refresh(cluster, at=at, meter=billable)
        return True


def _set_pool(pool: NodePool, values: dict[str, Any], at: datetime) -> bool:
    changed = [key for key, value in values.items() if getattr(pool, key) != value]
    for key in changed:
        setattr(pool, key, values[key])
    pool.last_observed_at = at
    if changed:
        pool.save()
    return bool(changed)


def _retire_if_gone(pool: NodePool, at: datetime) -> None:
    """A pool whose object and machines are both gone is history (its row stays for
    billing)."""
    if pool.removed_at is None and not pool.spec_seen and not pool.observed_nodes and \
            pool.observed_phase in ("", "Deleted"):
        pool.removed_at = at
        pool.save(update_fields=["removed_at"])


def metered_pools(pools: list[NodePool]) -> list[NodePool]:
    """Pools whose nodes the platform still runs (a removed pool's until they are gone)."""
    return [p for p in pools if p.removed_at is None or p.observed_nodes > 0]


def apply_kubeconfig_presence(namespace: str, cluster_name: str, exists: bool, *,
                              at: datetime | None = None) -> bool:
    at = at or timezone.now()
    with batch():
        cluster = _locate(namespace, cluster_name)
        if cluster is None or cluster.kubeconfig_ready == exists:
            return False
        cluster.kubeconfig_ready = exists
        if exists:
            _event(cluster, "KubeconfigIssued", _("The kubeconfig is available."), at=at)
        refresh(cluster, at=at, meter=False)
        return True


def kubeconfig_cluster(secret_name: str) -> str | None:
    """``kubernetes-<name>-admin-kubeconfig`` → ``<name>``."""
    if secret_name.startswith(RELEASE_PREFIX) and secret_name.endswith(KUBECONFIG_SUFFIX):
        return secret_name[len(RELEASE_PREFIX):-len(KUBECONFIG_SUFFIX)] or None
    return None


# --------------------------------------------------------------------------- derived state

def derive_phase(cluster: Cluster, groups: list[NodeGroup], active: Operation | None,
                 *, at: datetime | None = None) -> tuple[str, str]:
    """The phase and the plain-words status line a person reads (what the conditions mean
    is the platform release's, ``Dialect.health``)."""
    if cluster.platform_deleted_at is not None:
        return Cluster.Phase.DELETED, _("Deleted.")
    if (active is not None and active.kind == Operation.Kind.DELETE) or \
            cluster.platform_terminating:
        return Cluster.Phase.DELETING, _("Deleting: removing add-ons, control plane, workers "
                                         "and volumes.")
    ready = cluster.condition("Ready") or {}
    if ready.get("status") == "False" and ready.get("reason") in progress.FAILED_REASONS:
        return Cluster.Phase.FAILED, progress.explain_failure(
            ready.get("message") or ready.get("reason") or "")[1]
    settled, workers = progress.workers_detail(groups)
    if active is not None:
        running = next((s for s in active.steps if s["state"] == progress.RUNNING), None)
        parts = []
        if active.kind == Operation.Kind.CREATE:
            if cluster.platform_ready:
                parts.append(_("control plane ready"))
            else:
                parts.append(_("waiting for the control plane"))
            if cluster.platform_ready and cluster.kubeconfig_ready:
                parts.append(_("waiting for %(workers)s") % {"workers": workers}
                             if not settled else workers)
            prefix = _("Creating")
        else:
            parts.append(running["detail"] if running and running.get("detail")
                         else _("waiting for the platform"))
            prefix = _("Updating")
        phase = Cluster.Phase.CREATING if active.kind == Operation.Kind.CREATE \
            else Cluster.Phase.UPDATING
        return phase, f"{prefix}: {', '.join(parts)}"
    if not cluster.platform_ready:
        if not cluster.platform_resource_version:
            return cluster.phase, cluster.status_message  # never seen on the platform yet
        return Cluster.Phase.UPDATING, _("The platform is applying changes: %(message)s") % {
            "message": ready.get("message") or _("in progress")}
    health = progress.health_of(cluster, settled, at=at)
    if health.state == dialects.STARTING:
        return Cluster.Phase.UPDATING, _("Starting: the platform applied the configuration; "
                                         "waiting for %(workers)s.") % {"workers": workers}
    if health.state == dialects.STUCK:
        return Cluster.Phase.DEGRADED, progress.stuck_words(cluster, at=at)
    if health.state == dialects.DEGRADED:
        return Cluster.Phase.DEGRADED, _("Degraded: %(workers)s.") % {"workers": workers}
    total = sum(g.ready_nodes for g in groups)
    return Cluster.Phase.RUNNING, _("Running: %(n)s nodes ready.") % {"n": total}


def metered_groups(groups: list[NodeGroup]) -> list[NodeGroup]:
    """Live groups, plus removed ones whose nodes the platform has not removed yet."""
    return [g for g in groups if g.removed_at is None
            or (g.observed_nodes > 0 and g.observed_phase != "Deleted")]


def _refresh(cluster: Cluster, *, at: datetime, before: tuple[Any, ...] | None = None,
             meter: bool = True) -> None:
    """``before``: the cluster's state when it was read (fields that differ are written)."""
    before = before or _snapshot(cluster)
    groups = _groups(cluster)
    live = [g for g in groups if g.removed_at is None]
    active = None
    if getattr(cluster, "has_active_operation", True):
        active = (cluster.operations.select_for_update(no_key=True)
                  .filter(state__in=Operation.ACTIVE_STATES).first())
    if active is not None and active.submitted_at is not None:
        finish_if_converged(active, cluster, live, at=at)
        if not active.is_active:
            active = None
    if cluster.platform_deleted_at is not None and cluster.deleted_at is None:
        cluster.deleted_at = cluster.platform_deleted_at
        cluster.node_groups.filter(removed_at__isnull=True).update(
            removed_at=cluster.platform_deleted_at)
        cluster.node_pools.filter(removed_at__isnull=True).update(
            removed_at=cluster.platform_deleted_at)
        for group in live:
            group.removed_at = cluster.platform_deleted_at
        live = []
    ready = cluster.condition("Ready") or {}
    cluster.last_error = (ready.get("message") or "") if ready.get("status") == "False" and \
        ready.get("reason") in progress.FAILED_REASONS else ""
    phase, message = derive_phase(cluster, live, active, at=at)
    cluster.phase, cluster.status_message = phase, message[:500]
    _save_if_changed(cluster, before, at=at)
    if before[0] != cluster.phase:
        events.publish(events.ClusterPhaseChanged(cluster, before[0], at))
    if meter or cluster.deleted_at is not None or (before and before[0] != cluster.phase):
        events.publish(events.ClusterObserved(cluster, metered_groups(groups), at,
                                              metered_pools(_pools(cluster))))
    events.cluster_changed(cluster.pk)


def _save_if_changed(cluster: Cluster, before: tuple[Any, ...], *,
                     at: datetime | None = None) -> None:
    """Write what changed, and ``last_observed_at`` now and then (not on every event)."""
    changed = [name for name, old in zip(CLUSTER_STATE_FIELDS, before, strict=True)
               if getattr(cluster, name) != old]
    at = at or timezone.now()
    stale = cluster.last_observed_at is None or at - cluster.last_observed_at >= TOUCH_EVERY
    if changed or stale:
        cluster.last_observed_at = at
        cluster.updated_at = timezone.now()
        fields = {*changed, "last_observed_at", "updated_at"}
        current: Batch | None = getattr(_local, "batch", None)
        if current is None:
            cluster.save(update_fields=sorted(fields))
        else:
            saved = current.saves.setdefault(cluster.pk, (cluster, set()))
            saved[1].update(fields)


def finish_if_converged(operation: Operation, cluster: Cluster, groups: list[NodeGroup], *,
                        at: datetime | None = None) -> None:
    """Weigh the operation in flight against what was observed: it moves on, succeeds or
    fails (the platform reported a failure it cannot get past)."""
    verdict = progress.evaluate(operation, cluster, groups, now=at)
    if verdict.outcome == Operation.State.SUCCEEDED:
        operations.succeed(operation, steps=verdict.steps, at=at)
    elif verdict.outcome == Operation.State.FAILED:
        operations.fail(operation, verdict.error_class, verdict.message, steps=verdict.steps,
                        at=at)
    else:
        operations.follow(operation, verdict.steps)
