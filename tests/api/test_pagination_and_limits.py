"""Cursor pages on every list; limits per token and per user with Retry-After."""

from __future__ import annotations

import base64

import pytest

from portal.models import ApiToken
from tests.api.factories import make_cluster, make_token

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tenants/acme/clusters/"


def test_a_cursor_walks_every_cluster_once_even_while_clusters_are_added(owner, api, tenant):
    for index in range(120):
        make_cluster(tenant, f"c{index:03d}", groups=0)
    client = api(owner)
    page = client.get(BASE).json()
    seen = [c["name"] for c in page["results"]]
    assert len(seen) == 50 and page["previous"] is None
    make_cluster(tenant, "a-first", groups=0)  # sorts before the cursor: not seen, not shifting
    while page["next"]:
        page = client.get(page["next"]).json()
        seen += [c["name"] for c in page["results"]]
    assert seen == [f"c{index:03d}" for index in range(120)]
    back = client.get(page["previous"]).json()
    assert [c["name"] for c in back["results"]] == [f"c{index:03d}" for index in range(50, 100)]


@pytest.mark.parametrize("cursor", ["garbage", base64.b64encode(b"p=\x00").decode(),
                                    base64.b64encode(b"o=99999999").decode(),
                                    base64.b64encode(b"o=-1").decode(),
                                    base64.b64encode(b"r=x").decode()])
def test_a_tampered_cursor_is_a_400(owner, api, tenant, cursor):
    response = api(owner).get(BASE, {"cursor": cursor})
    assert response.status_code == 400 and response.json()["code"] == "invalid_cursor"


def test_a_tampered_time_cursor_is_a_400(owner, api, cluster):
    cursor = base64.b64encode(b"p=yesterday").decode()
    response = api(owner).get("/api/v1/tenants/acme/operations/", {"cursor": cursor})
    assert response.status_code == 400


@pytest.mark.parametrize("size", ["0", "201", "x", "-3"])
def test_page_size_is_bounded(owner, api, tenant, size):
    assert api(owner).get(BASE, {"page_size": size}).status_code == 400


def test_catalogue_lists_use_the_same_pages(owner, api):
    client = api(owner)
    page = client.get("/api/v1/catalog/instance-types/", {"page_size": 5}).json()
    assert len(page["results"]) == 5 and page["next"]
    names = [t["name"] for t in page["results"]]
    while page["next"]:
        page = client.get(page["next"]).json()
        names += [t["name"] for t in page["results"]]
    assert len(names) == len(set(names)) > 20
    assert client.get("/api/v1/catalog/versions/", {"cursor": "!!"}).status_code == 400


def test_the_catalogue_lists_only_what_staff_offer(owner, api):
    from datetime import date

    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="s1.small", hidden=True)
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.31",
                            end_of_life_on=date(2026, 1, 31))
    client = api(owner)
    names = {t["name"] for t in client.get("/api/v1/catalog/instance-types/",
                                           {"page_size": 200}).json()["results"]}
    assert "s1.small" not in names and "s1.large" in names
    versions = {v["name"]: v for v in client.get("/api/v1/catalog/versions/").json()["results"]}
    assert versions["v1.31"]["end_of_life_on"] == "2026-01-31"
    assert versions["v1.34"]["end_of_life_on"] is None


def test_the_catalogue_describes_what_a_spec_can_use(owner, api):
    client = api(owner)
    types = {t["name"]: t for t in client.get("/api/v1/catalog/instance-types/",
                                              {"page_size": 200}).json()["results"]}
    assert types["u1.2xlarge"]["vcpu"] == 8 and types["u1.2xlarge"]["memory_gib"] == 32
    assert types["u1.2xlarge"]["gpu_capable"] is True
    versions = client.get("/api/v1/catalog/versions/").json()["results"]
    assert versions[0]["is_default"] is True and versions[0]["upgrade_to"] is None
    gpus = client.get("/api/v1/catalog/gpu-models/").json()["results"]
    assert {"nvidia.com/AD102GL_L40S", "nvidia.com/GH100_H100L_94GB"} <= {
        g["name"] for g in gpus}
    addons = {a["key"]: a for a in client.get("/api/v1/catalog/addons/").json()["results"]}
    assert addons["ingress_nginx"]["platform_key"] == "ingressNginx"
    assert addons["cilium"]["can_enable"] is False
    classes = client.get("/api/v1/catalog/storage-classes/").json()["results"]
    assert [c["name"] for c in classes if c["is_default"]] == ["replicated"]


@pytest.fixture
def low_limits(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        "api_token": "3/min", "api_user": "5/min", "api_anon": "2/min"}}


def test_a_token_over_its_limit_gets_429_with_retry_after(owner, api, low_limits):
    client = api(owner)
    assert [client.get("/api/v1/me/").status_code for _ in range(3)] == [200] * 3
    response = client.get("/api/v1/me/")
    assert response.status_code == 429
    assert response["Content-Type"] == "application/problem+json"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert response.json()["code"] == "throttled"


def test_a_users_tokens_share_the_users_limit(owner, api, low_limits):
    first, second = api(owner), api(owner)
    statuses = [first.get("/api/v1/me/").status_code for _ in range(3)]
    statuses += [second.get("/api/v1/me/").status_code for _ in range(3)]
    assert statuses == [200] * 5 + [429]


def test_one_users_limit_does_not_affect_another(owner, member, api, low_limits):
    client = api(owner)
    for _ in range(4):
        client.get("/api/v1/me/")
    assert api(member).get("/api/v1/me/").status_code == 200


def test_tenants_list_shows_role_and_permissions(owner, viewer, billing_user, api, tenant):
    listed = api(viewer).get("/api/v1/tenants/").json()["results"]
    assert listed[0]["slug"] == "acme" and listed[0]["role"] == "viewer"
    assert "clusters.view" in listed[0]["permissions"]
    assert "clusters.change" not in listed[0]["permissions"]
    billing = api(billing_user).get("/api/v1/tenants/acme/").json()
    assert billing["role"] == "billing" and "invoices.view" in billing["permissions"]
    assert "clusters.view" not in billing["permissions"]
    assert billing["quota"]["clusters"] >= 0
    assert ApiToken.objects.count() == 2


def test_a_token_of_one_user_cannot_be_used_to_read_another_users_me(owner, member):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(member)}")
    assert client.get("/api/v1/me/").json()["email"] == member.email
