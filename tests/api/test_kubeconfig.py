"""Kubeconfigs through the API: role-checked, audited, never stored, 503 when unreachable."""

from __future__ import annotations

import pytest
import yaml
from django.test import Client
from django.utils import timezone

from clusters.actions import PORTAL_LABELS
from clusters.models import Cluster
from clusters.platform_release import current_dialect
from cozystack.gateway import get_gateway, reset_gateway
from cozystack.manifests import render_kubernetes
from cozystack.simulator.faults import Fault
from portal.models import ApiToken, AuditEntry, IdempotencyRecord

pytestmark = pytest.mark.django_db

URL = "/api/v1/tenants/acme/clusters/prod-eu/kubeconfig/"


@pytest.fixture
def platform(simulated_platform, settings):
    settings.PLATFORM_KUBECONFIG = str(simulated_platform.kubeconfig_path)
    reset_gateway()
    yield simulated_platform
    reset_gateway()


@pytest.fixture
def provisioned(platform, cluster):
    get_gateway().create_cluster(render_kubernetes(cluster.to_spec(), current_dialect(),
                                                   labels=PORTAL_LABELS))
    for _ in range(20):
        platform.advance(1.0)
    return cluster


def test_a_member_downloads_the_admin_kubeconfig_and_it_is_audited(member, api, provisioned):
    response = api(member, name="ci").get(URL)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/yaml")
    assert response["Cache-Control"] == "no-store"
    assert "attachment" in response["Content-Disposition"]
    config = yaml.safe_load(response.content)
    assert config["kind"] == "Config" and config["clusters"]
    entry = AuditEntry.objects.get(verb="cluster.kubeconfig.admin")
    assert entry.actor == member and entry.via == "api" and entry.token_name == "ci"
    assert entry.changes == {"kubeconfig": [None, "admin"]}
    assert response["Content-Disposition"].endswith('acme-prod-eu-kubeconfig.yaml"')


def test_post_works_too_and_nothing_is_stored_even_with_an_idempotency_key(owner, api,
                                                                           provisioned):
    response = api(owner).post(URL, {"kind": "super_admin"}, format="json",
                               HTTP_IDEMPOTENCY_KEY="k")
    assert response.status_code == 200, response.content
    config = yaml.safe_load(response.content)
    assert config["users"][0]["name"] == "kubernetes-super-admin"
    assert AuditEntry.objects.filter(verb="cluster.kubeconfig.super-admin").count() == 1
    assert not IdempotencyRecord.objects.exists()


def test_super_admin_is_for_owners_and_admins_only(member, tenant_admin, api, provisioned):
    assert api(member).get(URL, {"kind": "super_admin"}).status_code == 403
    assert api(tenant_admin).get(URL, {"kind": "super_admin"}).status_code == 200


@pytest.mark.parametrize("persona", ["viewer", "billing_user"])
def test_readers_cannot_download(request, api, provisioned, persona):
    user = request.getfixturevalue(persona)
    assert api(user).get(URL).status_code == 403
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_a_read_only_token_cannot_download(owner, api, provisioned):
    assert api(owner, scope=ApiToken.Scope.READ).get(URL).status_code == 403


def test_before_the_platform_issues_it_the_answer_is_409_not_ready(owner, api, platform,
                                                                   cluster):
    response = api(owner).get(URL)
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "kubeconfig_not_ready"


def test_an_unreachable_platform_is_a_503_with_retry_after(owner, api, platform, cluster):
    platform.set_down(True, mode="503")
    response = api(owner).get(URL)
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0


def test_a_deleted_cluster_has_no_kubeconfig_even_while_the_platform_still_has_it(
        owner, api, provisioned):
    Cluster.objects.filter(pk=provisioned.pk).update(phase=Cluster.Phase.DELETED,
                                                     deleted_at=timezone.now())
    assert get_gateway().kubeconfig_exists("tenant-acme", "prod-eu")

    response = api(owner).get(URL)

    assert response.status_code == 404, response.content
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_the_platform_refusing_is_a_502_with_its_reason(owner, api, platform, provisioned):
    platform.faults.add(Fault(path="admin-kubeconfig", status=403, times=2))
    response = api(owner).get(URL)
    assert response.status_code == 502, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "platform_error"
    assert "platform credentials" in response.json()["detail"]


def test_an_unknown_kind_is_a_400(owner, api, cluster):
    assert api(owner).get(URL, {"kind": "root"}).status_code == 400


def test_a_browser_session_needs_a_recent_sign_in(owner, provisioned, client_for):
    stale = client_for(owner)  # force_login records no sign-in
    response = stale.get(URL)
    assert response.status_code == 403
    assert response.json()["code"] == "reauthentication_required"

    from tests.factories import PASSWORD

    fresh = Client()
    assert fresh.post("/accounts/login/", {"login": owner.email,
                                           "password": PASSWORD}).status_code == 302
    assert fresh.get(URL).status_code == 200
