"""Hibernate, wake and hibernation schedules: the actions and the lifecycle planner.

``do_hibernate`` applies ``plans.hibernate`` (every node group to min 0 / max 0) through the
normal action and operation path and opens a ``Hibernation`` row keeping each group's exact
min and max; ``do_wake`` applies ``plans.wake`` with what that row restores. The operation's
end moves the row (``on_operation_finished``, in the finishing transaction): hibernated,
woken, or a failed wake to retry. A wake is never skipped: the planner retries a failed wake
every ``WAKE_RETRY_DELAY``, and after ``WAKE_RETRIES`` attempts staff are alerted once
(``WakeFailing``) while the retries go on.

The planner (``PLANNER``, registered in ``clusters.apps``) acts at each boundary of a cluster's
schedule once, as ``Actor.system("schedule")``; it waits while the cluster has an operation in
progress, and a second pass in the same minute starts nothing more (``handled_until`` and the
one-open-hibernation constraint).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import actions, events, hibernation, lifecycle, plans
from clusters import hibernation_schedule as schedules
from clusters.models import Cluster, ClusterEvent, Hibernation, HibernationSchedule, Operation
from portal.audit import Actor, record
from portal.permissions import Perm, Role
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.hibernation")

WAKE_RETRIES = 3
WAKE_RETRY_DELAY = timedelta(minutes=5)
SCHEDULE = "schedule"
STARTED, BUSY, REFUSED = "started", "busy", "refused"
AWAKE_PHASES = (Cluster.Phase.RUNNING, Cluster.Phase.DEGRADED, Cluster.Phase.UPDATING)


def _system_ctx(cluster: Cluster) -> TenantContext:
    return TenantContext(cluster.tenant, Role.OWNER, None)


def _timeline(cluster: Cluster, reason: str, message: str, actor_label: str = "", *,
              severity: str = ClusterEvent.Severity.INFO, operation: Operation | None = None
              ) -> None:
    ClusterEvent.objects.create(
        tenant_id=cluster.tenant_id, cluster=cluster, operation=operation, at=timezone.now(),
        source=ClusterEvent.Source.PORTAL, severity=severity, reason=reason, message=message,
        actor_label=actor_label)


# --------------------------------------------------------------------------- hibernate / wake


def do_hibernate(actor: Actor, ctx: TenantContext, name: str, *,
                 reason: str = "manual") -> Hibernation:
    """Put the cluster to sleep: a scale operation setting every node group to min 0 / max 0
    (the control plane keeps running), and an open ``Hibernation`` keeping each group's exact
    min and max for the wake; audited. Refused while it already hibernates (so repeating it
    does nothing more), while another change runs, and before the cluster runs."""
    if actor.read_only:
        raise ValidationError(_("This is a read-only view."), code="read_only")
    if actor.user is not None:
        ctx.require(Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        actions.lock_tenant(ctx)
        cluster = actions.access_cluster(ctx, name, for_update=True)
        if hibernation.open_hibernation(cluster.pk, lock=True) is not None:
            raise ValidationError(_("This cluster already hibernates."), code="hibernating")
        if cluster.phase not in AWAKE_PHASES:
            raise ValidationError(_("Only a running cluster can hibernate."), code="not_running")
        live = cluster.to_spec()
        operation = actions.apply_system_plan(actor, ctx, cluster, plans.hibernate(),
                                              waive=plans.waived_for_hibernation)
        held = Hibernation.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, reason=reason[:16],
            started_at=operation.created_at, started_by=actor.label,
            restore=hibernation.groups_to_json(live.node_groups),
            hibernate_operation=operation)
    return held


def do_wake(actor: Actor, ctx: TenantContext, name: str) -> Hibernation:
    """Wake the cluster: an operation giving each node group back the exact min and max it
    had (with what changed while it slept); the hibernation's hours end now. Also retries a
    wake that failed. Refused when it does not hibernate and while another change runs."""
    if actor.read_only:
        raise ValidationError(_("This is a read-only view."), code="read_only")
    if actor.user is not None:
        ctx.require(Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        actions.lock_tenant(ctx)
        cluster = actions.access_cluster(ctx, name, for_update=True)
        held = hibernation.open_hibernation(cluster.pk, lock=True)
        if held is None:
            raise ValidationError(_("This cluster does not hibernate."), code="not_hibernating")
        operation = actions.apply_system_plan(  # refused while another change runs
            actor, ctx, cluster, plans.wake(hibernation.restore_groups(held)),
            waive=plans.waived_for_hibernation)
        _move(held, state=Hibernation.State.WAKING, ended_at=held.ended_at or timezone.now(),
              woken_by=held.woken_by or actor.label, wake_operation=operation,
              wake_attempts=held.wake_attempts + 1, next_wake_try_at=None)
    return held


def _move(held: Hibernation, **fields: Any) -> None:
    """Write a hibernation's own fields (its row, then the instance in hand). A queryset
    update: these are the hibernation's fields, never an operation's, which only the operation
    state machine writes."""
    Hibernation.objects.filter(pk=held.pk).update(**fields)
    for name, value in fields.items():
        setattr(held, name, value)


def on_operation_finished(event: events.OperationFinished) -> None:
    """Move the hibernation an operation served (in the transaction that finishes it)."""
    operation = event.operation
    role = (operation.params or {}).get(plans.HIBERNATION_PARAM)
    if operation.kind == Operation.Kind.DELETE and operation.state == Operation.State.SUCCEEDED:
        # A deleted cluster sleeps no more: its hours (and the savings) end with it.
        Hibernation.objects.filter(cluster_id=operation.cluster_id,
                                   state__in=hibernation.OPEN_STATES).update(
            state=Hibernation.State.ENDED, ended_at=Coalesce("ended_at", Value(
                operation.finished_at or timezone.now())), next_wake_try_at=None)
    elif role == "hibernate":
        _hibernate_finished(operation)
    elif role == "wake":
        _wake_finished(operation)


def _hibernate_finished(operation: Operation) -> None:
    held = Hibernation.objects.select_related("cluster__tenant").filter(
        hibernate_operation=operation, state=Hibernation.State.HIBERNATING).first()
    if held is None:
        return
    cluster = held.cluster
    if operation.state == Operation.State.SUCCEEDED:
        _timeline(cluster, "hibernation.asleep", _(
            "Hibernating: the workers stopped and are no longer billed; the control plane "
            "keeps running."), operation=operation)
        events.publish(events.ClusterHibernated(cluster, held, operation.finished_at
                                                or timezone.now(), wakes_at(held)))
    elif operation.submitted_at is None:
        # The platform never had the change: the desired rows went back; nothing sleeps.
        _move(held, state=Hibernation.State.FAILED, ended_at=operation.finished_at)
        _timeline(cluster, "hibernation.failed", _("The cluster did not hibernate: %(why)s")
                  % {"why": operation.error_message}, severity=ClusterEvent.Severity.WARNING,
                  operation=operation)


def _wake_finished(operation: Operation) -> None:
    held = Hibernation.objects.select_related("cluster__tenant").filter(
        wake_operation=operation, state=Hibernation.State.WAKING).first()
    if held is None:
        return
    cluster = held.cluster
    now = operation.finished_at or timezone.now()
    if operation.state == Operation.State.SUCCEEDED:
        _move(held, state=Hibernation.State.WOKEN, woken_at=now)
        _timeline(cluster, "hibernation.woken", _(
            "Awake: every node group has its limits back."), operation=operation)
        events.publish(events.ClusterWoken(cluster, held, now))
        return
    held.next_wake_try_at = now + WAKE_RETRY_DELAY
    fields = ["next_wake_try_at"]
    _timeline(cluster, "hibernation.wake_failed", _(
        "The wake failed (attempt %(n)s); the portal tries again at %(at)s UTC.")
        % {"n": held.wake_attempts, "at": f"{held.next_wake_try_at:%H:%M}"},
        severity=ClusterEvent.Severity.WARNING, operation=operation)
    if held.wake_attempts >= WAKE_RETRIES and held.staff_alerted_at is None:
        held.staff_alerted_at = now
        fields.append("staff_alerted_at")
        events.publish(events.WakeFailing(held, operation, held.wake_attempts))
    held.save(update_fields=fields)


def _wake_refused(hibernation_id: int, now: datetime) -> None:
    """A retried wake the portal refused before any operation (the cluster gone, a rule):
    counted as a failed attempt, tried again later, staff alerted after the retries."""
    with transaction.atomic():
        held = Hibernation.objects.select_for_update().filter(
            pk=hibernation_id, state=Hibernation.State.WAKING).first()
        if held is None:
            return
        held.wake_attempts += 1
        held.next_wake_try_at = now + WAKE_RETRY_DELAY
        fields = ["wake_attempts", "next_wake_try_at"]
        if held.wake_attempts >= WAKE_RETRIES and held.staff_alerted_at is None:
            held.staff_alerted_at = now
            fields.append("staff_alerted_at")
            events.publish(events.WakeFailing(held, held.wake_operation, held.wake_attempts))
        held.save(update_fields=fields)


# --------------------------------------------------------------------------- schedules


def do_set_schedule(actor: Actor, ctx: TenantContext, name: str, *, time_zone: str,
                    ranges: Any, preset: str = "", enabled: bool = True
                    ) -> HibernationSchedule:
    """Set the cluster's hibernation schedule (a preset fills the ranges); audited. It acts
    from its next boundary on: saving it inside a sleep range does not put the cluster to
    sleep at once. Saving the same schedule again changes nothing."""
    if actor.read_only:
        raise ValidationError(_("This is a read-only view."), code="read_only")
    ctx.require(Perm.CLUSTERS_CHANGE)
    if preset:
        found = schedules.PRESETS_BY_KEY.get(preset)
        if found is None:
            raise ValidationError({"preset": _("Choose one of the presets.")})
        ranges = found.as_ranges()
    try:
        schedules.zone(time_zone)
        cleaned = schedules.clean_ranges(ranges)
    except schedules.ScheduleError as exc:
        raise ValidationError({exc.field: exc.message}) from None
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        row = HibernationSchedule.objects.filter(cluster=cluster).select_for_update().first()
        before = None if row is None else {"time_zone": row.time_zone, "ranges": row.ranges,
                                           "enabled": row.enabled, "preset": row.preset}
        after = {"time_zone": time_zone, "ranges": cleaned, "enabled": enabled,
                 "preset": preset}
        if before == after and row is not None:
            return row
        now = timezone.now()
        row = row or HibernationSchedule(cluster=cluster)
        row.time_zone, row.ranges, row.enabled, row.preset = time_zone, cleaned, enabled, preset
        row.handled_until, row.updated_by, row.updated_at = now, actor.label, now
        row.save()
        events.cluster_changed(cluster.pk)  # the pages show when it wakes
        record(actor, "cluster.hibernation_schedule", cluster, tenant=ctx.tenant,
               changes={"schedule": [before, after]})
        _timeline(cluster, "hibernation.schedule", _("Hibernation schedule set: %(ranges)s.")
                  % {"ranges": "; ".join(schedules.describe(cleaned)) or _("none")}
                  if enabled and cleaned else _("Hibernation schedule turned off."),
                  actor.label)
    return row


def schedule_of(cluster: Cluster) -> HibernationSchedule | None:
    return HibernationSchedule.objects.filter(cluster=cluster).first()


def wakes_at(held: Hibernation, now: datetime | None = None) -> datetime | None:
    """When a hibernating cluster wakes by its schedule (None: only when someone wakes it)."""
    if held.state == Hibernation.State.WAKING:
        return held.next_wake_try_at
    row = HibernationSchedule.objects.filter(cluster_id=held.cluster_id, enabled=True).first()
    if row is None or not row.ranges:
        return None
    found = schedules.next_boundary(row.ranges, row.time_zone, now or timezone.now(), "wake")
    return found.at if found else None


# --------------------------------------------------------------------------- the planner


class HibernationPlanner:
    """Schedules' boundaries and wake retries, once a minute (``clusters.lifecycle``)."""

    name = "hibernation"

    def plan(self, now: datetime) -> int:
        return self._retry_wakes(now) + self._follow_schedules(now)

    def _retry_wakes(self, now: datetime) -> int:
        started = 0
        due = (Hibernation.objects.filter(state=Hibernation.State.WAKING,
                                          next_wake_try_at__lte=now,
                                          cluster__deleted_at__isnull=True)
               .select_related("cluster__tenant").order_by("next_wake_try_at"))
        for held in due:
            outcome = self._act(held.cluster, "wake")
            if outcome == REFUSED:
                _wake_refused(held.pk, now)
            started += outcome == STARTED
        return started

    def _follow_schedules(self, now: datetime) -> int:
        started = 0
        frozen = lifecycle.freeze_at(now) is not None
        rows = (HibernationSchedule.objects.filter(enabled=True,
                                                   cluster__deleted_at__isnull=True)
                .select_related("cluster__tenant").order_by("pk"))
        for row in rows:
            if not row.ranges:
                continue
            boundary = schedules.last_boundary(row.ranges, row.time_zone, now)
            if boundary is None or (row.handled_until and boundary.at <= row.handled_until):
                continue
            cluster = row.cluster
            if cluster.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
                continue  # the next pass acts, once the change in progress ended
            held = hibernation.open_hibernation(cluster.pk)
            outcome = None
            if boundary.kind == "hibernate" and held is None:
                if frozen:
                    continue  # going to sleep waits for the freeze's end; waking never does
                outcome = self._act(cluster, "hibernate")
            elif boundary.kind == "wake" and held is not None \
                    and held.state == Hibernation.State.HIBERNATING:
                outcome = self._act(cluster, "wake")
            if outcome == BUSY:
                continue
            started += outcome == STARTED
            HibernationSchedule.objects.filter(pk=row.pk).update(handled_until=boundary.at)
        return started

    def _act(self, cluster: Cluster, kind: str) -> str:
        actor = Actor.system(SCHEDULE)
        ctx = _system_ctx(cluster)
        try:
            if kind == "hibernate":
                do_hibernate(actor, ctx, cluster.name, reason=SCHEDULE)
            else:
                do_wake(actor, ctx, cluster.name)
        except ValidationError as exc:
            if getattr(exc, "code", None) == "busy":
                return BUSY
            with transaction.atomic():
                _timeline(cluster, f"hibernation.{kind}_refused", " ".join(exc.messages),
                          actor.label, severity=ClusterEvent.Severity.WARNING)
            logger.info("hibernation.refused", extra={"cluster_id": cluster.pk, "kind": kind})
            return REFUSED
        return STARTED

    def upcoming(self, cluster_ids: Iterable[int] | None, now: datetime,
                 until: datetime) -> list[lifecycle.Upcoming]:
        found: list[lifecycle.Upcoming] = []
        rows = HibernationSchedule.objects.filter(enabled=True, cluster__deleted_at__isnull=True)
        retries = Hibernation.objects.filter(state=Hibernation.State.WAKING,
                                             next_wake_try_at__isnull=False,
                                             next_wake_try_at__lte=until)
        if cluster_ids is not None:
            ids = list(cluster_ids)
            rows, retries = rows.filter(cluster_id__in=ids), retries.filter(cluster_id__in=ids)
        opened = {h.cluster_id: h for h in Hibernation.objects.filter(
            state__in=hibernation.OPEN_STATES, cluster_id__in=rows.values("cluster_id"))}
        freezes = lifecycle.freezes_between(now, until)
        for row in rows.select_related("cluster").prefetch_related("cluster__node_groups"):
            held = opened.get(row.cluster_id)
            groups = (hibernation.restore_groups(held) if held is not None
                      else row.cluster.to_spec().node_groups)
            bounds = list(schedules.boundaries(row.ranges or [], row.time_zone, now, until))
            skipped = False
            for index, boundary in enumerate(bounds):
                at = boundary.at
                if boundary.kind == "wake" and skipped:
                    skipped = False  # the night it ends passed frozen: nothing to wake
                    continue
                frozen_until = (lifecycle.freeze_end(freezes, at)
                                if boundary.kind == "hibernate" else None)
                if frozen_until is not None:
                    # Going to sleep waits for the freeze's end, if the night still runs then.
                    wake = next((b.at for b in bounds[index + 1:] if b.kind == "wake"), None)
                    if (wake is not None and wake <= frozen_until) or frozen_until > until:
                        skipped = True
                        continue
                    at = frozen_until
                found.append(lifecycle.Upcoming(
                    cluster_id=row.cluster_id, tenant_id=row.cluster.tenant_id,
                    at=at, kind=boundary.kind,
                    summary=_summary(boundary.kind, groups), reason=SCHEDULE))
        for held in retries:
            found.append(lifecycle.Upcoming(
                cluster_id=held.cluster_id, tenant_id=held.tenant_id,
                at=max(held.next_wake_try_at or now, now), kind="wake",
                summary=_("Wake again (attempt %(n)s)") % {"n": held.wake_attempts + 1},
                reason=SCHEDULE))
        return found


def _summary(kind: str, groups: Iterable[Any]) -> str:
    if kind == "hibernate":
        return _("Hibernate: every node group to 0 nodes")
    return _("Wake: %(sizes)s") % {"sizes": ", ".join(
        f"{g.name} {g.min_replicas}–{g.max_replicas}" for g in groups)}


PLANNER = HibernationPlanner()
