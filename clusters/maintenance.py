"""Maintenance windows and automatic upgrades: the ``window`` planner of ``clusters.lifecycle``.

Each cluster has a maintenance window (weekdays, a start time, a duration of at least an hour,
an IANA time zone) and an upgrade policy: *manual*, *before end of life* (one minor version
once the version is within staff's lead of its end of life) or *keep current* (one minor per
window until the newest version staff offer). A cluster without a window of its own follows
its tenant's default, else the platform's (``settings.MAINTENANCE_DEFAULT_WINDOW``).

What the planner does, once a minute (``plan``), each step safe to repeat:

1. **Re-plan.** A scheduled upgrade whose reason is gone (a person upgraded or changed the
   policy, the version is no longer offered, the cluster went away) is dropped; the next step
   plans anew.
2. **Schedule.** A cluster whose policy calls for an upgrade gets one *scheduled operation*
   (``clusters.operations.schedule``) for its first window at least ``announce_days`` ahead
   that no freeze period covers (sooner only if that would pass the end of life). Scheduling
   is the announcement: a timeline entry, the audit entry and ``MaintenanceScheduled`` (email
   to owners and admins, webhooks), exactly once per scheduled upgrade (the row and the
   operation are written in one transaction, under the cluster's row lock).
3. **Release.** A scheduled upgrade whose window is open starts when the cluster is idle, no
   freeze covers now, and fewer than staff's maximum of automatic upgrades run platform-wide.
   Its change is planned then, against the cluster as it is (the same change plan as a
   person's upgrade), and it runs like any operation. A window that closes before it could
   start moves it to the next window. A failed automatic upgrade is not retried in its
   window: the next one is scheduled for a later window (staff are alerted of platform-side
   failures by ``staff.alerts``, as for every operation).

Times are UTC in the database; windows are computed in the cluster's zone with ``zoneinfo``,
so a window at 03:00 starts at 03:00 local time on both sides of a DST change.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clusters import actions, events, lifecycle, operations, plans
from clusters.desired import write_desired_rows
from clusters.models import (
    WEEKDAY_CHOICES,
    WINDOW_MAX_MINUTES,
    WINDOW_MIN_MINUTES,
    AutomaticUpgrade,
    AutomationControl,
    Cluster,
    FreezePeriod,
    MaintenanceWindow,
    Offering,
    Operation,
    UpgradeControl,
    UpgradePolicy,
)
from clusters.offerings import hidden_offerings
from clusters.platform_release import allowed_versions
from cozystack import catalog
from cozystack.specjson import spec_to_json
from portal.audit import Actor, record
from portal.permissions import Perm, Role
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.maintenance")

REASON = "window"
POSTPONE_MAX_DAYS = 14
# How far ahead a window is looked for (a weekly window always opens within a week; freeze
# periods may push it further).
SEARCH_DAYS = 120


def system() -> Actor:
    return Actor.system(REASON)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """A weekly maintenance window in a time zone."""

    weekdays: tuple[int, ...]
    start: time
    minutes: int
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    def occurrences(self, after: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Each opening (start, end, UTC) that is still open at ``after`` (its end is later)
        and starts before ``until``, in order. Local wall-clock time: a start that does not
        exist on a spring-forward day moves on by the gap, an ambiguous one on a fall-back
        day is its first occurrence."""
        tz = self.tz
        day = (after - self.duration).astimezone(tz).date()
        last = until.astimezone(tz).date()
        while day <= last:
            if day.weekday() in self.weekdays:
                local = datetime.combine(day, self.start, tzinfo=tz)
                start = local.astimezone(UTC)
                # A wall-clock time skipped by DST: fold=0 reads it with the offset before the
                # change, i.e. shifted forward by the gap, as the zone's clocks do.
                end = start + self.duration
                if end > after and start < until:
                    yield start, end
            day += timedelta(days=1)

    def describe(self) -> str:
        names = [str(label) for value, label in WEEKDAY_CHOICES if value in self.weekdays]
        hours, minutes = divmod(self.minutes, 60)
        length = f"{hours} h" + (f" {minutes:02d} min" if minutes else "")
        return _("%(days)s at %(start)s for %(length)s (%(zone)s)") % {
            "days": ", ".join(names), "start": self.start.strftime("%H:%M"), "length": length,
            "zone": self.zone}


