"""The maintenance planner with a frozen clock: windows in time zones and across DST changes,
freeze periods, the concurrency cap, postponing, the end-of-life policy, announcements exactly
once, and re-planning after a person's change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from clusters import lifecycle, maintenance, operations
from clusters.models import (
    AutomaticUpgrade,
    ClusterEvent,
    FreezePeriod,
    MaintenanceWindow,
    Offering,
    Operation,
    OutboxEntry,
    UpgradeControl,
    UpgradePolicy,
)
from clusters.web import queries
from notifications import emails
from notifications.models import Event
from portal.audit import Actor
from portal.models import AuditEntry
from portal.permissions import Role
from portal.tenancy import TenantContext
from tests.clusters.ui import make_cluster, offline_platform
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_platform")]
__all__ = ["offline_platform"]

MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)  # Monday 7 December 2026, 10:00 in Zurich
WEDNESDAY_3AM = maintenance.Window((2,), time(3, 0), 120, "Europe/Zurich")
# Wednesday 16 December 2026, 03:00 CET: the first opening at least 7 days after MONDAY.
FIRST = datetime(2026, 12, 16, 2, 0, tzinfo=UTC)
SECOND = FIRST + timedelta(days=7)


def at(moment: datetime):
    return time_machine.travel(moment, tick=False)


def give_window(cluster, window=WEDNESDAY_3AM, policy=UpgradePolicy.KEEP_CURRENT):
    return MaintenanceWindow.objects.create(
        tenant=cluster.tenant, cluster=cluster, weekdays=list(window.weekdays),
        start_time=window.start, duration_minutes=window.minutes, time_zone=window.zone,
        upgrade_policy=policy)


def plan(moment: datetime) -> int:
    with at(moment):
        return maintenance.PLANNER.plan(moment)


@pytest.fixture
def cluster(tenant, owner):
    cluster = make_cluster(tenant, version="v1.33")
    give_window(cluster)
    return cluster


def waiting(cluster) -> Operation | None:
    return cluster.operations.filter(state=Operation.State.SCHEDULED).first()


# --------------------------------------------------------------------------- windows


def test_a_window_opens_at_its_local_time_on_both_sides_of_the_spring_dst_change():
    sunday_3am = maintenance.Window((6,), time(3, 0), 60, "Europe/Zurich")
    starts = [s for s, _ in sunday_3am.occurrences(datetime(2026, 3, 21, tzinfo=UTC),
                                                   datetime(2026, 4, 6, tzinfo=UTC))]
    # 22 March: CET (UTC+1); 29 March is the change day (CEST, UTC+2 from 02:00); 5 April CEST.
    assert starts == [datetime(2026, 3, 22, 2, 0, tzinfo=UTC),
                      datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
                      datetime(2026, 4, 5, 1, 0, tzinfo=UTC)]


def test_a_window_on_the_autumn_change_day_opens_once_at_its_local_time():
    sunday_3am = maintenance.Window((6,), time(3, 0), 60, "Europe/Zurich")
    starts = [s for s, _ in sunday_3am.occurrences(datetime(2026, 10, 17, tzinfo=UTC),
                                                   datetime(2026, 10, 26, tzinfo=UTC))]
    # 18 October CEST (UTC+2); 25 October 03:00 is after the clocks went back (CET, UTC+1).
    assert starts == [datetime(2026, 10, 18, 1, 0, tzinfo=UTC),
                      datetime(2026, 10, 25, 2, 0, tzinfo=UTC)]


def test_a_start_time_the_spring_change_skips_moves_on_by_the_gap():
    sunday_0230 = maintenance.Window((6,), time(2, 30), 60, "Europe/Zurich")
    (start, end), = sunday_0230.occurrences(datetime(2026, 3, 28, tzinfo=UTC),
                                           datetime(2026, 3, 30, tzinfo=UTC))
    # 02:30 does not exist on 29 March in Zurich: the window opens at 03:30 CEST.
    assert start == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert end - start == timedelta(hours=1)


def test_an_ambiguous_start_on_the_autumn_change_day_is_its_first_occurrence():
    sunday_0230 = maintenance.Window((6,), time(2, 30), 60, "Europe/Zurich")
    (start, _end), = sunday_0230.occurrences(datetime(2026, 10, 24, tzinfo=UTC),
                                            datetime(2026, 10, 26, tzinfo=UTC))
    # 02:30 happens twice on 25 October in Zurich: the window opens at the first (CEST).
    assert start == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)


def test_windows_follow_their_own_time_zone():
    new_york = maintenance.Window((0, 4), time(22, 0), 90, "America/New_York")
    tokyo = maintenance.Window((0,), time(1, 0), 60, "Asia/Tokyo")
    after, until = datetime(2026, 12, 7, tzinfo=UTC), datetime(2026, 12, 13, tzinfo=UTC)
    # Monday and Friday 22:00 in New York (EST) are Tuesday and Saturday 03:00 UTC.
    assert [s for s, _ in new_york.occurrences(after, until)] == [
        datetime(2026, 12, 8, 3, 0, tzinfo=UTC), datetime(2026, 12, 12, 3, 0, tzinfo=UTC)]
    # Monday 01:00 in Tokyo is Sunday 16:00 UTC.
    assert [s for s, _ in tokyo.occurrences(datetime(2026, 12, 13, tzinfo=UTC),
                                            datetime(2026, 12, 15, tzinfo=UTC))] == [
        datetime(2026, 12, 13, 16, 0, tzinfo=UTC)]


def test_bad_windows_are_refused_field_by_field():
    with pytest.raises(ValidationError) as error:
        maintenance.check_window([7], None, 30, "Mars/Olympus")
    assert set(error.value.message_dict) == {"weekdays", "start_time", "duration_minutes",
                                             "time_zone"}
    with pytest.raises(ValidationError):
        maintenance.check_window([1, 1], time(3), 60, "UTC")  # a repeated weekday
    assert maintenance.check_window([4, 1], time(3, 15), 60, "UTC").weekdays == (1, 4)


# --------------------------------------------------------------------------- scheduling


def test_keep_current_schedules_one_minor_a_week_ahead_and_announces_it_once(cluster):
    assert plan(MONDAY) == 1
    assert plan(MONDAY) == 0  # the same minute again: nothing more
    assert plan(MONDAY + timedelta(hours=1)) == 0

    operation = waiting(cluster)
    assert operation.kind == Operation.Kind.UPGRADE and operation.not_before == FIRST
    assert operation.params["version"] == "v1.34"
    upgrade = AutomaticUpgrade.objects.get()
    assert (upgrade.from_version, upgrade.to_version) == ("v1.33", "v1.34")
    assert upgrade.window_end == FIRST + timedelta(hours=2)

    events = Event.objects.filter(type="maintenance.scheduled")
    assert events.count() == 1
    data = events.get().data
    assert data["to_version"] == "v1.34" and data["starts_at"].startswith("2026-12-16T02:00")
    assert "md0" in data["what_rolls"]
    entry = cluster.events.get(reason="operation.upgrade.scheduled")
    assert entry.actor_label == "system (window)"
    assert "2026-12-16 03:00 (Europe/Zurich)" in entry.message
    audit = AuditEntry.objects.get(verb="cluster.upgrade.scheduled")
    assert audit.actor_label == "system (window)" and audit.tenant_id == cluster.tenant_id


def test_a_waiting_upgrade_blocks_no_other_change(cluster):
    plan(MONDAY)
    operations.check_idle(cluster)  # no "another change is in progress"
    assert operations.active_operation(cluster) is None


def test_manual_clusters_and_the_newest_version_get_nothing(tenant):
    manual = make_cluster(tenant, "manual", version="v1.33")
    give_window(manual, policy=UpgradePolicy.MANUAL)
    newest = make_cluster(tenant, "newest", version="v1.35")
    give_window(newest)
    assert plan(MONDAY) == 0
    assert not Operation.objects.filter(state=Operation.State.SCHEDULED).exists()


def test_a_cluster_without_a_window_follows_its_tenant_then_the_platform(
        tenant, owner, settings):
    settings.MAINTENANCE_DEFAULT_WINDOW = "5 01:00 60 UTC"
    cluster = make_cluster(tenant, version="v1.33")
    assert maintenance.setting_of(cluster).source == "platform"
    assert maintenance.setting_of(cluster).policy == UpgradePolicy.MANUAL
    ctx = TenantContext(tenant, Role.OWNER, None)
    maintenance.do_set_tenant_default(Actor(user=owner), ctx, WEDNESDAY_3AM,
                                      UpgradePolicy.KEEP_CURRENT)
    # The default is for new clusters: the existing one keeps what it followed.
    assert maintenance.setting_of(cluster).policy == UpgradePolicy.MANUAL
    new = make_cluster(tenant, "new", version="v1.33")
    assert maintenance.setting_of(new) == maintenance.Setting(
        WEDNESDAY_3AM, UpgradePolicy.KEEP_CURRENT, "tenant")


# --------------------------------------------------------------------------- releasing


def test_the_upgrade_starts_in_its_window_and_not_before(cluster):
    plan(MONDAY)
    assert plan(FIRST - timedelta(minutes=1)) == 0
    assert waiting(cluster) is not None

    assert plan(FIRST + timedelta(minutes=1)) == 1
    operation = cluster.operations.get(kind=Operation.Kind.UPGRADE)
    assert operation.state == Operation.State.QUEUED
    assert operation.params["after"]["version"] == "v1.34"
    assert OutboxEntry.objects.filter(operation=operation, sent_at__isnull=True).exists()
    cluster.refresh_from_db()
    assert cluster.version == "v1.34" and cluster.phase == "updating"
    audit = AuditEntry.objects.get(verb="cluster.upgrade")
    assert audit.actor_label == "system (window)"
    assert cluster.events.filter(reason="operation.upgrade",
                                 actor_label="system (window)").exists()
    assert plan(FIRST + timedelta(minutes=2)) == 0  # started once


def test_a_busy_cluster_waits_within_its_window_then_moves_to_the_next(cluster):
    plan(MONDAY)
    busy = Operation.objects.create(tenant=cluster.tenant, cluster=cluster,
                                    kind=Operation.Kind.SCALE, state=Operation.State.RUNNING)
    assert plan(FIRST + timedelta(minutes=1)) == 0
    assert waiting(cluster).not_before == FIRST
    Operation.objects.filter(pk=busy.pk).update(state=Operation.State.SUCCEEDED)
    assert plan(FIRST + timedelta(hours=2)) == 0  # the window closed
    assert waiting(cluster).not_before == SECOND
    entry = cluster.events.get(reason="operation.rescheduled")
    assert "window closed" in entry.message and entry.actor_label == "system (window)"
    assert AuditEntry.objects.get(verb="cluster.upgrade.rescheduled").actor_label == (
        "system (window)")


def test_no_window_in_a_freeze_period_is_chosen(cluster):
    FreezePeriod.objects.create(starts_at=datetime(2026, 12, 15, tzinfo=UTC),
                                ends_at=datetime(2026, 12, 20, tzinfo=UTC), reason="year end")
    plan(MONDAY)
    assert waiting(cluster).not_before == SECOND


def test_a_freeze_set_after_scheduling_moves_the_upgrade_to_the_next_window(cluster):
    plan(MONDAY)
    FreezePeriod.objects.create(starts_at=FIRST - timedelta(hours=1),
                                ends_at=FIRST + timedelta(hours=5), reason="incident")
    assert plan(FIRST + timedelta(minutes=1)) == 0
    assert waiting(cluster).not_before == SECOND
    assert "incident" in cluster.events.get(reason="operation.rescheduled").message


def test_the_concurrency_cap_holds_platform_wide(tenant, other_tenant):
    UpgradeControl.objects.create(pk=1, max_concurrent_upgrades=1, end_of_life_lead_days=30,
                                  announce_days=7)
    first = make_cluster(tenant, "one", version="v1.33")
    second = make_cluster(other_tenant, "two", version="v1.33")
    give_window(first)
    give_window(second)
    assert plan(MONDAY) == 2
    assert plan(FIRST + timedelta(minutes=1)) == 1
    states = sorted(Operation.objects.filter(kind=Operation.Kind.UPGRADE)
                    .values_list("state", flat=True))
    assert states == ["queued", "scheduled"]
    assert plan(FIRST + timedelta(minutes=2)) == 0  # still one at a time
    Operation.objects.filter(state=Operation.State.QUEUED).update(
        state=Operation.State.SUCCEEDED)
    # The second starts now; the first, on v1.34, gets its next minor for a later window.
    assert plan(FIRST + timedelta(minutes=3)) == 2
    assert second.operations.get(kind=Operation.Kind.UPGRADE).state == "queued"
    assert waiting(first).params["version"] == "v1.35"
    assert waiting(first).not_before == SECOND + timedelta(days=7)  # a week of notice


def test_nothing_runs_while_staff_pause_automation(cluster, user):
    lifecycle.set_paused(Actor(user=user), True, "incident")
    with at(MONDAY):
        assert lifecycle.run(MONDAY) == {}
    assert waiting(cluster) is None


# --------------------------------------------------------------------------- postpone


def test_postpone_once_to_a_later_window_within_14_days(cluster, owner):
    plan(MONDAY)
    ctx = TenantContext(cluster.tenant, Role.OWNER, None)
    with at(MONDAY + timedelta(days=1)):
        maintenance.do_postpone_upgrade(Actor(user=owner), ctx, cluster.name)
    assert waiting(cluster).not_before == SECOND
    with at(MONDAY + timedelta(days=1)), pytest.raises(ValidationError) as error:
        maintenance.do_postpone_upgrade(Actor(user=owner), ctx, cluster.name)
    assert error.value.code == "postponed_once"
    assert plan(FIRST + timedelta(minutes=1)) == 0  # not in the first window any more
    assert plan(SECOND + timedelta(minutes=1)) == 1


def test_postpone_never_goes_past_14_days_nor_end_of_life(cluster, owner):
    plan(MONDAY)
    upgrade = AutomaticUpgrade.objects.get()
    choices = maintenance.postpone_choices(upgrade, WEDNESDAY_3AM)
    assert [s for s, _ in choices] == [SECOND, SECOND + timedelta(days=7)]
    ctx = TenantContext(cluster.tenant, Role.OWNER, None)
    with at(MONDAY), pytest.raises(ValidationError):
        maintenance.do_postpone_upgrade(Actor(user=owner), ctx, cluster.name,
                                        SECOND + timedelta(days=14))
    upgrade.end_of_life_on = date(2026, 12, 20)
    upgrade.save()
    assert maintenance.postpone_choices(upgrade, WEDNESDAY_3AM) == []
    with at(MONDAY), pytest.raises(ValidationError):
        maintenance.do_postpone_upgrade(Actor(user=owner), ctx, cluster.name)


# --------------------------------------------------------------------------- end of life


def test_before_end_of_life_waits_until_the_version_is_within_the_lead(tenant):
    cluster = make_cluster(tenant, version="v1.33")
    give_window(cluster, policy=UpgradePolicy.BEFORE_END_OF_LIFE)
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=date(2027, 2, 15))
    assert plan(MONDAY) == 0  # 70 days before its end of life
    january = datetime(2027, 1, 18, 9, 0, tzinfo=UTC)  # 28 days before
    assert plan(january) == 1
    upgrade = AutomaticUpgrade.objects.get()
    assert upgrade.to_version == "v1.34" and upgrade.end_of_life_on == date(2027, 2, 15)
    assert upgrade.window_start == datetime(2027, 1, 27, 2, 0, tzinfo=UTC)


def test_close_to_end_of_life_the_first_window_is_taken_without_the_week_of_notice(tenant):
    cluster = make_cluster(tenant, version="v1.33")
    give_window(cluster, policy=UpgradePolicy.BEFORE_END_OF_LIFE)
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=date(2026, 12, 12))
    assert plan(MONDAY) == 1
    assert waiting(cluster).not_before == datetime(2026, 12, 9, 2, 0, tzinfo=UTC)


# --------------------------------------------------------------------------- re-planning


def test_a_persons_upgrade_re_plans_the_waiting_one(cluster):
    plan(MONDAY)
    first = waiting(cluster)
    cluster.version = "v1.34"  # a person upgraded meanwhile
    cluster.save()
    assert plan(MONDAY + timedelta(hours=1)) == 1
    first.refresh_from_db()
    assert first.state == Operation.State.CANCELLED
    assert AuditEntry.objects.get(verb="cluster.upgrade.unscheduled").actor_label == (
        "system (window)")
    assert waiting(cluster).params["version"] == "v1.35"
    assert Event.objects.filter(type="maintenance.scheduled").count() == 2


def test_a_failed_automatic_upgrade_is_tried_again_in_a_later_window_not_in_a_loop(cluster):
    plan(MONDAY)
    plan(FIRST + timedelta(minutes=1))
    failed = cluster.operations.get(kind=Operation.Kind.UPGRADE)
    Operation.objects.filter(pk=failed.pk).update(
        state=Operation.State.FAILED, error_class=Operation.ErrorClass.PLATFORM_ERROR)
    cluster.refresh_from_db()
    assert cluster.version == "v1.34"  # the portal's record names the version it asked for

    assert plan(FIRST + timedelta(minutes=2)) == 1  # the same upgrade, for a later window
    assert plan(FIRST + timedelta(minutes=3)) == 0
    again = waiting(cluster)
    assert again.params["version"] == "v1.34" and again.params["again"] is True
    assert again.not_before == SECOND + timedelta(days=7)  # a week of notice again
    assert AutomaticUpgrade.objects.get(operation=again).from_version == "v1.33"

    assert plan(again.not_before + timedelta(minutes=1)) == 1
    again.refresh_from_db()
    assert again.state == Operation.State.QUEUED
    assert (again.params["before"]["version"], again.params["after"]["version"]) == (
        "v1.33", "v1.34")


def test_a_persons_retry_of_the_failed_upgrade_drops_the_automatic_one(cluster):
    plan(MONDAY)
    plan(FIRST + timedelta(minutes=1))
    failed = cluster.operations.get(kind=Operation.Kind.UPGRADE)
    Operation.objects.filter(pk=failed.pk).update(state=Operation.State.FAILED)
    plan(FIRST + timedelta(minutes=2))
    again = waiting(cluster)
    Operation.objects.create(tenant=cluster.tenant, cluster=cluster, created_at=FIRST
                             + timedelta(minutes=3), kind=Operation.Kind.UPGRADE,
                             state=Operation.State.SUCCEEDED)  # a person's retry went through
    plan(FIRST + timedelta(minutes=4))
    again.refresh_from_db()
    assert again.state == Operation.State.CANCELLED


def test_changing_the_window_drops_the_waiting_upgrade_and_plans_it_anew(cluster, owner):
    plan(MONDAY)
    ctx = TenantContext(cluster.tenant, Role.OWNER, None)
    friday = maintenance.Window((4,), time(22, 0), 60, "Europe/Zurich")
    with at(MONDAY):
        maintenance.do_set_maintenance(Actor(user=owner), ctx, cluster.name, friday,
                                       UpgradePolicy.KEEP_CURRENT)
    assert waiting(cluster) is None
    plan(MONDAY + timedelta(minutes=1))
    assert waiting(cluster).not_before == datetime(2026, 12, 18, 21, 0, tzinfo=UTC)
    assert AuditEntry.objects.filter(verb="cluster.maintenance").count() == 1


def test_upcoming_lists_waiting_and_to_be_announced_upgrades(cluster, tenant):
    other = make_cluster(tenant, "other", version="v1.34")
    give_window(other)
    plan(MONDAY)
    Operation.objects.filter(cluster=other).delete()
    AutomaticUpgrade.objects.filter(cluster=other).delete()
    found = maintenance.PLANNER.upcoming(None, MONDAY, MONDAY + timedelta(days=10))
    by_cluster = {item.cluster_id: item for item in found}
    assert by_cluster[cluster.pk].at == FIRST and "v1.34" in by_cluster[cluster.pk].summary
    assert by_cluster[other.pk].at == FIRST and "to be announced" in by_cluster[other.pk].summary
    assert maintenance.PLANNER.upcoming([cluster.pk], MONDAY, MONDAY + timedelta(days=2)) == []
    assert ClusterEvent.objects.filter(cluster=cluster).exists()


def test_a_waiting_upgrade_is_not_the_clusters_latest_change(cluster, owner):
    failed = Operation.objects.create(tenant=cluster.tenant, cluster=cluster,
                                      kind=Operation.Kind.SCALE, state=Operation.State.FAILED,
                                      created_at=MONDAY - timedelta(hours=1))
    plan(MONDAY)
    assert waiting(cluster) is not None
    operations.check_retry(failed, cluster)  # the failed change can still be retried
    assert queries.cluster_state(cluster).operation == failed
    assert queries.cluster_states_by_id([cluster.pk])[cluster.pk].operation == failed
    assert queries.cluster_rows_by_id([cluster.pk])[cluster.pk].operation.pk == failed.pk


def test_the_announcement_is_emailed_to_owners_and_admins_only(cluster, owner, tenant_admin,
                                                                member, mailoutbox):
    plan(MONDAY)
    event = Event.objects.get(type="maintenance.scheduled")
    emails.send_event_emails(event.pk)
    assert sorted(address for m in mailoutbox for address in m.to) == sorted(
        [owner.email, tenant_admin.email])
    body = mailoutbox[0].body
    assert "from v1.33 to v1.34" in body and "md0" in body and "postpone it once" in body
    emails.send_event_emails(event.pk)  # once
    assert len(mailoutbox) == 2


def test_a_platform_failure_of_an_automatic_upgrade_alerts_staff(
        cluster, mailoutbox, django_capture_on_commit_callbacks):
    UserFactory(email="ops@example.org", is_staff=True)
    plan(MONDAY)
    plan(FIRST + timedelta(minutes=1))
    started = cluster.operations.get(kind=Operation.Kind.UPGRADE)
    with django_capture_on_commit_callbacks(execute=True):
        operations.fail(started, Operation.ErrorClass.PLATFORM_ERROR, "Helm failed.")
    assert [m.to for m in mailoutbox] == [["ops@example.org"]]
    assert "Upgrade of acme/demo" in mailoutbox[0].subject


def test_a_pass_over_clusters_with_nothing_to_do_does_not_grow_with_the_fleet(
        tenant, django_assert_max_num_queries):
    for i in range(3):
        make_cluster(tenant, f"c{i}", version="v1.33")
    plan(MONDAY)  # warm the caches
    with django_assert_max_num_queries(50) as small:
        plan(MONDAY)
    for i in range(3, 30):
        make_cluster(tenant, f"c{i}", version="v1.33")
    with django_assert_max_num_queries(len(small.captured_queries)):
        plan(MONDAY)


def test_a_persons_change_while_it_waits_is_kept_by_the_upgrade(cluster):
    plan(MONDAY)
    cluster.node_groups.filter(name="md0").update(max_replicas=7)  # a person's scale went through
    plan(FIRST + timedelta(minutes=1))
    started = cluster.operations.get(kind=Operation.Kind.UPGRADE)
    after = started.params["after"]
    assert after["version"] == "v1.34"
    assert [g["max_replicas"] for g in after["node_groups"]] == [7]
    assert started.params["before"]["version"] == "v1.33"
