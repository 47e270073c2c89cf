"""The ``window`` planner: upgrade policies, scheduling and announcing, releasing in the window
(``clusters.maintenance``)."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clusters import actions, events, lifecycle, operations, plans
from clusters.desired import write_desired_rows
from clusters.maintenance.windows import (
    POSTPONE_MAX_DAYS,
    REASON,
    Limits,
    Window,
    freezes_between,
    frozen_at,
    limits,
    next_window,
    setting_of,
    settings_of,
    system,
)
from clusters.models import (
    AutomaticUpgrade,
    AutomationControl,
    Cluster,
    Offering,
    Operation,
    UpgradePolicy,
)
from clusters.offerings import hidden_offerings
from clusters.platform_release import allowed_versions
from cozystack import catalog
from cozystack.specjson import spec_to_json
from portal.audit import record
from portal.permissions import Role
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.maintenance")

# --------------------------------------------------------------------------- policies


def offered_versions() -> tuple[str, ...]:
    """The versions staff offer: what the platform accepts minus what staff hid."""
    hidden = hidden_offerings().get(Offering.Kind.VERSION, frozenset())
    return tuple(v for v in allowed_versions() if v not in hidden)


def end_of_life_on(version: str) -> date | None:
    return (Offering.objects.filter(kind=Offering.Kind.VERSION, name=version)
            .values_list("end_of_life_on", flat=True).first())


@dataclass(frozen=True)
class Target:
    version: str
    end_of_life_on: date | None


def upgrade_target(cluster: Cluster, policy: str, today: date, lead_days: int,
                   offered: tuple[str, ...]) -> Target | None:
    """The version ``policy`` moves the cluster to now (one minor), if any."""
    if policy == UpgradePolicy.MANUAL:
        return None
    target = catalog.next_minor(cluster.version, offered)
    if target is None:
        return None
    end = end_of_life_on(cluster.version)
    if policy == UpgradePolicy.BEFORE_END_OF_LIFE and (
            end is None or (end - today).days > lead_days):
        return None
    return Target(target, end)


def failed_upgrade(cluster: Cluster) -> AutomaticUpgrade | None:
    """The cluster's last automatic upgrade, if it is the cluster's latest upgrade and it
    failed (the portal's record already names its version): it is tried again in a later
    window, never in a loop."""
    last = (cluster.operations.filter(kind=Operation.Kind.UPGRADE)
            .exclude(state=Operation.State.SCHEDULED).order_by("-created_at", "-id").first())
    if last is None or last.state != Operation.State.FAILED:
        return None
    upgrade = AutomaticUpgrade.objects.filter(operation=last).first()
    if upgrade is None or upgrade.to_version != cluster.version:
        return None
    return upgrade


def target_for(cluster: Cluster, policy: str, today: date, lead_days: int,
               offered: tuple[str, ...]) -> tuple[Target, str, bool] | None:
    """What the policy upgrades the cluster to now: (target, from version, a retry of a failed
    automatic upgrade)."""
    if policy == UpgradePolicy.MANUAL:
        return None
    failed = failed_upgrade(cluster)
    if failed is not None:
        return Target(failed.to_version, failed.end_of_life_on), failed.from_version, True
    target = upgrade_target(cluster, policy, today, lead_days, offered)
    return (target, cluster.version, False) if target is not None else None


def what_rolls(cluster: Cluster, target: str, old: str | None = None) -> str:
    groups = [g for g in cluster.live_node_groups()]
    parts = [ngettext("%(name)s (%(n)s node)", "%(name)s (%(n)s nodes)",
                      max(g.observed_nodes, g.min_replicas))
             % {"name": g.name, "n": max(g.observed_nodes, g.min_replicas)}
             for g in sorted(groups, key=lambda g: g.position)]
    return _("The control plane moves from %(old)s to %(new)s, then every node is replaced, "
             "group by group: %(groups)s.") % {"old": old or cluster.version, "new": target,
                                               "groups": ", ".join(parts) or "-"}


def local_text(at: datetime, zone: str) -> str:
    return f"{at.astimezone(ZoneInfo(zone)):%Y-%m-%d %H:%M} ({zone})"


# --------------------------------------------------------------------------- reading


def waiting_upgrades(cluster_ids: Iterable[int] | None = None
                     ) -> QuerySet[AutomaticUpgrade]:
    """Scheduled automatic upgrades not started yet (their operation waits)."""
    qs = (AutomaticUpgrade.objects.filter(operation__state=Operation.State.SCHEDULED)
          .select_related("operation", "cluster", "cluster__tenant"))
    if cluster_ids is not None:
        qs = qs.filter(cluster_id__in=list(cluster_ids))
    return qs


def scheduled_for(cluster: Cluster) -> AutomaticUpgrade | None:
    return waiting_upgrades([cluster.pk]).first()


def running_automatic() -> int:
    """Automatic upgrades in progress, platform-wide (the concurrency cap counts them)."""
    return AutomaticUpgrade.objects.filter(
        operation__state__in=Operation.ACTIVE_STATES).count()


def postpone_choices(upgrade: AutomaticUpgrade, window: Window) -> list[tuple[datetime, datetime]]:
    """The openings a scheduled upgrade may be postponed to: later than its window, at most
    14 days later, never past the version's end of life, none in a freeze."""
    start = upgrade.operation.not_before or upgrade.window_start
    until = start + timedelta(days=POSTPONE_MAX_DAYS, seconds=1)
    if upgrade.end_of_life_on is not None:
        until = min(until, datetime.combine(upgrade.end_of_life_on, time(0), tzinfo=UTC))
    periods = freezes_between(start, until)
    return [(s, e) for s, e in window.occurrences(start + timedelta(seconds=1), until)
            if s > start and frozen_at(s, periods) is None]


# --------------------------------------------------------------------------- the planner


class MaintenancePlanner:
    name = REASON

    def plan(self, now: datetime) -> int:
        self.replan(now)
        started = self.release_due(now)
        scheduled = self.schedule_due(now)
        return started + scheduled

    # -- 1. re-plan

    def replan(self, now: datetime) -> int:
        offered = offered_versions()
        dropped = 0
        for upgrade in list(waiting_upgrades()):
            reason = self._gone(upgrade, offered)
            if reason:
                dropped += _unschedule(upgrade.operation_id, reason, now)
        return dropped

    def _gone(self, upgrade: AutomaticUpgrade, offered: tuple[str, ...]) -> str:
        cluster = upgrade.cluster
        if cluster.is_deleted or cluster.phase == Cluster.Phase.DELETING:
            return _("The cluster is being deleted.")
        retry = bool(upgrade.operation.params.get("again"))
        if (retry and failed_upgrade(cluster) is None) or (
                not retry and cluster.version != upgrade.from_version):
            return _("The cluster runs %(v)s now: the automatic upgrade is planned anew.") % {
                "v": cluster.version}
        if setting_of(cluster).policy == UpgradePolicy.MANUAL:
            return _("The upgrade policy is manual now.")
        if upgrade.to_version not in offered:
            return _("%(v)s is no longer offered.") % {"v": upgrade.to_version}
        return ""

    # -- 2. release

    def release_due(self, now: datetime) -> int:
        started = 0
        due = (waiting_upgrades().filter(operation__not_before__lte=now)
               .order_by("operation__not_before", "pk"))
        for upgrade in list(due):
            started += _release(upgrade.pk, now)
        return started

    # -- 3. schedule

    def schedule_due(self, now: datetime) -> int:
        bounds = limits()
        offered = offered_versions()
        # Not while one waits, nor while any change runs (the next pass looks again).
        busy = Operation.objects.filter(
            Q(state=Operation.State.SCHEDULED, kind=Operation.Kind.UPGRADE)
            | Q(state__in=Operation.ACTIVE_STATES))
        candidates = (Cluster.objects.live().exclude(phase__in=[Cluster.Phase.CREATING,
                                                                Cluster.Phase.DELETING])
                      .exclude(pk__in=busy.values("cluster_id"))
                      .select_related("tenant"))
        listed = list(candidates)
        by_cluster = settings_of(listed)
        count = 0
        for cluster in listed:
            policy = by_cluster[cluster.pk].policy
            if policy != UpgradePolicy.MANUAL and target_for(
                    cluster, policy, now.date(), bounds.end_of_life_lead_days,
                    offered) is not None:
                count += _schedule(cluster.pk, now, bounds)
        return count

    # -- the dry run

    def upcoming(self, cluster_ids: Iterable[int] | None, now: datetime,
                 until: datetime) -> list[lifecycle.Upcoming]:
        ids = None if cluster_ids is None else list(cluster_ids)
        found: list[lifecycle.Upcoming] = []
        for upgrade in waiting_upgrades(ids):
            at = max(upgrade.operation.not_before or upgrade.window_start, now)
            if at <= until:
                found.append(lifecycle.Upcoming(
                    cluster_id=upgrade.cluster_id, tenant_id=upgrade.tenant_id, at=at,
                    kind="upgrade", reason=REASON,
                    summary=_("Automatic upgrade to %(v)s (window until %(end)s)") % {
                        "v": upgrade.to_version,
                        "end": upgrade.window_end.strftime("%Y-%m-%d %H:%M UTC")}))
        # Clusters whose policy will schedule an upgrade: when it would run.
        bounds = limits()
        offered = offered_versions()
        waiting = Operation.objects.filter(state=Operation.State.SCHEDULED,
                                           kind=Operation.Kind.UPGRADE)
        clusters = (Cluster.objects.live().exclude(phase=Cluster.Phase.DELETING)
                    .exclude(pk__in=waiting.values("cluster_id")).select_related("tenant"))
        if ids is not None:
            clusters = clusters.filter(pk__in=ids)
        listed = list(clusters)
        by_cluster = settings_of(listed)
        for cluster in listed:
            setting = by_cluster[cluster.pk]
            if setting.policy == UpgradePolicy.MANUAL:
                continue
            found_target = target_for(cluster, setting.policy, now.date(),
                                      bounds.end_of_life_lead_days, offered)
            if found_target is None:
                continue
            target = found_target[0]
            opening = _opening_for(setting.window, now, bounds, target)
            if opening is not None and opening[0] <= until:
                found.append(lifecycle.Upcoming(
                    cluster_id=cluster.pk, tenant_id=cluster.tenant_id, at=opening[0],
                    kind="upgrade", reason=REASON,
                    summary=_("Automatic upgrade to %(v)s (to be announced)") % {
                        "v": target.version}))
        return found


PLANNER = MaintenancePlanner()


def _opening_for(window: Window, now: datetime, bounds: Limits, target: Target
                 ) -> tuple[datetime, datetime] | None:
    """The window an upgrade planned now waits for: the first one at least ``announce_days``
    ahead, unless that passes the end of life (then the first one at all)."""
    opening = next_window(window, now + timedelta(days=bounds.announce_days))
    if target.end_of_life_on is not None:
        eol = datetime.combine(target.end_of_life_on, time(0), tzinfo=UTC)
        if opening is None or opening[0] >= eol:
            opening = next_window(window, now) or opening
    return opening


def _lock(cluster_id: int) -> Cluster | None:
    return (Cluster.objects.select_for_update(no_key=True, of=("self",))
            .select_related("tenant").filter(pk=cluster_id, deleted_at__isnull=True).first())


def _schedule(cluster_id: int, now: datetime, bounds: Limits) -> int:
    """Schedule and announce one automatic upgrade of the cluster (under its row lock; none
    when one waits already or the policy calls for none now)."""
    with transaction.atomic():
        cluster = _lock(cluster_id)
        if cluster is None or cluster.operations.filter(
                Q(state=Operation.State.SCHEDULED, kind=Operation.Kind.UPGRADE)
                | Q(state__in=Operation.ACTIVE_STATES)).exists():
            return 0
        setting = setting_of(cluster)
        found = target_for(cluster, setting.policy, now.date(), bounds.end_of_life_lead_days,
                           offered_versions())
        if found is None:
            return 0
        target, from_version, retry = found
        opening = _opening_for(setting.window, now, bounds, target)
        if opening is None:
            return 0
        start, end = opening
        rolls = what_rolls(cluster, target.version, from_version)
        when = local_text(start, setting.window.zone)
        actor = system()
        try:
            with transaction.atomic():
                operation = operations.schedule(
                    actor, cluster, Operation.Kind.UPGRADE,
                    params={"version": target.version, "automatic": True, "policy":
                            setting.policy, "window_end": end.isoformat(), "again": retry},
                    not_before=start, now=now,
                    summary=_("Automatic upgrade to %(v)s scheduled for %(when)s. %(rolls)s")
                    % {"v": target.version, "when": when, "rolls": rolls})
                upgrade = AutomaticUpgrade.objects.create(
                    tenant_id=cluster.tenant_id, cluster=cluster, operation=operation,
                    policy=setting.policy, from_version=from_version,
                    to_version=target.version, window_start=start, window_end=end,
                    end_of_life_on=target.end_of_life_on, announced_at=now, created_at=now)
        except IntegrityError:
            return 0  # this window has its upgrade already
        record(actor, "cluster.upgrade.scheduled", cluster, tenant=cluster.tenant, changes={
            "version": [from_version, target.version],
            "not_before": [None, start.isoformat()], "policy": [None, setting.policy]})
        events.publish(events.MaintenanceScheduled(
            cluster, from_version, target.version, start, end, setting.window.zone, rolls,
            now))
        events.cluster_changed(cluster.pk)
    logger.info("cluster.upgrade.scheduled",
                extra={"cluster_id": cluster_id, "upgrade_id": upgrade.pk})
    return 1


def _release(upgrade_id: int, now: datetime) -> int:
    """Start a due automatic upgrade if it may start now; move it to the next window when its
    window closed or a freeze covers it. 1 when it started."""
    with transaction.atomic():
        # The cap is counted under one row lock: two planners cannot both pass it.
        AutomationControl.objects.get_or_create(pk=1)
        AutomationControl.objects.select_for_update().filter(pk=1).first()
        upgrade = (AutomaticUpgrade.objects.select_related("operation").filter(pk=upgrade_id)
                   .first())
        if upgrade is None:
            return 0
        cluster = _lock(upgrade.cluster_id)
        operation = (Operation.objects.select_for_update(no_key=True)
                     .filter(pk=upgrade.operation_id, state=Operation.State.SCHEDULED).first())
        if cluster is None or operation is None:
            return 0
        setting = setting_of(cluster)
        freeze = frozen_at(now)
        if now >= upgrade.window_end or freeze is not None:
            _move_to_next_window(upgrade, operation, setting.window, now,
                                 _("The freeze “%(reason)s” covers this window.")
                                 % {"reason": freeze.reason or "-"} if freeze is not None
                                 else _("The window closed before the upgrade could start."))
            return 0
        if running_automatic() >= limits().max_concurrent:
            return 0  # the cap: it waits, within its window
        if operations.active_operation(cluster) is not None or \
                cluster.phase in (Cluster.Phase.CREATING, Cluster.Phase.DELETING):
            return 0  # another change runs: the next pass tries again
        actor = system()
        ctx = TenantContext(cluster.tenant, Role.OWNER, None)
        plan, refusal = _plan_upgrade(ctx, cluster, upgrade.to_version,
                                      retry_from=upgrade.from_version
                                      if operation.params.get("again") else None)
        if plan is None:
            why = _("The automatic upgrade cannot start: %(why)s") % {"why": refusal}
            operations.unschedule(operation, why, actor_label=actor.label, at=now)
            _audit_dropped(operation, why)
            events.cluster_changed(cluster.pk)
            return 0
        write_desired_rows(cluster, plan.after)
        cluster.phase = Cluster.Phase.UPDATING
        cluster.status_message = _("Queued: waiting for a worker.")
        cluster.save(update_fields=["phase", "status_message", "updated_at"])
        operations.release(
            operation, params={**operation.params, **plan.params,
                               "before": spec_to_json(plan.before),
                               "after": spec_to_json(plan.after)},
            desired_spec=actions.manifest_for(plan.kind, plan.after),
            summary=_("Automatic upgrade to %(v)s started in the maintenance window.")
            % {"v": upgrade.to_version}, actor_label=actor.label, now=now)
        actions.enqueue(operation)
        record(actor, plan.verb, cluster, tenant=cluster.tenant,
               changes={"spec": [spec_to_json(plan.before), spec_to_json(plan.after)],
                        **plan.params, "automatic": [None, True]})
    logger.info("cluster.upgrade.automatic_started",
                extra={"cluster_id": upgrade.cluster_id, "operation_id": upgrade.operation_id})
    return 1


def _plan_upgrade(ctx: TenantContext, cluster: Cluster, version: str, *,
                  retry_from: str | None = None) -> tuple[plans.ChangePlan | None, str]:
    """The person's upgrade plan, against the cluster as it is now (for the retry of a failed
    upgrade: from the version the platform still runs), or why it is refused."""
    spec = cluster.to_spec()
    if retry_from is not None:
        spec = dataclasses.replace(spec, version=retry_from)
    try:
        plan = plans.upgrade(version)(spec)
    except ValidationError as error:
        return None, "; ".join(error.messages)
    errors = actions.check_plan(ctx, plan, cluster_id=cluster.pk)
    if errors:
        return None, "; ".join(e.message for e in errors)
    return plan, ""


def _move_to_next_window(upgrade: AutomaticUpgrade, operation: Operation, window: Window,
                         now: datetime, why: str) -> None:
    opening = next_window(window, now)
    if opening is None:
        operations.unschedule(operation, why, actor_label=system().label, at=now)
        _audit_dropped(operation, why)
        events.cluster_changed(upgrade.cluster_id)
        return
    start, end = opening
    old = operation.not_before
    operations.reschedule(
        operation, start, why + " " + _("Moved to %(when)s.") % {
            "when": local_text(start, window.zone)},
        actor_label=system().label, now=now,
        params={**operation.params, "window_end": end.isoformat()})
    upgrade.window_start, upgrade.window_end = start, end
    upgrade.save(update_fields=["window_start", "window_end"])
    cluster = upgrade.cluster
    record(system(), "cluster.upgrade.rescheduled", cluster, tenant=cluster.tenant, changes={
        "not_before": [old.isoformat() if old else None, start.isoformat()], "why": [None, why]})
    events.cluster_changed(upgrade.cluster_id)


def _audit_dropped(operation: Operation, why: str) -> None:
    cluster = Cluster.objects.select_related("tenant").get(pk=operation.cluster_id)
    record(system(), "cluster.upgrade.unscheduled", cluster, tenant=cluster.tenant,
           changes={"operation": [operation.pk, None], "why": [None, why]})


def _unschedule(operation_id: int, reason: str, now: datetime) -> int:
    with transaction.atomic():
        operation = (Operation.objects.select_for_update(no_key=True)
                     .filter(pk=operation_id, state=Operation.State.SCHEDULED).first())
        if operation is None:
            return 0
        operations.unschedule(operation, reason, actor_label=system().label, at=now)
        _audit_dropped(operation, reason)
        events.cluster_changed(operation.cluster_id)
    return 1

