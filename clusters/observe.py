"""Turn what the platform reports into portal state (the watcher and the poller share this).

Every function here is idempotent: applying the same observation twice writes nothing the
second time, emits no event, meters nothing and broadcasts nothing. Usage is recorded through
``billing.metering`` in the same transaction as the state change it follows from.

Locks are always taken cluster row first, then its operation (actions and tasks do the same),
so concurrent observers, workers and actions never deadlock.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import metering
from clusters import broadcast, progress
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from clusters.platform.gateway import CLUSTER_LABEL

logger = logging.getLogger("clusters.observe")
RELEASE_PREFIX = "kubernetes-"
TENANT_NS_PREFIX = "tenant-"
KUBECONFIG_SUFFIX = "-admin-kubeconfig"


def tenant_slug(namespace: str) -> str | None:
    return namespace[len(TENANT_NS_PREFIX):] if namespace.startswith(TENANT_NS_PREFIX) else None


def _locate(namespace: str, name: str) -> Cluster | None:
    """The live cluster behind a platform object, row-locked (the tenant row is not locked)."""
    slug = tenant_slug(namespace)
    if slug is None:
        return None
    cluster = (Cluster.objects.select_for_update(of=("self",))
               .filter(tenant__slug=slug, name=name, deleted_at__isnull=True)
               .select_related("tenant").first())
    if cluster is not None and not cluster.platform_resource_version and \
            not cluster.operations.filter(submitted_at__isnull=False).exists():
        # The portal never sent this cluster (a POST whose answer was lost, from a creation
        # that then failed): not ours to show or meter; the orphan cleanup removes it.
        return None
    return cluster


def _event(cluster: Cluster, reason: str, message: str, severity: str = "info",
           at: datetime | None = None, operation: Operation | None = None) -> None:
    ClusterEvent.objects.create(tenant_id=cluster.tenant_id, cluster=cluster, reason=reason[:64],
                                message=message[:2000], severity=severity,
                                source=ClusterEvent.Source.PLATFORM, at=at or timezone.now(),
                                operation=operation)


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
    with transaction.atomic():
        cluster = _locate(namespace, name)
        if cluster is None:
            return False
        if obj is None:
            return _apply_absence(cluster, at)
        values = cluster_values(obj)
        rv = str((obj.get("metadata") or {}).get("resourceVersion") or "")
        before = _conditions_summary(cluster.conditions or [])
        after = _conditions_summary(values["conditions"])
        changed = after != before or any(
            getattr(cluster, key) != value for key, value in values.items()
            if key != "conditions")
        if not changed:
            if rv != cluster.platform_resource_version:
                Cluster.objects.filter(pk=cluster.pk).update(platform_resource_version=rv)
            return False
        for kind, (state, reason, message) in after.items():
            if before.get(kind) != (state, reason, message) and kind in ("Ready",
                                                                        "WorkloadsReady"):
                severity = "error" if state == "False" and kind == "Ready" else (
                    "warning" if state == "False" else "info")
                _event(cluster, reason or kind, f"{kind}={state}: {message}".strip(),
                       severity=severity, at=at)
        for key, value in values.items():
            setattr(cluster, key, value)
        cluster.platform_resource_version = rv
        refresh(cluster, at=at)
        return True


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
    cluster.platform_terminating = False
    refresh(cluster, at=at)
    return True


# --------------------------------------------------------------------------- node groups

def group_of(obj: dict[str, Any]) -> tuple[str, str] | None:
    """(cluster name, group name) of a MachineDeployment ``kubernetes-<cluster>-<group>``."""
    meta = obj.get("metadata", {})
    release = (meta.get("labels") or {}).get(CLUSTER_LABEL, "")
    if not release.startswith(RELEASE_PREFIX):
        return None
    name = meta.get("name", "")
    if not name.startswith(release + "-"):
        return None
    return release[len(RELEASE_PREFIX):], name[len(release) + 1:]


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


def apply_machine_deployment(namespace: str, obj: dict[str, Any], *, deleted: bool = False,
                             at: datetime | None = None) -> bool:
    """Apply one group's MachineDeployment (``deleted``: it is gone). True if it changed."""
    located = group_of(obj)
    if located is None:
        return False
    cluster_name, group_name = located
    values = md_values(None if deleted else obj)
    at = at or timezone.now()
    with transaction.atomic():
        cluster = _locate(namespace, cluster_name)
        if cluster is None:
            return False
        # The live group, else the most recently removed one (its nodes may still run).
        group = (cluster.node_groups.filter(name=group_name)
                 .order_by(F("removed_at").desc(nulls_first=True), "-pk").first())
        if group is None:
            logger.warning("cluster.observe.unknown_group",
                           extra={"cluster": cluster_name, "group": group_name})
            return False
        if all(getattr(group, k) == v for k, v in values.items()):
            return False
        nodes_before = (group.observed_nodes, group.ready_nodes)
        for key, value in values.items():
            setattr(group, key, value)
        group.last_observed_at = at
        group.save(update_fields=[*values, "last_observed_at"])
        if nodes_before != (group.observed_nodes, group.ready_nodes):
            _event(cluster, "NodeGroup",
                   _("%(group)s: %(nodes)s nodes, %(ready)s ready (target %(target)s).")
                   % {"group": group.name, "nodes": group.observed_nodes,
                      "ready": group.ready_nodes, "target": group.desired_nodes}, at=at)
        refresh(cluster, at=at)
        return True


