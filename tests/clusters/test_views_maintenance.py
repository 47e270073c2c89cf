"""The cluster page's maintenance panel: the announcement with "upgrade now" and "postpone
once", what happens next, the window form (errors beside fields), and the tenant's default
page; outsiders find nothing and viewers change nothing."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
import time_machine

from clusters import maintenance
from clusters.models import MaintenanceWindow, Operation, UpgradePolicy
from portal.models import AuditEntry
from tests.clusters.ui import by_testid, make_cluster, offline_platform, text_of, url

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_platform")]
__all__ = ["offline_platform"]

MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WINDOW = {"maintenance-weekdays": ["2"], "maintenance-start_time": "03:00",
          "maintenance-duration_minutes": "120", "maintenance-time_zone": "Europe/Zurich",
          "maintenance-upgrade_policy": "keep_current"}
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def cluster(tenant):
    return make_cluster(tenant, version="v1.33")


def scheduled(cluster):
    MaintenanceWindow.objects.create(tenant=cluster.tenant, cluster=cluster, weekdays=[2],
                                     start_time=time(3), duration_minutes=120,
                                     time_zone="Europe/Zurich",
                                     upgrade_policy=UpgradePolicy.KEEP_CURRENT)
    maintenance.PLANNER.plan(MONDAY)


def test_the_page_shows_the_window_and_that_nothing_is_planned(client_for, viewer, tenant,
                                                               cluster):
    page = client_for(viewer).get(url("detail", tenant, cluster_name="demo"))
    assert page.status_code == 200
    panel = text_of(page.content, "maintenance-panel")
    assert "What happens next" in panel and "Nothing automatic is planned." in panel
    assert "the platform's default" in panel and "Upgrade policy: Manual" in panel
    assert not by_testid(page, "maintenance-form")  # a viewer changes nothing


def test_the_announcement_says_when_and_what_rolls_with_upgrade_now_and_postpone(
        client_for, owner, tenant, cluster):
    with time_machine.travel(MONDAY, tick=False):
        scheduled(cluster)
        page = client_for(owner).get(url("detail", tenant, cluster_name="demo"))
    notice = " ".join(by_testid(page, "maintenance-notice"))
    assert "Automatic upgrade to v1.34 scheduled" in notice
    assert "starting 2026-12-16 03:00 (window until 2026-12-16 05:00, Europe/Zurich)" in notice
    assert "md0" in notice
    assert by_testid(page, "upgrade-now") and by_testid(page, "postpone")
    upcoming = " ".join(by_testid(page, "upcoming"))
    assert "2026-12-16 03:00 · Automatic upgrade to v1.34" in upcoming


def test_postpone_once_from_the_page(client_for, owner, tenant, cluster):
    with time_machine.travel(MONDAY, tick=False):
        scheduled(cluster)
        client = client_for(owner)
        answer = client.post(url("maintenance_postpone", tenant, cluster_name="demo"),
                             {"to": "2026-12-23T02:00:00+00:00"}, **HTMX)
        assert answer.status_code == 200
        assert "Upgrade postponed to 2026-12-23 03:00 (Europe/Zurich)." in " ".join(
            by_testid(answer, "maintenance-done"))
        assert "Postponed once already." in answer.content.decode()
        again = client.post(url("maintenance_postpone", tenant, cluster_name="demo"),
                            {"to": "not a date"}, **HTMX)
    assert again.status_code == 422
    op = cluster.operations.get(state=Operation.State.SCHEDULED)
    assert op.not_before == datetime(2026, 12, 23, 2, 0, tzinfo=UTC)


def test_upgrade_now_runs_the_persons_upgrade_and_drops_the_scheduled_one(
        client_for, owner, tenant, cluster):
    with time_machine.travel(MONDAY, tick=False):
        scheduled(cluster)
        answer = client_for(owner).post(url("maintenance_upgrade_now", tenant,
                                            cluster_name="demo"))
    assert answer.status_code == 302
    states = dict(cluster.operations.filter(kind="upgrade").values_list("state",
                                                                         "requested_by"))
    assert states == {"queued": owner.pk, "cancelled": None}
    cluster.refresh_from_db()
    assert cluster.version == "v1.34"


def test_the_window_form_saves_and_answers_with_the_panel(client_for, owner, tenant, cluster):
    answer = client_for(owner).post(url("maintenance", tenant, cluster_name="demo"), WINDOW,
                                    **HTMX)
    assert answer.status_code == 200
    assert "Maintenance window saved." in " ".join(by_testid(answer, "maintenance-done"))
    row = MaintenanceWindow.objects.get(cluster=cluster)
    assert (row.weekdays, row.start_time, row.upgrade_policy) == ([2], time(3),
                                                                   "keep_current")
    assert AuditEntry.objects.filter(verb="cluster.maintenance").count() == 1


@pytest.mark.parametrize(("field", "value"), [
    ("maintenance-duration_minutes", "30"),
    ("maintenance-duration_minutes", "99999999999999999999"),
    ("maintenance-time_zone", "Mars/Olympus"),
    ("maintenance-time_zone", "x" * 300),
    ("maintenance-start_time", "25:99"),
    ("maintenance-weekdays", "9"),
    ("maintenance-upgrade_policy", "sometimes"),
])
def test_bad_window_input_is_said_beside_its_field(client_for, owner, tenant, cluster, field,
                                                   value):
    answer = client_for(owner).post(url("maintenance", tenant, cluster_name="demo"),
                                    {**WINDOW, field: value}, **HTMX)
    assert answer.status_code == 422
    assert f'data-field="{field}"' in answer.content.decode()
    assert not MaintenanceWindow.objects.exists()


def test_outsiders_find_nothing_and_viewers_change_nothing(client_for, outsider, viewer,
                                                           tenant, cluster):
    for name in ("maintenance", "maintenance_postpone", "maintenance_upgrade_now"):
        target = url(name, tenant, cluster_name="demo")
        assert client_for(outsider).post(target, WINDOW).status_code == 404
        assert client_for(viewer).post(target, WINDOW).status_code == 403
    assert not MaintenanceWindow.objects.exists()


def test_the_tenant_default_page(client_for, owner, member, tenant, cluster):
    target = url("maintenance_default", tenant)
    page = client_for(member).get(target)
    assert page.status_code == 200 and not by_testid(page, "maintenance-form")
    assert client_for(member).post(target, WINDOW).status_code == 403
    bad = client_for(owner).post(target, {**WINDOW, "maintenance-duration_minutes": "5"})
    assert bad.status_code == 422
    assert client_for(owner).post(target, WINDOW).status_code == 302
    assert maintenance.tenant_default(tenant.pk).upgrade_policy == "keep_current"
    # The cluster that existed keeps the platform's window.
    assert maintenance.setting_of(cluster).policy == UpgradePolicy.MANUAL
