"""Tokens: bearer only, hashed, expiring, revocable, scoped (read / read-write, one tenant)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from portal.models import ApiToken, AuditEntry
from tests.api.factories import make_cluster, make_token

pytestmark = pytest.mark.django_db

CLUSTERS = "/api/v1/tenants/acme/clusters/"
NEW_CLUSTER = {"name": "ci", "node_groups": [
    {"name": "md0", "instance_type": "s1.large", "min_replicas": 1, "max_replicas": 2}]}


def _problem(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    assert body["type"].startswith("urn:kube-portal:problem:")
    if code:
        assert body["code"] == code
    return body


def test_a_request_without_credentials_gets_401_with_a_bearer_challenge(tenant):
    response = Client().get("/api/v1/tenants/")
    _problem(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize("header", ["Bearer kp_nope", "Bearer nope", "Bearer", "Bearer a b",
                                    "Bearer kp_" + "x" * 300])
def test_a_bad_token_is_refused_with_401(owner, header):
    response = Client().get("/api/v1/tenants/", HTTP_AUTHORIZATION=header)
    _problem(response, 401, "authentication_failed")


def test_an_expired_token_is_refused_and_says_so(owner, api):
    client = api(owner, expires_in=timedelta(seconds=-1))
    body = _problem(client.get("/api/v1/tenants/"), 401)
    assert "expired" in body["detail"]


def test_a_revoked_token_is_refused(owner, api):
    _problem(api(owner, revoked=True).get("/api/v1/tenants/"), 401)


def test_a_token_of_a_disabled_account_is_refused(owner, api):
    client = api(owner)
    owner.is_active = False
    owner.save()
    _problem(client.get("/api/v1/tenants/"), 401)


def test_a_token_in_the_query_string_is_ignored(owner):
    secret = make_token(owner)
    _problem(Client().get(f"/api/v1/tenants/?token={secret}&access_token={secret}"), 401)


def test_only_the_hash_of_a_token_is_stored_and_its_last_use_is_recorded(owner, api):
    secret = make_token(owner)
    token = ApiToken.objects.get(user=owner)
    assert secret.startswith("kp_") and len(secret) > 40
    assert secret not in (token.token_hash, token.prefix) and token.last_used_at is None
    response = api(token=secret).get("/api/v1/tenants/", REMOTE_ADDR="10.1.2.3")
    assert response.status_code == 200
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_ip == "10.1.2.3"


def test_a_read_only_token_reads_but_cannot_write(owner, api, tenant):
    client = api(owner, scope=ApiToken.Scope.READ)
    assert client.get(CLUSTERS).status_code == 200
    _problem(client.post(CLUSTERS, NEW_CLUSTER, format="json"), 403, "read_only_token")


def test_a_read_only_token_cannot_fetch_a_kubeconfig(owner, api, tenant):
    make_cluster(tenant)
    client = api(owner, scope=ApiToken.Scope.READ)
    _problem(client.get(f"{CLUSTERS}prod-eu/kubeconfig/"), 403, "read_only_token")


def test_a_token_limited_to_one_tenant_sees_only_that_tenant(owner, api, tenant):
    from tests.factories import MembershipFactory, TenantFactory

    other = TenantFactory(slug="initech", name="Initech")
    MembershipFactory(tenant=other, user=owner, role="owner")
    client = api(owner, tenant=tenant)
    slugs = [t["slug"] for t in client.get("/api/v1/tenants/").json()["results"]]
    assert slugs == ["acme"]
    _problem(client.get("/api/v1/tenants/initech/clusters/"), 404)
    unlimited = api(owner)
    assert [t["slug"] for t in unlimited.get("/api/v1/tenants/").json()["results"]] == [
        "acme", "initech"]


def test_me_shows_the_token_in_use(owner, api, tenant):
    body = api(owner, scope=ApiToken.Scope.READ, tenant=tenant).get("/api/v1/me/").json()
    assert body["email"] == owner.email
    assert body["token"]["scope"] == "read" and body["token"]["tenant"] == "acme"


def test_the_browser_session_works_and_needs_csrf_for_writes(owner, tenant):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    assert client.get(CLUSTERS).status_code == 200
    body = _problem(client.post(CLUSTERS, NEW_CLUSTER, content_type="application/json"), 403)
    assert "CSRF" in body["detail"]


def test_writes_with_a_token_are_audited_as_api_with_the_token_name(owner, api, tenant):
    make_cluster(tenant)
    client = api(owner, name="ci-deploy")
    response = client.delete(f"{CLUSTERS}prod-eu/")
    assert response.status_code == 202, response.content
    entry = AuditEntry.objects.get(verb="cluster.delete")
    assert entry.via == "api" and entry.token_name == "ci-deploy" and entry.actor == owner


def test_token_expiry_is_checked_at_each_request(owner, api):
    secret = make_token(owner, expires_in=timedelta(hours=1))
    client = api(token=secret)
    assert client.get("/api/v1/tenants/").status_code == 200
    ApiToken.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    _problem(client.get("/api/v1/tenants/"), 401)
