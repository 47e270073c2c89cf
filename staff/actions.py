"""What staff do to a tenant's cluster from the admin: resync it with the platform, retry or
cancel its current operation, and take over a deletion the platform cannot finish.

Retry and cancel are the tenant's own actions (``clusters.actions``) run with the rights of
the tenant's owner, so every rule a tenant meets holds for staff too (a suspended tenant's
clusters stay as they are until staff lift the suspension). Each function records an audit
entry with the staff member's name, visible to the tenant's owners.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import metering
from clusters import actions, events, operations, outbox, tasks
from clusters.models import Cluster, ClusterEvent, Operation
from cozystack.gateway import PlatformError
from portal.audit import Actor, record
from portal.permissions import Role
from portal.tenancy import TenantContext
from portal.validators import check_visible_text
from staff.views import notify_staff_on_commit

MANUAL_CLEANUP_REASON = "manual_cleanup"


def tenant_context_for_staff(cluster: Cluster) -> TenantContext:
    """The cluster's tenant seen with its owner's rights (suspension still applies)."""
    return TenantContext(cluster.tenant, Role.OWNER, None)


def active_operation(cluster: Cluster) -> Operation | None:
    """The cluster's operation in progress, if any."""
    return operations.active_operation(cluster)


def last_operation(cluster: Cluster) -> Operation | None:
    """The cluster's latest operation (the active one, if any, is always the latest); one
    waiting for a maintenance window is not a change made yet."""
    return (cluster.operations.exclude(state=Operation.State.SCHEDULED)
            .order_by("-created_at", "-pk").first())


def do_force_resync(actor: Actor, cluster_id: int) -> Cluster:
    """Read the cluster from the platform now and apply what differs (the watcher's job, done
    on demand), then make sure its active operation is being worked on.

    Changes only what an observation changes; safe to repeat. Raises ``ValidationError`` when
    the platform cannot be reached (nothing is changed then).
    """
    cluster = Cluster.objects.select_related("tenant").get(pk=cluster_id)
    if cluster.is_deleted:
        raise ValidationError(_("This cluster is deleted: there is nothing to resync."),
                              code="deleted")
    before = {"phase": cluster.phase, "platform_ready": cluster.platform_ready}
    try:
        tasks.observe_cluster(cluster)
    except PlatformError as exc:
        raise ValidationError(_("The platform could not be read: %(e)s") % {"e": exc.message},
                              code="unreachable") from exc
    cluster.refresh_from_db()
    with transaction.atomic():
        active = operations.active_operation(cluster)
        kicked = ""
        if active is not None:
            op_id = active.pk
            if active.submitted_at is not None:
                kicked = "poll"
                outbox.put(op_id, outbox.Task.POLL)
            elif active.lease_until is None or active.lease_until < timezone.now():
                kicked = "apply"
                outbox.put(op_id, outbox.Task.APPLY)
        after = {"phase": cluster.phase, "platform_ready": cluster.platform_ready}
        changes = {key: [before[key], after[key]] for key in after if before[key] != after[key]}
        if active is not None and kicked:
            changes["operation"] = [None, f"{active.pk} ({kicked})"]
        record(actor, "cluster.resync", cluster, tenant=cluster.tenant, changes=changes)
        notify_staff_on_commit()
    return cluster


def do_staff_retry_operation(actor: Actor, operation_id: int) -> Operation:
    """Retry a failed or cancelled operation as the tenant's owner would (a new operation)."""
    operation = Operation.objects.select_related("cluster__tenant").get(pk=operation_id)
    return actions.do_retry_operation(actor, tenant_context_for_staff(operation.cluster),
                                      operation.pk)


def do_staff_cancel_operation(actor: Actor, operation_id: int) -> Operation:
    """Cancel an operation the platform has not received yet, as the tenant's owner would."""
    operation = Operation.objects.select_related("cluster__tenant").get(pk=operation_id)
    return actions.do_cancel_operation(actor, tenant_context_for_staff(operation.cluster),
                                       operation.pk)


def do_retry_current_operation(actor: Actor, cluster_id: int) -> Operation:
    """Retry the cluster's last operation (it must have failed or been cancelled)."""
    last = last_operation(Cluster.objects.get(pk=cluster_id))
    if last is None:
        raise ValidationError(_("This cluster has no operation to retry."), code="none")
    return do_staff_retry_operation(actor, last.pk)


def do_cancel_current_operation(actor: Actor, cluster_id: int) -> Operation:
    """Cancel the cluster's operation in progress (only while the platform has not got it)."""
    active = operations.active_operation(Cluster.objects.get(pk=cluster_id))
    if active is None:
        raise ValidationError(_("This cluster has no operation in progress."), code="none")
    return do_staff_cancel_operation(actor, active.pk)


def is_stuck_deletion(cluster: Cluster) -> bool:
    """Deletion was asked for (by the tenant or behind the portal's back) and is not done."""
    if cluster.is_deleted:
        return False
    return (cluster.phase == Cluster.Phase.DELETING or cluster.platform_terminating
            or cluster.operations.filter(kind=Operation.Kind.DELETE).exists())


def do_mark_for_manual_cleanup(actor: Actor, cluster_id: int, *, note: str) -> Cluster:
    """Take over a deletion the platform cannot finish: staff remove what is left by hand.

    The cluster becomes deleted in the portal (its name is free again, it leaves the tenant's
    lists and quota), its usage stops being billed from now on, and its active operation ends
    with ``note``. The platform is not touched. Safe to repeat: a deleted cluster is refused.
    """
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": _("Say what is left to clean up and who does it.")},
                              code="required")
    check_visible_text(note=note)
    with transaction.atomic():
        # Lock order everywhere: cluster row, then its operation.
        cluster = Cluster.objects.select_for_update().select_related("tenant").get(pk=cluster_id)
        if not is_stuck_deletion(cluster):
            raise ValidationError(
                _("Only a cluster whose deletion was requested and has not finished can be "
                  "marked for manual cleanup."), code="not_deleting")
        now = timezone.now()
        message = _("Marked for manual cleanup by %(who)s: %(note)s") % {
            "who": actor.label, "note": note}
        active = operations.active_operation(cluster, lock=True)
        if active is not None:
            operations.abandon(active, message, actor_label=actor.label, at=now)
        before_phase = cluster.phase
        cluster.platform_deleted_at = cluster.platform_deleted_at or now
        cluster.deleted_at = now
        cluster.phase = Cluster.Phase.DELETED
        cluster.platform_ready = False
        cluster.status_message = message[:500]
        cluster.save()
        cluster.node_groups.filter(removed_at__isnull=True).update(removed_at=now)
        closed = metering.observe_cluster(cluster, [], now)
        ClusterEvent.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, operation=active, at=now,
            source=ClusterEvent.Source.PORTAL, severity=ClusterEvent.Severity.WARNING,
            reason=MANUAL_CLEANUP_REASON, message=message, actor_label=actor.label)
        record(actor, "cluster.manual_cleanup", cluster, tenant=cluster.tenant,
               changes={"phase": [before_phase, Cluster.Phase.DELETED], "note": [None, note],
                        "operation": [active.pk if active else None, None],
                        "usage_segments_closed": [None, closed.closed]})
        if before_phase != Cluster.Phase.DELETED:
            events.publish(events.ClusterPhaseChanged(cluster, before_phase, now))
        events.cluster_changed(cluster.pk)
        notify_staff_on_commit()
    return cluster
