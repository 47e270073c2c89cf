"""The lifecycle planner's core: planners run once a pass, one failing never stops the others,
staff pause them all with one switch (audited), and their upcoming actions come in time
order."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clusters import lifecycle
from portal.audit import Actor
from portal.models import AuditEntry

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


class Recording:
    def __init__(self, name: str, *, fails: bool = False, at: list[int] | None = None) -> None:
        self.name, self.fails, self.at = name, fails, at or []
        self.calls: list[datetime] = []

    def plan(self, now: datetime) -> int:
        self.calls.append(now)
        if self.fails:
            raise RuntimeError("broken planner")
        return 2

    def upcoming(self, cluster_ids, now, until):
        return [lifecycle.Upcoming(cluster_id=1, tenant_id=1, at=now + timedelta(hours=h),
                                   kind=self.name, summary=self.name, reason="test")
                for h in self.at if now + timedelta(hours=h) <= until]


@pytest.fixture
def planners(monkeypatch):
    registered: list = []
    monkeypatch.setattr(lifecycle, "_planners", registered)
    return registered


def test_every_planner_runs_and_one_failing_never_stops_the_others(planners):
    broken, working = Recording("broken", fails=True), Recording("working")
    lifecycle.register(broken)
    lifecycle.register(working)
    lifecycle.register(Recording("working"))  # a second registration of a name is ignored

    assert lifecycle.run(NOW) == {"broken": 0, "working": 2}
    assert broken.calls == [NOW] and working.calls == [NOW]
    assert len(lifecycle.planners()) == 2


def test_staff_pause_every_planner_with_one_audited_switch(planners, user):
    staff_user = user
    working = Recording("working")
    lifecycle.register(working)
    lifecycle.set_paused(Actor(user=staff_user), True, "incident 42")

    assert lifecycle.paused()
    assert lifecycle.run(NOW) == {} and working.calls == []
    entry = AuditEntry.objects.get(verb="automation.paused")
    assert entry.actor_label == staff_user.email and entry.changes["reason"][1] == "incident 42"

    lifecycle.set_paused(Actor(user=staff_user), False)
    assert lifecycle.run(NOW) == {"working": 2}
    assert AuditEntry.objects.filter(verb="automation.resumed").count() == 1


def test_upcoming_actions_come_in_time_order_within_the_horizon(planners):
    lifecycle.register(Recording("wake", at=[5, 30]))
    lifecycle.register(Recording("upgrade", at=[2]))

    found = lifecycle.upcoming(None, NOW, NOW + timedelta(hours=24))

    assert [(item.kind, item.at - NOW) for item in found] == [
        ("upgrade", timedelta(hours=2)), ("wake", timedelta(hours=5))]


def test_the_system_names_why_it_acted():
    assert Actor.system().label == "system"
    assert Actor.system("expiry").label == "system (expiry)"