def valid_zone(name: str) -> bool:
    if not name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in _zones()


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def check_window(weekdays: Iterable[Any], start: time | None, minutes: Any, zone: str
                 ) -> Window:
    """A window from what a person sent, or a ``ValidationError`` per field."""
    errors: dict[str, list[ValidationError]] = {}
    days = sorted({d for d in weekdays if isinstance(d, int) and not isinstance(d, bool)
                   and 0 <= d <= 6})
    if not days or len(days) != len(list(weekdays)):
        errors["weekdays"] = [ValidationError(
            _("Choose one or more weekdays (0 Monday … 6 Sunday)."), code="invalid_weekdays")]
    if start is None:
        errors["start_time"] = [ValidationError(_("Give a start time (HH:MM)."),
                                                code="invalid_start")]
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not (
            WINDOW_MIN_MINUTES <= minutes <= WINDOW_MAX_MINUTES):
        errors["duration_minutes"] = [ValidationError(
            _("A window lasts from %(min)s to %(max)s minutes.")
            % {"min": WINDOW_MIN_MINUTES, "max": WINDOW_MAX_MINUTES}, code="invalid_duration")]
    if not valid_zone(zone):
        errors["time_zone"] = [ValidationError(
            _("Use an IANA time zone, such as Europe/Zurich."), code="invalid_time_zone")]
    if errors:
        raise ValidationError(errors)
    assert start is not None and isinstance(minutes, int)
    return Window(tuple(days), start.replace(second=0, microsecond=0), minutes, zone)


def platform_default() -> Window:
    """The platform's default window (settings), e.g. ``"6 02:00 240 Europe/Zurich"``."""
    days, start, minutes, zone = settings.MAINTENANCE_DEFAULT_WINDOW.split()
    hour, minute = (int(part) for part in start.split(":"))
    return Window(tuple(sorted(int(d) for d in days.split(","))), time(hour, minute),
                  int(minutes), zone)


def window_of(row: MaintenanceWindow) -> Window:
    return Window(tuple(sorted(row.weekdays)), row.start_time, row.duration_minutes,
                  row.time_zone)


@dataclass(frozen=True)
class Setting:
    """A cluster's window and upgrade policy, and where they come from."""

    window: Window
    policy: str
    source: str  # "cluster", "tenant", "platform"


def tenant_default(tenant_id: int) -> MaintenanceWindow | None:
    return MaintenanceWindow.objects.filter(tenant_id=tenant_id, cluster__isnull=True).first()


def setting_of(cluster: Cluster) -> Setting:
    row = MaintenanceWindow.objects.filter(cluster=cluster).first()
    if row is not None:
        return Setting(window_of(row), row.upgrade_policy, "cluster")
    default = tenant_default(cluster.tenant_id)
    if default is not None:
        return Setting(window_of(default), default.upgrade_policy, "tenant")
    return Setting(platform_default(), UpgradePolicy.MANUAL, "platform")


def settings_of(clusters: Iterable[Cluster]) -> dict[int, Setting]:
    """``setting_of`` for many clusters in two queries (the planner's pass over the fleet)."""
    clusters = list(clusters)
    own = {row.cluster_id: row for row in MaintenanceWindow.objects.filter(
        cluster_id__in=[c.pk for c in clusters])}
    defaults = {row.tenant_id: row for row in MaintenanceWindow.objects.filter(
        cluster__isnull=True, tenant_id__in={c.tenant_id for c in clusters})}
    found = {}
    for cluster in clusters:
        row = own.get(cluster.pk)
        if row is not None:
            found[cluster.pk] = Setting(window_of(row), row.upgrade_policy, "cluster")
        elif (default := defaults.get(cluster.tenant_id)) is not None:
            found[cluster.pk] = Setting(window_of(default), default.upgrade_policy, "tenant")
        else:
            found[cluster.pk] = Setting(platform_default(), UpgradePolicy.MANUAL, "platform")
    return found


# --------------------------------------------------------------------------- staff's settings


@dataclass(frozen=True)
class Limits:
    max_concurrent: int
    end_of_life_lead_days: int
    announce_days: int


