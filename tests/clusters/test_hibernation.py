"""Hibernation against the simulated platform: hibernate → the nodes go to 0 → wake → each
group's exact min and max are back; changes while asleep apply at the wake; the schedule's
planner on a frozen clock; a failing wake is retried and staff alerted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core.exceptions import ValidationError

from billing.models import UsageSegment
from clusters import actions, hibernation, lifecycle
from clusters import hibernation_actions as hib
from clusters.models import (
    ClusterEvent,
    FreezePeriod,
    Hibernation,
    HibernationSchedule,
    NodeGroup,
    Operation,
)
from cozystack.simulator import Fault
from notifications import emails
from notifications.models import Delivery, Event, WebhookEndpoint
from portal.models import AuditEntry
from tests.clusters.conftest import NS, cluster_spec, group

pytestmark = pytest.mark.django_db

MONDAY_NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)  # 12:00 in Zurich


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


def sizes(cluster) -> dict[str, tuple[int, int, int]]:
    return {g.name: (g.min_replicas, g.max_replicas, g.observed_nodes)
            for g in NodeGroup.objects.filter(cluster=cluster, removed_at__isnull=True)}


def platform_limits(engine, name: str) -> tuple[str, str]:
    md = engine.platform.get_object("MachineDeployment", NS, f"kubernetes-demo-{name}")
    notes = md["metadata"]["annotations"]
    return (notes["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"],
            notes["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"])


def running(engine, spec=None):
    cluster = engine.create(spec or cluster_spec(groups=(
        group("md0", min_replicas=2, max_replicas=5),
        group("md1", instance_type="u1.xlarge", min_replicas=1, max_replicas=3, roles=()))))
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    return cluster


def settled(engine, cluster):
    """The operation ended, and the platform had time to add or remove the machines."""
    operation = engine.settle(cluster)
    for _step in range(6):
        engine.platform.advance(5.0)
        engine.observe()
    cluster.refresh_from_db()
    return operation


def test_hibernate_takes_the_nodes_to_zero_and_wake_restores_each_groups_exact_limits(engine):
    cluster = running(engine)
    assert sizes(cluster) == {"md0": (2, 5, 2), "md1": (1, 3, 1)}

    held = engine.act(hib.do_hibernate, "demo")
    operation = settled(engine, cluster)
    assert operation.kind == Operation.Kind.SCALE and operation.params["hibernation"] == \
        "hibernate"
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert sizes(cluster) == {"md0": (0, 0, 0), "md1": (0, 0, 0)}
    assert platform_limits(engine, "md0") == ("0", "0")
    assert cluster.platform_ready  # the control plane keeps running
    held.refresh_from_db()
    assert held.state == Hibernation.State.HIBERNATING
    assert [(g["name"], g["min_replicas"], g["max_replicas"]) for g in held.restore] == \
        [("md0", 2, 5), ("md1", 1, 3)]
    assert ClusterEvent.objects.filter(cluster=cluster, reason="hibernation.asleep").exists()

    engine.act(hib.do_wake, "demo")
    operation = settled(engine, cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert sizes(cluster) == {"md0": (2, 5, 2), "md1": (1, 3, 1)}
    assert platform_limits(engine, "md0") == ("2", "5")
    assert platform_limits(engine, "md1") == ("1", "3")
    held.refresh_from_db()
    assert held.state == Hibernation.State.WOKEN and held.ended_at and held.woken_at
    verbs = list(AuditEntry.objects.filter(object_id=str(cluster.pk))
                 .values_list("verb", flat=True))
    assert "cluster.hibernate" in verbs and "cluster.wake" in verbs


def test_a_scale_add_and_remove_while_asleep_change_what_waking_restores_not_the_live_spec(
        engine):
    cluster = running(engine)
    engine.act(hib.do_hibernate, "demo")
    settled(engine, cluster)

    with pytest.raises(hibernation.ChangeDeferred) as deferred:
        engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=3, max_replicas=6)
    assert "applies when it wakes" in str(deferred.value)
    with pytest.raises(hibernation.ChangeDeferred):
        engine.act(actions.do_add_node_group, "demo",
                   group("md2", min_replicas=1, max_replicas=2, roles=()))
    with pytest.raises(hibernation.ChangeDeferred):
        engine.act(actions.do_remove_node_group, "demo", "md1")
    # Nothing reached the platform: the live spec keeps every group at 0.
    assert not Operation.objects.filter(cluster=cluster, state__in=Operation.ACTIVE_STATES)
    assert sizes(cluster) == {"md0": (0, 0, 0), "md1": (0, 0, 0)}
    assert platform_limits(engine, "md0") == ("0", "0")
    # A change checked like one of the awake cluster: an impossible one is refused.
    with pytest.raises(ValidationError):
        engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=7, max_replicas=6)

    engine.act(hib.do_wake, "demo")
    operation = settled(engine, cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert sizes(cluster) == {"md0": (3, 6, 3), "md2": (1, 2, 1)}
    assert platform_limits(engine, "md0") == ("3", "6")
    assert ClusterEvent.objects.filter(cluster=cluster,
                                       reason="hibernation.restore_changed").count() == 3


def test_an_upgrade_while_asleep_applies_live_and_keeps_the_groups_at_zero(engine):
    cluster = running(engine, cluster_spec(version="v1.33"))
    engine.act(hib.do_hibernate, "demo")
    settled(engine, cluster)
    operation = engine.act(actions.do_upgrade_cluster, "demo", "v1.34")
    assert operation.kind == Operation.Kind.UPGRADE
    operation = settled(engine, cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert cluster.version == "v1.34"
    assert all(g.max_replicas == 0 for g in NodeGroup.objects.filter(cluster=cluster,
                                                                      removed_at__isnull=True))
    assert platform_limits(engine, "md0") == ("0", "0")


def test_hibernating_twice_or_waking_an_awake_cluster_is_refused(engine):
    running(engine)
    with pytest.raises(ValidationError) as refused:
        engine.act(hib.do_wake, "demo")
    assert refused.value.code == "not_hibernating"
    engine.act(hib.do_hibernate, "demo")
    with pytest.raises(ValidationError) as refused:
        engine.act(hib.do_hibernate, "demo")
    assert refused.value.code == "hibernating"
    assert Hibernation.objects.count() == 1


def plan(engine, now: datetime) -> int:
    """One pass of the hibernation planner, its on-commit effects (the outbox) run."""
    with engine.capture(execute=True):
        return hib.PLANNER.plan(now)


def set_nights(engine, cluster, preset="nights_weekends"):
    return engine.act(hib.do_set_schedule, "demo", time_zone="Europe/Zurich", ranges=None,
                      preset=preset)


def test_the_planner_hibernates_at_the_schedules_start_and_wakes_at_its_end_once(engine):
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        set_nights(engine, cluster)
        assert plan(engine, MONDAY_NOON) == 0  # awake hours

        evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)  # 20:00 in Zurich
        clock.move_to(evening - timedelta(minutes=1))
        assert plan(engine, evening - timedelta(minutes=1)) == 0
        clock.move_to(evening)
        with engine.capture(execute=True):
            assert lifecycle.run(evening)["hibernation"] == 1
        held = Hibernation.objects.get(cluster=cluster)
        assert held.reason == "schedule" and held.started_by == "system (schedule)"
        assert plan(engine, evening + timedelta(seconds=30)) == 0  # once per boundary
        operation = settled(engine, cluster)
        assert operation.requested_via == "system"
        assert sizes(cluster) == {"md0": (0, 0, 0), "md1": (0, 0, 0)}
        entry = AuditEntry.objects.get(verb="cluster.hibernate")
        assert entry.actor_label == "system (schedule)"
        assert ClusterEvent.objects.filter(cluster=cluster, reason="operation.scale",
                                           actor_label="system (schedule)").exists()

        morning = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)  # Tuesday 08:00 in Zurich
        upcoming = sorted(hib.PLANNER.upcoming([cluster.pk], evening,
                                               morning + timedelta(hours=13)),
                          key=lambda u: u.at)
        assert [(u.at, u.kind) for u in upcoming] == [(morning, "wake"),
                                                      (morning + timedelta(hours=12),
                                                       "hibernate")]
        assert upcoming[0].summary == "Wake: md0 2–5, md1 1–3" and \
            upcoming[0].reason == "schedule"
        clock.move_to(morning)
        assert plan(engine, morning) == 1
        assert plan(engine, morning) == 0
        settled(engine, cluster)
        assert sizes(cluster) == {"md0": (2, 5, 2), "md1": (1, 3, 1)}
        assert AuditEntry.objects.get(verb="cluster.wake").actor_label == "system (schedule)"


def test_the_planner_waits_while_an_operation_runs_and_acts_on_the_next_pass(engine):
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        set_nights(engine, cluster)
        engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=4)
        evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
        clock.move_to(evening)
        assert plan(engine, evening) == 0
        assert not Hibernation.objects.exists()
        settled(engine, cluster)
        assert plan(engine, evening + timedelta(minutes=1)) == 1
        held = Hibernation.objects.get(cluster=cluster)
        assert held.restore[0]["min_replicas"] == 1 and held.restore[0]["max_replicas"] == 4


def test_a_person_who_wakes_a_sleeping_cluster_keeps_it_awake_until_the_next_night(engine):
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        set_nights(engine, cluster)
        evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)
        clock.move_to(evening)
        plan(engine, evening)
        settled(engine, cluster)
        engine.act(hib.do_wake, "demo")
        settled(engine, cluster)
        later = evening + timedelta(hours=2)
        clock.move_to(later)
        assert plan(engine, later) == 0
        assert not Hibernation.objects.filter(state="hibernating").exists()
        next_evening = evening + timedelta(days=1)
        clock.move_to(next_evening)
        assert plan(engine, next_evening) == 1


def test_saving_a_schedule_inside_a_night_does_not_hibernate_at_once(engine):
    late = datetime(2026, 12, 7, 21, 0, tzinfo=UTC)  # 22:00 in Zurich
    with time_machine.travel(late, tick=False):
        cluster = running(engine)
        set_nights(engine, cluster)
        assert plan(engine, late) == 0
        row = HibernationSchedule.objects.get(cluster=cluster)
        assert row.handled_until == late


def test_a_failing_wake_is_retried_and_staff_are_alerted_after_the_retries(
        engine, mailoutbox, django_user_model):
    django_user_model.objects.create_user("ops", "ops@example.org", "x", is_staff=True)
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        engine.act(hib.do_hibernate, "demo")
        settled(engine, cluster)
        refuse = engine.platform.faults.add(Fault(path="kuberneteses/demo", method="PATCH",
                                                  status=422, message="webhook denied"))
        refuse_put = engine.platform.faults.add(Fault(path="kuberneteses/demo", method="PUT",
                                                      status=422, message="webhook denied"))
        engine.act(hib.do_wake, "demo")
        operation = engine.settle(cluster)
        assert operation.state == Operation.State.FAILED
        held = Hibernation.objects.get(cluster=cluster)
        assert held.state == Hibernation.State.WAKING and held.wake_attempts == 1
        assert held.next_wake_try_at == operation.finished_at + hib.WAKE_RETRY_DELAY
        assert plan(engine, MONDAY_NOON + timedelta(minutes=1)) == 0  # not yet due

        for attempt in (2, 3):
            now = held.next_wake_try_at
            clock.move_to(now)
            assert plan(engine, now) == 1
            with engine.capture(execute=True):  # the alert goes out after commit
                engine.settle(cluster)
            held.refresh_from_db()
            assert held.wake_attempts == attempt
        assert held.staff_alerted_at is not None
        alerts = [m for m in mailoutbox if m.to == ["ops@example.org"]
                  and "wake" in m.subject.lower()]
        assert len(alerts) == 1

        engine.platform.faults.remove(refuse)
        engine.platform.faults.remove(refuse_put)
        now = held.next_wake_try_at
        clock.move_to(now)
        assert plan(engine, now) == 1
        settled(engine, cluster)
        held.refresh_from_db()
        assert held.state == Hibernation.State.WOKEN
        assert sizes(cluster) == {"md0": (2, 5, 2), "md1": (1, 3, 1)}


def test_no_worker_usage_is_metered_while_hibernating_and_the_control_plane_stays_billed(
        engine):
    def later(clock, seconds=60.0):
        """The portal's clock (metering is per second) and the platform's move on."""
        for _step in range(6):
            clock.shift(timedelta(seconds=seconds / 6))
            engine.platform.advance(seconds / 12)
            engine.observe()

    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        later(clock)
        assert UsageSegment.objects.filter(cluster=cluster, end__isnull=True,
                                           sku__startswith="node.").exists()
        engine.act(hib.do_hibernate, "demo")
        engine.settle(cluster)
        later(clock)

        open_skus = set(UsageSegment.objects.filter(cluster=cluster, end__isnull=True)
                        .values_list("sku", flat=True))
        assert open_skus and all(sku.startswith("cp.") for sku in open_skus)
        asleep_from = max(UsageSegment.objects.filter(cluster=cluster, sku__startswith="node.")
                          .values_list("end", flat=True))
        later(clock, 600.0)
        # Nothing of the workers was metered after they went to 0; the control plane was.
        assert not UsageSegment.objects.filter(cluster=cluster, start__gte=asleep_from) \
            .exclude(sku__startswith="cp.").exists()
        assert set(UsageSegment.objects.filter(cluster=cluster, end__isnull=True)
                   .values_list("sku", flat=True)) == open_skus

        engine.act(hib.do_wake, "demo")
        engine.settle(cluster)
        later(clock)
        assert UsageSegment.objects.filter(cluster=cluster, end__isnull=True,
                                           sku__startswith="node.").exists()


def test_hibernated_and_woken_are_notification_events_with_email_and_webhook_payloads(
        engine, tenant):
    cluster = running(engine)
    endpoint = WebhookEndpoint.objects.create(
        tenant=tenant, url="https://hooks.example.org/portal", secret_sealed="x",
        event_types=["cluster.hibernated", "cluster.woken"])
    engine.act(hib.do_hibernate, "demo")
    settled(engine, cluster)
    [asleep] = Event.objects.filter(type="cluster.hibernated")
    assert asleep.data["cluster"]["name"] == "demo" and asleep.data["reason"] == "manual"
    assert asleep.data["node_groups"] == [
        {"name": "md0", "min_replicas": 2, "max_replicas": 5},
        {"name": "md1", "min_replicas": 1, "max_replicas": 3}]
    assert "hibernates" in emails.describe(asleep).subject
    assert Delivery.objects.filter(event=asleep, endpoint=endpoint).exists()

    engine.act(hib.do_wake, "demo")
    settled(engine, cluster)
    [awake] = Event.objects.filter(type="cluster.woken")
    assert awake.data["woken_at"] is not None
    assert "md0 2–5, md1 1–3" in " ".join(emails.describe(awake).lines)


def test_deleting_a_hibernating_cluster_ends_its_hibernation_and_its_savings(engine):
    cluster = running(engine)
    engine.act(hib.do_hibernate, "demo")
    settled(engine, cluster)
    engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    operation = engine.settle(cluster, seconds=60.0)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    held = Hibernation.objects.get(cluster=cluster)
    assert held.state == Hibernation.State.ENDED
    assert held.ended_at == operation.finished_at
    assert hib.PLANNER.upcoming([cluster.pk], held.ended_at,
                                held.ended_at + timedelta(days=7)) == []


def test_a_wake_waiting_for_its_retry_is_announced_and_shown_as_waking(engine):
    with time_machine.travel(MONDAY_NOON, tick=False):
        cluster = running(engine)
        engine.act(hib.do_hibernate, "demo")
        settled(engine, cluster)
        refuse = Fault(path="kuberneteses/demo", status=422, message="webhook denied")
        engine.platform.faults.add(refuse)
        engine.act(hib.do_wake, "demo")
        engine.settle(cluster)
        engine.platform.faults.remove(refuse)
        held = Hibernation.objects.get(cluster=cluster)
        retry_at = MONDAY_NOON + hib.WAKE_RETRY_DELAY
        assert held.next_wake_try_at == retry_at
        [entry] = hib.PLANNER.upcoming([cluster.pk], MONDAY_NOON,
                                       MONDAY_NOON + timedelta(hours=1))
        assert (entry.at, entry.kind, entry.summary) == (retry_at, "wake",
                                                         "Wake again (attempt 2)")
        badge = hibernation.badges([cluster.pk])[cluster.pk]
        assert badge.waking and badge.wakes_at == retry_at


def test_a_scale_while_the_wake_runs_waits_for_it(engine):
    cluster = running(engine)
    engine.act(hib.do_hibernate, "demo")
    settled(engine, cluster)
    engine.act(hib.do_wake, "demo")
    with pytest.raises(ValidationError) as refused:
        engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=3, max_replicas=6)
    assert refused.value.code == "busy"
    assert Hibernation.objects.get(cluster=cluster).restore[0]["max_replicas"] == 5


def test_a_freeze_holds_the_scheduled_sleep_until_it_ends_but_never_a_wake(engine):
    """Staff's freeze period: no automatic operation starts, so going to sleep on schedule
    waits for its end (and happens then if the night still runs); waking never waits."""
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)  # 20:00 in Zurich
    FreezePeriod.objects.create(starts_at=evening - timedelta(hours=1),
                                ends_at=evening + timedelta(hours=2), reason="release night")
    with time_machine.travel(MONDAY_NOON, tick=False) as clock:
        cluster = running(engine)
        set_nights(engine, cluster)
        clock.move_to(evening)
        assert plan(engine, evening) == 0
        assert not Hibernation.objects.exists()

        after = evening + timedelta(hours=2)
        clock.move_to(after)
        assert plan(engine, after) == 1  # the night still runs: it sleeps now
        settled(engine, cluster)
        assert sizes(cluster) == {"md0": (0, 0, 0), "md1": (0, 0, 0)}

    morning = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)  # Tuesday 08:00 in Zurich
    FreezePeriod.objects.create(starts_at=morning - timedelta(hours=1),
                                ends_at=morning + timedelta(hours=5), reason="freeze")
    with time_machine.travel(morning, tick=False):
        assert plan(engine, morning) == 1  # the wake goes ahead during the freeze
        settled(engine, cluster)
        assert sizes(cluster) == {"md0": (2, 5, 2), "md1": (1, 3, 1)}


def test_what_comes_next_says_a_freeze_holds_the_sleep_until_it_ends(engine):
    evening = datetime(2026, 12, 7, 19, 0, tzinfo=UTC)  # Monday 20:00 in Zurich
    FreezePeriod.objects.create(starts_at=evening - timedelta(hours=1),
                                ends_at=evening + timedelta(hours=2), reason="release night")
    FreezePeriod.objects.create(starts_at=evening + timedelta(days=1, hours=-1),
                                ends_at=evening + timedelta(days=2), reason="all day")
    with time_machine.travel(MONDAY_NOON, tick=False):
        cluster = running(engine)
        set_nights(engine, cluster)
        found = sorted(hib.PLANNER.upcoming([cluster.pk], MONDAY_NOON,
                                            MONDAY_NOON + timedelta(days=2)),
                       key=lambda u: u.at)

    morning = datetime(2026, 12, 8, 7, 0, tzinfo=UTC)
    # Monday's sleep waits for the freeze's end and its wake stays where the schedule puts it;
    # Tuesday's night passes frozen: no sleep, so nothing to wake on Wednesday morning.
    assert [(u.kind, u.at) for u in found] == [
        ("hibernate", evening + timedelta(hours=2)), ("wake", morning)]
