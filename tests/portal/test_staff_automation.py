"""The staff console's automation page: upcoming automatic operations platform-wide (24 hours
or 7 days, grouped by window) and the one switch that pauses all automation."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
import time_machine
from django.urls import reverse

from clusters import lifecycle, maintenance
from clusters.models import FreezePeriod, MaintenanceWindow, UpgradePolicy
from portal.models import AuditEntry
from tests.clusters.ui import make_cluster, offline_platform
from tests.portal.pages import by_testid
from tests.staffing import REFUSED

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_platform")]
__all__ = ["offline_platform"]

PAGE = reverse("staff_automation")
PAUSE = reverse("staff_automation_pause")
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def with_window(cluster):
    MaintenanceWindow.objects.create(tenant=cluster.tenant, cluster=cluster, weekdays=[2],
                                     start_time=time(3), duration_minutes=120,
                                     time_zone="Europe/Zurich",
                                     upgrade_policy=UpgradePolicy.KEEP_CURRENT)


@REFUSED
def test_the_page_and_the_switch_are_refused_to_all_but_staff(client_for, refused):
    assert client_for(refused).get(PAGE).status_code == 403
    assert client_for(refused).post(PAUSE, {"paused": "true"}).status_code == 403
    assert not lifecycle.paused()


def test_upcoming_upgrades_are_grouped_by_window(client_for, staff_with_mfa, tenant,
                                                 other_tenant):
    for cluster in (make_cluster(tenant, "a", version="v1.33"),
                    make_cluster(other_tenant, "b", version="v1.33")):
        with_window(cluster)
    with time_machine.travel(MONDAY, tick=False):
        maintenance.PLANNER.plan(MONDAY)  # both for Wednesday 16 December, 03:00 in Zurich
    with time_machine.travel(datetime(2026, 12, 10, 9, 0, tzinfo=UTC), tick=False):
        day = client_for(staff_with_mfa).get(PAGE)
        week = client_for(staff_with_mfa).get(PAGE + "?within=7d")
        fortnight = client_for(staff_with_mfa).get(PAGE + "?within=14d")  # falls back to 24h
    assert day.status_code == 200
    assert by_testid(day, "automation-window") == []
    (group,) = by_testid(week, "automation-window")
    assert "upgrade" in group and "window" in group
    assert "acme/a: Automatic upgrade to v1.34" in group
    assert "globex/b: Automatic upgrade to v1.34" in group
    assert fortnight.status_code == 200 and by_testid(fortnight, "automation-window") == []


def test_one_switch_pauses_and_resumes_all_automation_audited(client_for, staff_with_mfa):
    client = client_for(staff_with_mfa)
    assert client.post(PAUSE, {"paused": "true", "reason": "incident 7"}).status_code == 302
    assert lifecycle.paused()
    assert "incident 7" in " ".join(by_testid(client.get(PAGE), "automation-switch"))
    assert client.post(PAUSE, {"paused": "false", "reason": "x" * 5000}).status_code == 302
    assert not lifecycle.paused()
    verbs = list(AuditEntry.objects.order_by("at").values_list("verb", flat=True))
    assert verbs[-2:] == ["automation.paused", "automation.resumed"]


def test_staff_set_freeze_periods_and_bounded_limits_in_the_admin(client_for, staff_with_mfa):
    client = client_for(staff_with_mfa)
    assert client.get(reverse("admin:clusters_freezeperiod_changelist")).status_code == 200
    added = client.post(reverse("admin:clusters_freezeperiod_add"), {
        "starts_at_0": "2026-12-20", "starts_at_1": "00:00", "ends_at_0": "2027-01-05",
        "ends_at_1": "00:00", "reason": "year end"})
    assert added.status_code == 302, added.content[:2000]
    freeze = FreezePeriod.objects.get()
    assert freeze.reason == "year end" and freeze.created_by == staff_with_mfa.email
    backwards = client.post(reverse("admin:clusters_freezeperiod_add"), {
        "starts_at_0": "2027-01-05", "starts_at_1": "00:00", "ends_at_0": "2026-12-20",
        "ends_at_1": "00:00", "reason": "backwards"})
    assert backwards.status_code == 200 and FreezePeriod.objects.count() == 1

    too_many = client.post(reverse("admin:clusters_upgradecontrol_add"), {
        "max_concurrent_upgrades": "100000", "end_of_life_lead_days": "30",
        "announce_days": "7"})
    assert too_many.status_code == 200 and maintenance.limits().max_concurrent == 10
    saved = client.post(reverse("admin:clusters_upgradecontrol_add"), {
        "max_concurrent_upgrades": "3", "end_of_life_lead_days": "14", "announce_days": "2"})
    assert saved.status_code == 302
    assert maintenance.limits() == maintenance.Limits(3, 14, 2)
    assert AuditEntry.objects.filter(object_type="upgradecontrol").exists()
    assert AuditEntry.objects.filter(object_type="freezeperiod").exists()
