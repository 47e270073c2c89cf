"""The API says why a cluster's custom host is refused, as the create form does."""

from __future__ import annotations

import pytest

from clusters.models import Cluster
from tests.api.factories import make_cluster
from tests.api.test_clusters import BASE, errors_by_field, spec

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def platform_root_host(settings):
    settings.PLATFORM_ROOT_HOST = "example.org"
    settings.ALLOWED_HOSTS = ["portal.example.ch", "*"]


@pytest.mark.parametrize(("host", "message"), [
    ("169.254.169.254", "is an IP address"),
    ("127.0.0.1", "is an IP address"),
    ("::1", "is not valid"),
    ("kubernetes.default.svc", "internal to the platform"),
    ("portal.example.ch", "belongs to this portal"),
    ("kubernetes-web.globex.example.org", "Names under example.org belong to the platform"),
])
def test_a_reserved_host_is_a_422_pointing_at_the_host(owner, api, tenant, host, message):
    response = api(owner).post(BASE, spec(host=host), format="json")

    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    error = errors_by_field(response)["host"]
    assert message in error["detail"] and error["pointer"] == "#/host"
    assert not Cluster.objects.exists()


def test_a_host_in_use_by_another_tenant_is_a_409_that_names_no_one(owner, api, tenant,
                                                                    other_tenant):
    make_cluster(other_tenant, "secret-project", host="api.example.com")

    response = api(owner).post(BASE, spec(host="api.example.com"), format="json")

    assert response.status_code == 409, response.content
    body = response.json()
    assert body["code"] == "already_exists"
    assert errors_by_field(response)["host"]["detail"] == (
        "The host name “api.example.com” is already in use; choose another.")
    assert "secret-project" not in response.content.decode()
    assert "globex" not in response.content.decode().lower()
    assert not Cluster.objects.filter(tenant=tenant).exists()


def test_a_host_of_ones_own_is_accepted(owner, api, tenant):
    response = api(owner).post(BASE, spec(host="k8s.acme-corp.ch"), format="json")

    assert response.status_code == 201, response.content
    assert response.json()["host"] == "k8s.acme-corp.ch"
