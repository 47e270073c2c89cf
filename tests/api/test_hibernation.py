"""Hibernation over the API: state and schedule, hibernate now and wake now, a node-group
change while asleep answers 200 with what waking restores; outsiders get 404, bad input a
structured 4xx; the endpoints are in the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine

from clusters.models import Hibernation, HibernationSchedule, NodeGroup, Operation
from tests.api.factories import make_cluster, make_operation
from tests.clusters.conftest import gateway, platform

__all__ = ["gateway", "platform"]  # the simulated platform, wired as the portal's

pytestmark = pytest.mark.django_db
BASE = "/api/v1/tenants/acme/clusters/prod-eu/"
MONDAY_NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


@pytest.fixture
def cluster(tenant, platform):
    cluster = make_cluster(tenant)
    make_operation(cluster)
    return cluster


def test_hibernate_and_wake_answer_202_with_the_operation(owner, api, cluster):
    client = api(owner)
    assert client.get(f"{BASE}hibernation/").json()["state"] == "awake"
    response = client.post(f"{BASE}hibernate/")
    assert response.status_code == 202, response.json()
    assert response.json()["kind"] == "scale"
    assert NodeGroup.objects.get(cluster=cluster).max_replicas == 0
    body = client.get(f"{BASE}hibernation/").json()
    assert body["state"] == "hibernating" and body["since"]
    assert body["restore"] == [{"name": "md0", "min_replicas": 1, "max_replicas": 3}]
    assert body["saved_this_month"] == "0.00" and body["currency"] == "CHF"

    again = client.post(f"{BASE}hibernate/")
    assert again.status_code == 409 and again.json()["code"] == "hibernating"

    Operation.objects.filter(cluster=cluster, state__in=Operation.ACTIVE_STATES).update(
        state=Operation.State.SUCCEEDED)
    woken = client.post(f"{BASE}wake/")
    assert woken.status_code == 202, woken.json()
    assert NodeGroup.objects.get(cluster=cluster).max_replicas == 3
    assert Hibernation.objects.get(cluster=cluster).state == Hibernation.State.WAKING


def test_a_scale_while_asleep_answers_200_with_what_waking_restores(owner, api, cluster):
    client = api(owner)
    client.post(f"{BASE}hibernate/")
    Operation.objects.filter(cluster=cluster, state__in=Operation.ACTIVE_STATES).update(
        state=Operation.State.SUCCEEDED)
    response = client.patch(f"{BASE}node-groups/md0/", {"min_replicas": 2, "max_replicas": 5},
                            format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["state"] == "hibernating"
    assert body["restore"] == [{"name": "md0", "min_replicas": 2, "max_replicas": 5}]
    assert "applies when it wakes" in body["detail"]
    assert NodeGroup.objects.get(cluster=cluster).max_replicas == 0


def test_the_schedule_is_set_with_a_preset_and_shows_its_next_actions(owner, api, cluster):
    with time_machine.travel(MONDAY_NOON, tick=False):
        response = api(owner).put(f"{BASE}hibernation/", {
            "time_zone": "Europe/Zurich", "preset": "nights_weekends"}, format="json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["schedule"]["preset"] == "nights_weekends"
    assert len(body["schedule"]["ranges"]) == 7
    assert body["upcoming"][0] == {"at": "2026-12-07T19:00:00Z", "kind": "hibernate",
                                   "summary": "Hibernate: every node group to 0 nodes"}
    assert body["upcoming"][1]["at"] == "2026-12-08T07:00:00Z"


@pytest.mark.parametrize("body", [
    {"time_zone": "Mars/Olympus", "preset": "nights"},
    {"time_zone": "x" * 65, "preset": "nights"},
    {"time_zone": "UTC", "preset": "always"},
    {"time_zone": "UTC", "ranges": [{"day": 7, "start": "20:00", "end": "08:00"}]},
    {"time_zone": "UTC", "ranges": [{"day": 1, "start": "25:00", "end": "08:00"}]},
    {"time_zone": "UTC", "ranges": [{"day": 1, "start": "20:00", "end": "08:00"}] * 15},
    {"time_zone": "UTC", "ranges": "nights"},
    {"ranges": []},
])
def test_a_bad_schedule_is_refused_with_a_structured_4xx(owner, api, cluster, body):
    response = api(owner).put(f"{BASE}hibernation/", body, format="json")
    assert 400 <= response.status_code < 500
    assert response.json()["errors"]
    assert not HibernationSchedule.objects.exists()


def test_another_tenants_member_gets_404_and_a_viewer_may_not_change(outsider, viewer, api,
                                                                     cluster):
    for method, path in (("get", "hibernation/"), ("put", "hibernation/"),
                         ("post", "hibernate/"), ("post", "wake/")):
        response = getattr(api(outsider), method)(f"{BASE}{path}", {}, format="json")
        assert response.status_code == 404, (method, path)
    assert api(viewer).post(f"{BASE}hibernate/").status_code == 403
    assert api(viewer).get(f"{BASE}hibernation/").status_code == 200
    assert not Hibernation.objects.exists()


def test_the_endpoints_and_webhooks_are_in_the_openapi_document(client):
    document = client.get("/api/schema/",
                          HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    paths = document["paths"]
    base = "/api/v1/tenants/{tenant_slug}/clusters/{cluster_name}/"
    assert {"get", "put"} <= set(paths[f"{base}hibernation/"])
    assert "post" in paths[f"{base}hibernate/"] and "post" in paths[f"{base}wake/"]
    assert "200" in paths[f"{base}node-groups/{{group_name}}/"]["patch"]["responses"]
    assert {"cluster.hibernated", "cluster.woken"} <= set(document["webhooks"])


def test_waking_an_awake_cluster_and_replacing_a_sleeping_ones_groups_are_conflicts(
        owner, api, cluster):
    client = api(owner)
    response = client.post(f"{BASE}wake/")
    assert response.status_code == 409 and response.json()["code"] == "not_hibernating"
    client.post(f"{BASE}hibernate/")
    Operation.objects.filter(cluster=cluster, state__in=Operation.ACTIVE_STATES).update(
        state=Operation.State.SUCCEEDED)
    whole = client.get(BASE).json()
    body = {"version": whole["version"], "node_groups": [
        {"name": "md0", "instance_type": "s1.large", "min_replicas": 2, "max_replicas": 4,
         "roles": ["ingress-nginx"]}]}
    response = client.put(BASE, body, format="json")
    assert response.status_code == 409, response.json()
    assert response.json()["code"] == "hibernating"
    assert NodeGroup.objects.get(cluster=cluster).max_replicas == 0
