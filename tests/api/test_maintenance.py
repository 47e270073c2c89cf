"""Maintenance windows, upgrade policies, postponing and the lifecycle dry run over the API:
scoped like every cluster endpoint, bounded, and bad input answered with a 4xx."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest
import time_machine

from clusters import maintenance
from clusters.models import MaintenanceWindow
from portal.models import AuditEntry
from tests.api.factories import make_cluster
from tests.clusters.ui import offline_platform

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("offline_platform")]
__all__ = ["offline_platform"]

BASE = "/api/v1/tenants/acme/clusters/prod-eu/"
MONDAY = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WINDOW = {"weekdays": [2], "start_time": "03:00", "duration_minutes": 120,
          "time_zone": "Europe/Zurich", "upgrade_policy": "keep_current"}


@pytest.fixture
def old_cluster(tenant):
    return make_cluster(tenant, version="v1.33")


def test_the_window_is_read_with_where_it_comes_from(owner, viewer, api, old_cluster):
    body = api(viewer).get(BASE + "maintenance/").json()
    assert body["window_source"] == "platform" and body["upgrade_policy"] == "manual"
    assert body["scheduled_upgrade"] is None and body["next_window_starts_at"]


def test_setting_the_window_and_policy_then_the_upgrade_waits_for_it(owner, api, old_cluster):
    with time_machine.travel(MONDAY, tick=False):
        response = api(owner).put(BASE + "maintenance/", WINDOW, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["window_source"] == "cluster"
        maintenance.PLANNER.plan(MONDAY)
        body = api(owner).get(BASE + "maintenance/").json()
    upgrade = body["scheduled_upgrade"]
    assert upgrade["to_version"] == "v1.34"
    assert upgrade["starts_at"].startswith("2026-12-16T02:00")
    assert upgrade["postpone_to"][0].startswith("2026-12-23T02:00")
    assert AuditEntry.objects.filter(verb="cluster.maintenance", via="api").exists()

    with time_machine.travel(MONDAY, tick=False):
        upcoming = api(owner).get(BASE + "lifecycle/upcoming/?days=10").json()
        assert upcoming["paused"] is False
        assert [(i["kind"], i["reason"], i["at"][:16]) for i in upcoming["upcoming"]] == [
            ("upgrade", "window", "2026-12-16T02:00")]
        assert api(owner).get(BASE + "lifecycle/upcoming/?days=2").json()["upcoming"] == []

        postponed = api(owner).post(BASE + "maintenance/postpone/", {}, format="json")
        assert postponed.status_code == 200, postponed.content
        assert postponed.json()["scheduled_upgrade"]["starts_at"].startswith("2026-12-23")
        again = api(owner).post(BASE + "maintenance/postpone/", {}, format="json")
        assert again.status_code == 422
        assert "postponed once already" in again.json()["detail"]


@pytest.mark.parametrize("body", [
    {**WINDOW, "duration_minutes": 30},
    {**WINDOW, "duration_minutes": 10**9},
    {**WINDOW, "weekdays": []},
    {**WINDOW, "weekdays": [9]},
    {**WINDOW, "weekdays": [1, 1]},
    {**WINDOW, "time_zone": "Mars/Olympus"},
    {**WINDOW, "time_zone": "x" * 500},
    {**WINDOW, "start_time": "25:99"},
    {**WINDOW, "upgrade_policy": "sometimes"},
    {**WINDOW, "surprise": True},
    {"weekdays": "every day"},
])
def test_bad_windows_answer_4xx_never_500(owner, api, old_cluster, body):
    response = api(owner).put(BASE + "maintenance/", body, format="json")
    assert 400 <= response.status_code < 500, response.content
    assert not MaintenanceWindow.objects.exists()


@pytest.mark.parametrize("query", ["days=0", "days=32", "days=x", "days=99999999999999999"])
def test_a_bad_horizon_answers_400(owner, api, old_cluster, query):
    assert api(owner).get(BASE + f"lifecycle/upcoming/?{query}").status_code == 400


def test_another_tenants_member_finds_nothing(outsider, owner, api, old_cluster):
    for path in ("maintenance/", "lifecycle/upcoming/"):
        assert api(outsider).get(BASE + path).status_code == 404
    assert api(outsider).put(BASE + "maintenance/", WINDOW, format="json").status_code == 404
    assert api(outsider).post(BASE + "maintenance/postpone/", {},
                              format="json").status_code == 404
    assert not MaintenanceWindow.objects.exists()


def test_a_viewer_reads_but_does_not_set(viewer, api, old_cluster):
    assert api(viewer).put(BASE + "maintenance/", WINDOW, format="json").status_code == 403


def test_postponing_with_nothing_scheduled_is_refused_in_words(owner, api, old_cluster):
    response = api(owner).post(BASE + "maintenance/postpone/", {}, format="json")
    assert response.status_code == 422
    assert "No automatic upgrade is scheduled" in response.json()["detail"]


def test_the_tenant_default_is_for_owners_and_admins(owner, member, api, old_cluster):
    url = "/api/v1/tenants/acme/maintenance-default/"
    assert api(member).get(url).json()["upgrade_policy"] == "manual"
    assert api(member).put(url, WINDOW, format="json").status_code == 403
    response = api(owner).put(url, WINDOW, format="json")
    assert response.status_code == 200, response.content
    assert response.json() == WINDOW
    # The cluster that existed keeps the platform's window; a new one takes the default.
    assert api(owner).get(BASE + "maintenance/").json()["upgrade_policy"] == "manual"
    new = make_cluster(old_cluster.tenant, "new")
    assert maintenance.setting_of(new).window == maintenance.Window(
        (2,), time(3, 0), 120, "Europe/Zurich")


def test_the_endpoints_are_in_the_openapi_document(api, owner):
    document = api(owner).get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert document.status_code == 200
    paths = document.json()["paths"]
    assert "/api/v1/tenants/{tenant_slug}/clusters/{cluster_name}/lifecycle/upcoming/" in paths
    assert "/api/v1/tenants/{tenant_slug}/clusters/{cluster_name}/maintenance/" in paths
    assert "maintenance.scheduled" in document.json()["webhooks"]


def test_upgrade_now_answers_202_with_the_operation_and_drops_the_scheduled_one(owner, api,
                                                                                 old_cluster):
    with time_machine.travel(MONDAY, tick=False):
        api(owner).put(BASE + "maintenance/", WINDOW, format="json")
        maintenance.PLANNER.plan(MONDAY)
        response = api(owner).post(BASE + "maintenance/upgrade-now/", format="json")
        assert response.status_code == 202, response.content
        assert response.json()["kind"] == "upgrade" and response.json()["state"] == "queued"
        assert api(owner).get(BASE + "maintenance/").json()["scheduled_upgrade"] is None
        again = api(owner).post(BASE + "maintenance/upgrade-now/", format="json")
    assert again.status_code == 422
