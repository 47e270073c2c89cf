"""Turn what the platform reports into portal state (the watcher and the poller share this).

Every function here is idempotent: applying the same observation twice writes nothing the
second time, emits no event, meters nothing and broadcasts nothing. Usage is recorded through
``billing.metering`` in the same transaction as the state change it follows from.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import metering
from clusters import broadcast, progress
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from clusters.platform.gateway import CLUSTER_LABEL

logger = logging.getLogger("clusters.observe")
RELEASE_PREFIX = "kubernetes-"
TENANT_NS_PREFIX = "tenant-"


def _tenant_slug(namespace: str) -> str | None:
    return namespace[len(TENANT_NS_PREFIX):] if namespace.startswith(TENANT_NS_PREFIX) else None


def _locate(namespace: str, name: str) -> Cluster | None:
    slug = _tenant_slug(namespace)
    if slug is None:
        return None
    return (Cluster.objects.select_for_update()
            .filter(tenant__slug=slug, name=name, deleted_at__isnull=True)
            .select_related("tenant").first())


def _event(cluster: Cluster, reason: str, message: str, severity: str = "info",
           at: datetime | None = None, operation: Operation | None = None) -> None:
    ClusterEvent.objects.create(tenant_id=cluster.tenant_id, cluster=cluster, reason=reason,
                                message=message[:2000], severity=severity,
                                source=ClusterEvent.Source.PLATFORM, at=at or timezone.now(),
                                operation=operation)


def _conditions_summary(conditions: list[dict[str, Any]]) -> dict[str, tuple[str, str, str]]:
    return {c.get("type", ""): (c.get("status", ""), c.get("reason", ""), c.get("message", ""))
            for c in conditions}


# --------------------------------------------------------------------------- the cluster object

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
        changed = False
        if obj is None:
            if cluster.platform_deleted_at is None and _deletion_expected(cluster):
                cluster.platform_deleted_at = at
                _event(cluster, "Deleted", _("The platform removed the cluster."), at=at)
                changed = True
            elif cluster.platform_deleted_at is None:
                # Gone without a deletion from the portal: say so, loudly, and stop metering.
                cluster.platform_deleted_at = at
                _event(cluster, "Vanished", _("The cluster disappeared from the platform "
                                             "without a deletion from the portal."),
                       severity="error", at=at)
                changed = True
        else:
            meta = obj.get("metadata", {})
            status = obj.get("status") or {}
            conditions = status.get("conditions") or []
            before = _conditions_summary(cluster.conditions or [])
            after = _conditions_summary(conditions)
            if after != before:
                for kind, (state, reason, message) in after.items():
                    if before.get(kind) != (state, reason, message) and kind in ("Ready",
                                                                                "WorkloadsReady"):
                        severity = "error" if state == "False" and kind == "Ready" else (
                            "warning" if state == "False" else "info")
                        _event(cluster, reason or kind, f"{kind}={state}: {message}".strip(),
                               severity=severity, at=at)
                cluster.conditions = conditions
                changed = True
            ready = (after.get("Ready") or ("", "", ""))[0] == "True"
            if ready != cluster.platform_ready:
                cluster.platform_ready = ready
                changed = True
            revision = str(status.get("version") or "")
            if revision != cluster.chart_revision:
                cluster.chart_revision = revision
                changed = True
            if meta.get("deletionTimestamp") and cluster.phase != Cluster.Phase.DELETING:
                changed = True
            rv = str(meta.get("resourceVersion") or "")
            if rv != cluster.platform_resource_version:
                cluster.platform_resource_version = rv
                cluster.save(update_fields=["platform_resource_version"])
        if changed:
            refresh(cluster, at=at)
        return changed


def _deletion_expected(cluster: Cluster) -> bool:
    return cluster.phase == Cluster.Phase.DELETING or cluster.operations.filter(
        kind=Operation.Kind.DELETE).exists()


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


def apply_machine_deployment(namespace: str, obj: dict[str, Any], *, deleted: bool = False,
                             at: datetime | None = None) -> bool:
    located = group_of(obj)
    if located is None:
        return False
    cluster_name, group_name = located
    at = at or timezone.now()
    with transaction.atomic():
        cluster = _locate(namespace, cluster_name)
        if cluster is None:
            return False
        group = cluster.node_groups.filter(name=group_name, removed_at__isnull=True).first()
        if group is None:
            group = (cluster.node_groups.filter(name=group_name)
                     .order_by("-removed_at").first())
            if group is None:
                logger.warning("cluster.observe.unknown_group",
                               extra={"cluster": cluster_name, "group": group_name})
                return False
        spec = obj.get("spec") or {}
        status = obj.get("status") or {}
        values = {
            "desired_nodes": 0 if deleted else int(spec.get("replicas") or 0),
            "observed_nodes": 0 if deleted else int(status.get("replicas") or 0),
            "ready_nodes": 0 if deleted else int(status.get("readyReplicas") or 0),
            "updated_nodes": 0 if deleted else int(status.get("updatedReplicas") or 0),
            "observed_phase": "Deleted" if deleted else str(status.get("phase") or ""),
        }
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


# --------------------------------------------------------------------------- derived state

def derive_phase(cluster: Cluster, groups: list[NodeGroup], active: Operation | None
                 ) -> tuple[str, str]:
    """The phase and the plain-words status line a person reads."""
    if cluster.platform_deleted_at is not None:
        return Cluster.Phase.DELETED, _("Deleted.")
    if active is not None and active.kind == Operation.Kind.DELETE:
        return Cluster.Phase.DELETING, _("Deleting: removing add-ons, control plane, workers "
                                         "and volumes.")
    ready = cluster.condition("Ready") or {}
    if ready.get("status") == "False" and ready.get("reason") in progress.FAILED_REASONS:
        return Cluster.Phase.FAILED, _("Failed: %(message)s") % {
            "message": ready.get("message") or ready.get("reason")}
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
        if cluster.phase == Cluster.Phase.CREATING:
            return Cluster.Phase.CREATING, _("Creating: waiting for the platform.")
        return Cluster.Phase.UPDATING, _("The platform is applying changes: %(message)s") % {
            "message": ready.get("message") or _("in progress")}
    workloads = cluster.condition("WorkloadsReady") or {}
    if not settled or workloads.get("status") == "False":
        return Cluster.Phase.DEGRADED, _("Degraded: %(workers)s.") % {"workers": workers}
    total = sum(g.ready_nodes for g in groups)
    return Cluster.Phase.RUNNING, _("Running: %(n)s nodes ready.") % {"n": total}


def refresh(cluster: Cluster, *, at: datetime | None = None) -> None:
    """Recompute progress, phase and usage after an observation; broadcast after commit.

    Must run inside the transaction that holds the cluster row lock.
    """
    at = at or timezone.now()
    groups = list(cluster.node_groups.filter(removed_at__isnull=True))
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
    cluster.last_error = (ready.get("message") or "") if cluster.condition("Ready") and \
        ready.get("status") == "False" else ""
    cluster.phase, cluster.status_message = derive_phase(cluster, groups, active)
    cluster.status_message = cluster.status_message[:500]
    cluster.last_observed_at = at
    cluster.save()
    metering.observe_cluster(cluster, groups, at)
    cluster_id = cluster.pk
    transaction.on_commit(lambda: broadcast.cluster_changed(cluster_id))


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
        fields += ["state", "finished_at", "error_class", "error_message", "lease_until"]
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