def limits() -> Limits:
    row = UpgradeControl.objects.filter(pk=1).first()
    if row is None:
        return Limits(settings.MAINTENANCE_MAX_CONCURRENT_UPGRADES,
                      settings.MAINTENANCE_END_OF_LIFE_LEAD_DAYS,
                      settings.MAINTENANCE_ANNOUNCE_DAYS)
    return Limits(row.max_concurrent_upgrades, row.end_of_life_lead_days, row.announce_days)


def frozen_at(at: datetime, freezes: list[FreezePeriod] | None = None) -> FreezePeriod | None:
    periods = freezes if freezes is not None else list(
        FreezePeriod.objects.filter(starts_at__lte=at, ends_at__gt=at))
    return next((f for f in periods if f.starts_at <= at < f.ends_at), None)


def _freezes(after: datetime, until: datetime) -> list[FreezePeriod]:
    return list(FreezePeriod.objects.filter(ends_at__gt=after, starts_at__lt=until))


def next_window(window: Window, after: datetime, *, before: datetime | None = None,
                freezes: list[FreezePeriod] | None = None) -> tuple[datetime, datetime] | None:
    """The first opening that starts at or after ``after`` (and before ``before``) whose start
    no freeze period covers."""
    until = before or after + timedelta(days=SEARCH_DAYS)
    periods = freezes if freezes is not None else _freezes(after, until)
    for start, end in window.occurrences(after, until):
        if start >= after and frozen_at(start, periods) is None:
            return start, end
    return None


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
    periods = _freezes(start, until)
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


# --------------------------------------------------------------------------- a person's actions


def _require(actor: Actor, ctx: TenantContext, perm: str) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(perm)


def do_set_maintenance(actor: Actor, ctx: TenantContext, name: str, window: Window,
                       policy: str) -> MaintenanceWindow:
    """Set the cluster's window and upgrade policy (audited). A scheduled upgrade that no
    longer fits (another window, a manual policy) is dropped and planned anew by the next
    pass. Setting the same again changes nothing."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    if policy not in UpgradePolicy.values:
        raise ValidationError({"upgrade_policy": ValidationError(
            _("Choose manual, before_end_of_life or keep_current."), code="invalid_choice")})
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        before = setting_of(cluster)
        row = MaintenanceWindow.objects.filter(cluster=cluster).first() or MaintenanceWindow(
            tenant=ctx.tenant, cluster=cluster)
        _fill(row, window, policy, actor)
        row.save()
        after = Setting(window, policy, "cluster")
        if (before.window, before.policy) != (after.window, after.policy):
            waiting = scheduled_for(cluster)
            if waiting is not None:
                operations.unschedule(
                    Operation.objects.select_for_update(no_key=True).get(
                        pk=waiting.operation_id),
                    _("The maintenance window or upgrade policy changed: planned anew."),
                    actor_label=actor.label)
            record(actor, "cluster.maintenance", cluster, tenant=ctx.tenant, changes={
                "window": [before.window.describe(), window.describe()],
                "upgrade_policy": [before.policy, policy]})
            events.cluster_changed(cluster.pk)
    return row


def do_set_tenant_default(actor: Actor, ctx: TenantContext, window: Window,
                          policy: str) -> MaintenanceWindow:
    """The tenant's default window and policy for its new clusters (owners and admins)."""
    _require(actor, ctx, Perm.TENANT_MANAGE)
    if policy not in UpgradePolicy.values:
        raise ValidationError({"upgrade_policy": ValidationError(
            _("Choose manual, before_end_of_life or keep_current."), code="invalid_choice")})
    with transaction.atomic():
        row = (MaintenanceWindow.objects.select_for_update()
               .filter(tenant=ctx.tenant, cluster__isnull=True).first()
               or MaintenanceWindow(tenant=ctx.tenant))
        before = window_of(row).describe() if row.pk else ""
        # The default is for new clusters: those that followed the old one keep it.
        _pin_followers(ctx.tenant.pk, row if row.pk else None, actor)
        _fill(row, window, policy, actor)
        row.save()
        record(actor, "tenant.maintenance_default", ctx.tenant, tenant=ctx.tenant,
               changes={"window": [before, window.describe()], "upgrade_policy": [None, policy]})
    return row