def apply_kubeconfig_presence(namespace: str, cluster_name: str, exists: bool, *,
                              at: datetime | None = None) -> bool:
    with transaction.atomic():
        cluster = _locate(namespace, cluster_name)
        if cluster is None or cluster.kubeconfig_ready == exists:
            return False
        cluster.kubeconfig_ready = exists
        if exists:
            _event(cluster, "KubeconfigIssued", _("The kubeconfig is available."), at=at)
        refresh(cluster, at=at)
        return True


def kubeconfig_cluster(secret_name: str) -> str | None:
    """``kubernetes-<name>-admin-kubeconfig`` → ``<name>``."""
    if secret_name.startswith(RELEASE_PREFIX) and secret_name.endswith(KUBECONFIG_SUFFIX):
        return secret_name[len(RELEASE_PREFIX):-len(KUBECONFIG_SUFFIX)] or None
    return None


# --------------------------------------------------------------------------- derived state

def derive_phase(cluster: Cluster, groups: list[NodeGroup], active: Operation | None
                 ) -> tuple[str, str]:
    """The phase and the plain-words status line a person reads."""
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
    workloads = cluster.condition("WorkloadsReady") or {}
    if not settled or workloads.get("status") == "False":
        return Cluster.Phase.DEGRADED, _("Degraded: %(workers)s.") % {"workers": workers}
    total = sum(g.ready_nodes for g in groups)
    return Cluster.Phase.RUNNING, _("Running: %(n)s nodes ready.") % {"n": total}


def metered_groups(cluster: Cluster) -> list[NodeGroup]:
    """Live groups, plus removed ones whose nodes the platform has not removed yet."""
    return list(cluster.node_groups.filter(
        Q(removed_at__isnull=True) | (Q(observed_nodes__gt=0) & ~Q(observed_phase="Deleted"))))


def refresh(cluster: Cluster, *, at: datetime | None = None) -> None:
    """Recompute progress, phase and usage after an observation; broadcast after commit.

    Must run inside the transaction that holds the cluster row lock.
    """
    at = at or timezone.now()
    all_groups = metered_groups(cluster)
    groups = [g for g in all_groups if g.removed_at is None]
    active = (cluster.operations.select_for_update()
              .filter(state__in=Operation.ACTIVE_STATES).first())
    if active is not None and active.submitted_at is not None:
        finish_if_converged(active, cluster, groups, at=at)
        if not active.is_active:
            active = None
    if cluster.platform_deleted_at is not None and cluster.deleted_at is None:
        cluster.deleted_at = cluster.platform_deleted_at
        cluster.node_groups.filter(removed_at__isnull=True).update(
            removed_at=cluster.platform_deleted_at)
        groups = []
    ready = cluster.condition("Ready") or {}
    cluster.last_error = (ready.get("message") or "") if ready.get("status") == "False" and \
        ready.get("reason") in progress.FAILED_REASONS else ""
    phase, message = derive_phase(cluster, groups, active)
    cluster.phase, cluster.status_message = phase, message[:500]
    cluster.last_observed_at = at
    cluster.save()
    metering.observe_cluster(cluster, all_groups, at)
    broadcast.on_commit(cluster.pk)


def finish_if_converged(operation: Operation, cluster: Cluster, groups: list[NodeGroup], *,
                        at: datetime | None = None) -> None:
    verdict = progress.evaluate(operation, cluster, groups, now=at)
    fields = []
    if verdict.steps != operation.steps:
        operation.steps = verdict.steps
        fields.append("steps")
    if verdict.outcome is not None:
        operation.state = verdict.outcome
        operation.finished_at = at or timezone.now()
        operation.error_class = verdict.error_class
        operation.error_message = verdict.message
        operation.lease_until = None
        operation.lease_token = ""
        fields += ["state", "finished_at", "error_class", "error_message", "lease_until",
                   "lease_token"]
        if verdict.outcome == Operation.State.SUCCEEDED:
            ClusterEvent.objects.create(
                tenant_id=cluster.tenant_id, cluster=cluster, operation=operation,
                source=ClusterEvent.Source.PORTAL, reason=f"operation.{operation.kind}.done",
                message=_("“%(op)s” finished.") % {"op": operation.get_kind_display()})
        else:
            ClusterEvent.objects.create(
                tenant_id=cluster.tenant_id, cluster=cluster, operation=operation,
                source=ClusterEvent.Source.PORTAL, severity=ClusterEvent.Severity.ERROR,
                reason=f"operation.{operation.kind}.failed", message=verdict.message)
    if fields:
        operation.save(update_fields=fields)
