"""The expiry planner on a frozen clock: reminders 24 hours and 1 hour before, each exactly
once; the deletion at the expiry (not a minute before), through the normal delete action as
"system (expiry)"; a cluster with a change in flight waits; what comes next."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine

from clusters import expiry, lifecycle
from clusters.models import (
    Cluster,
    ClusterEvent,
    ClusterExpiry,
    ExpiryReminder,
    FreezePeriod,
    Operation,
)
from notifications.models import Event
from portal.audit import Actor
from portal.models import AuditEntry
from tests.clusters.ui import make_cluster, make_operation

pytestmark = pytest.mark.django_db

SET = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EXPIRES = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


@pytest.fixture
def expiring(platform, tenant):
    """A running cluster whose expiry was set two days ahead."""
    cluster = make_cluster(tenant, "dev")
    ClusterExpiry.objects.create(cluster=cluster, expires_at=EXPIRES, set_at=SET,
                                 set_by="owner@example.com")
    return cluster


def plan_at(at: datetime) -> int:
    with time_machine.travel(at, tick=False):
        return expiry.PLANNER.plan(at)


def reminders(cluster: Cluster) -> list[int]:
    return list(ExpiryReminder.objects.filter(cluster=cluster).order_by("sent_at")
                .values_list("lead_hours", flat=True))


def test_the_planner_is_registered_with_the_lifecycle_core():
    assert "expiry" in [p.name for p in lifecycle.planners()]


def test_reminders_go_24_hours_then_1_hour_before_each_exactly_once(expiring):
    assert plan_at(EXPIRES - timedelta(hours=24, minutes=1)) == 0
    assert reminders(expiring) == []

    assert plan_at(EXPIRES - timedelta(hours=24)) == 1
    assert plan_at(EXPIRES - timedelta(hours=24)) == 0  # the same minute again
    assert plan_at(EXPIRES - timedelta(hours=23, minutes=59)) == 0
    assert plan_at(EXPIRES - timedelta(hours=2)) == 0
    assert reminders(expiring) == [24]

    assert plan_at(EXPIRES - timedelta(hours=1)) == 1
    assert plan_at(EXPIRES - timedelta(minutes=59)) == 0
    assert reminders(expiring) == [24, 1]

    events = Event.objects.filter(type="cluster.expiring").order_by("occurred_at")
    assert [e.data["lead_hours"] for e in events] == [24, 1]
    assert events[0].data["cluster"]["name"] == "dev"
    assert events[0].data["expires_at"].startswith("2026-12-03T09:00:00")
    timeline = ClusterEvent.objects.filter(cluster=expiring, reason="cluster.expiry.reminder")
    assert timeline.count() == 2
    assert {e.actor_label for e in timeline} == {"system (expiry)"}
    assert AuditEntry.objects.filter(verb="cluster.expiry.reminder").count() == 2


def test_a_planner_that_was_stopped_sends_only_the_shortest_reminder_due(expiring):
    assert plan_at(EXPIRES - timedelta(minutes=30)) == 1
    assert reminders(expiring) == [1]
    assert plan_at(EXPIRES - timedelta(minutes=20)) == 0


def test_an_expiry_set_shortly_before_gets_no_reminder_for_what_it_already_knew(platform,
                                                                               tenant):
    cluster = make_cluster(tenant, "short")
    ClusterExpiry.objects.create(cluster=cluster, expires_at=EXPIRES,
                                 set_at=EXPIRES - timedelta(hours=5))
    assert plan_at(EXPIRES - timedelta(hours=4)) == 0
    assert plan_at(EXPIRES - timedelta(hours=1)) == 1
    assert reminders(cluster) == [1]


def test_an_extended_expiry_is_reminded_again_for_its_new_time(expiring):
    plan_at(EXPIRES - timedelta(hours=24))
    later = EXPIRES + timedelta(days=2)
    ClusterExpiry.objects.filter(pk=expiring.pk).update(expires_at=later,
                                                        set_at=EXPIRES - timedelta(hours=20))
    assert plan_at(EXPIRES) == 0  # the old time passes: nothing happens
    assert Cluster.objects.get(pk=expiring.pk).deleted_at is None
    assert plan_at(later - timedelta(hours=24)) == 1
    assert reminders(expiring) == [24, 24]


def test_at_expiry_the_cluster_is_deleted_through_the_normal_delete_as_the_system(expiring):
    assert plan_at(EXPIRES - timedelta(minutes=1)) == 1  # the 1-hour reminder
    assert not Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).exists()

    assert plan_at(EXPIRES) == 1
    assert plan_at(EXPIRES + timedelta(seconds=30)) == 0  # started once

    operation = Operation.objects.get(cluster=expiring, kind=Operation.Kind.DELETE)
    assert operation.state == Operation.State.QUEUED and operation.requested_by is None
    assert operation.requested_via == "system"
    cluster = Cluster.objects.get(pk=expiring.pk)
    assert cluster.phase == Cluster.Phase.DELETING
    row = ClusterExpiry.objects.get(pk=expiring.pk)
    assert row.expired_at == EXPIRES and row.operation_id == operation.pk
    audit = AuditEntry.objects.get(verb="cluster.delete")
    assert audit.actor_label == "system (expiry)" and audit.actor is None
    reasons = dict(ClusterEvent.objects.filter(cluster=expiring)
                   .values_list("reason", "actor_label"))
    assert reasons["operation.delete"] == "system (expiry)"
    assert reasons["cluster.expiry.expired"] == "system (expiry)"


def test_a_cluster_with_a_change_in_flight_waits_for_the_next_pass(expiring):
    running = make_operation(expiring, Operation.Kind.SCALE, state=Operation.State.RUNNING)
    assert plan_at(EXPIRES + timedelta(minutes=1)) == 0
    assert not Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).exists()

    Operation.objects.filter(pk=running.pk).update(state=Operation.State.SUCCEEDED)
    assert plan_at(EXPIRES + timedelta(minutes=2)) == 1
    assert Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).count() == 1


def test_paused_automation_deletes_nothing(expiring, user):
    lifecycle.set_paused(Actor(user=user), True, "incident")
    with time_machine.travel(EXPIRES + timedelta(minutes=1), tick=False):
        lifecycle.run()
    assert not Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).exists()


def test_upcoming_lists_the_reminders_and_the_deletion_in_time_order(expiring):
    now = EXPIRES - timedelta(hours=30)
    found = expiry.PLANNER.upcoming([expiring.pk], now, now + timedelta(days=7))
    assert [(u.kind, u.at) for u in found] == [
        ("reminder", EXPIRES - timedelta(hours=24)), ("reminder", EXPIRES - timedelta(hours=1)),
        ("expire", EXPIRES)]
    assert {u.reason for u in found} == {"expiry"}

    plan_at(EXPIRES - timedelta(hours=24))
    later = expiry.PLANNER.upcoming(None, EXPIRES - timedelta(hours=20), EXPIRES)
    assert [u.kind for u in later if u.cluster_id == expiring.pk] == ["reminder", "expire"]
    assert expiry.PLANNER.upcoming(None, now, now + timedelta(hours=1)) == []


def test_during_a_freeze_the_deletion_waits_for_its_end_and_says_when(expiring):
    """No automatic operation starts during staff's freeze: an expired cluster is deleted
    when the freeze ends, and what comes next says so."""
    ends = EXPIRES + timedelta(hours=6)
    FreezePeriod.objects.create(starts_at=EXPIRES - timedelta(days=1), ends_at=ends,
                                reason="year end")
    found = expiry.PLANNER.upcoming([expiring.pk], EXPIRES - timedelta(hours=2),
                                    EXPIRES + timedelta(days=1))
    assert [(u.kind, u.at) for u in found if u.kind == "expire"] == [("expire", ends)]

    assert plan_at(EXPIRES - timedelta(hours=1)) == 1  # reminders are not operations
    assert plan_at(EXPIRES) == 0
    assert plan_at(ends - timedelta(minutes=1)) == 0
    assert not Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).exists()

    assert plan_at(ends) == 1
    assert Operation.objects.filter(cluster=expiring, kind=Operation.Kind.DELETE).count() == 1