def _fill(row: MaintenanceWindow, window: Window, policy: str, actor: Actor) -> None:
    row.weekdays = list(window.weekdays)
    row.start_time = window.start
    row.duration_minutes = window.minutes
    row.time_zone = window.zone
    row.upgrade_policy = policy
    row.updated_by, row.updated_at = actor.label, timezone.now()


def _pin_followers(tenant_id: int, default: MaintenanceWindow | None, actor: Actor) -> None:
    """Give each live cluster of the tenant without a window of its own the one it follows
    now (the tenant's old default, else the platform's), so a new default only reaches new
    clusters."""
    window = window_of(default) if default is not None else platform_default()
    policy = default.upgrade_policy if default is not None else UpgradePolicy.MANUAL
    followers = (Cluster.objects.live().filter(tenant_id=tenant_id)
                 .exclude(pk__in=MaintenanceWindow.objects.filter(cluster__isnull=False)
                          .values("cluster_id")))
    rows = []
    for cluster in followers:
        row = MaintenanceWindow(tenant_id=tenant_id, cluster=cluster)
        _fill(row, window, policy, actor)
        rows.append(row)
    MaintenanceWindow.objects.bulk_create(rows)


def do_postpone_upgrade(actor: Actor, ctx: TenantContext, name: str,
                        to: datetime | None = None) -> AutomaticUpgrade:
    """Postpone the cluster's scheduled automatic upgrade once, to a later opening of its
    window at most 14 days later and never past the end of life (``to``: which one; none:
    the next). A second postponement is refused in words."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        upgrade = scheduled_for(cluster)
        if upgrade is None:
            raise ValidationError(_("No automatic upgrade is scheduled for this cluster."),
                                  code="not_scheduled")
        if upgrade.postponed_at is not None:
            raise ValidationError(_("This upgrade was postponed once already."),
                                  code="postponed_once")
        choices = postpone_choices(upgrade, setting_of(cluster).window)
        chosen = choices[0] if to is None and choices else next(
            (c for c in choices if to is not None and c[0] == to), None)
        if chosen is None:
            raise ValidationError({"to": ValidationError(
                _("Choose one of the next openings of the window, at most %(days)s days later "
                  "and before the end of life.") % {"days": POSTPONE_MAX_DAYS},
                code="invalid_choice")})
        operation = Operation.objects.select_for_update(no_key=True).get(pk=upgrade.operation_id)
        start, end = chosen
        old = operation.not_before
        operations.reschedule(
            operation, start, _("Automatic upgrade to %(v)s postponed to %(when)s by %(who)s.")
            % {"v": upgrade.to_version, "when": local_text(start, setting_of(cluster).window.zone),
               "who": actor.label}, actor_label=actor.label,
            params={**operation.params, "window_end": end.isoformat()})
        upgrade.window_start, upgrade.window_end = start, end
        upgrade.postponed_at, upgrade.postponed_by = timezone.now(), actor.label
        upgrade.save(update_fields=["window_start", "window_end", "postponed_at",
                                    "postponed_by"])
        record(actor, "cluster.upgrade.postponed", cluster, tenant=ctx.tenant,
               changes={"not_before": [old.isoformat() if old else None, start.isoformat()]})
        events.cluster_changed(cluster.pk)
    return upgrade


def do_upgrade_now(actor: Actor, ctx: TenantContext, name: str) -> Operation:
    """Run the scheduled automatic upgrade now, as the person's own upgrade (the same action
    and change plan); the scheduled one is dropped in the same transaction."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name)
        upgrade = scheduled_for(cluster)
        if upgrade is None:
            raise ValidationError(_("No automatic upgrade is scheduled for this cluster."),
                                  code="not_scheduled")
        operation = actions.do_upgrade_cluster(actor, ctx, name, upgrade.to_version)
        waiting = (Operation.objects.select_for_update(no_key=True)
                   .filter(pk=upgrade.operation_id, state=Operation.State.SCHEDULED).first())
        if waiting is not None:
            operations.unschedule(waiting, _("Run now by %(who)s.") % {"who": actor.label},
                                  actor_label=actor.label)
    return operation

