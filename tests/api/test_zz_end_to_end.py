"""The API end to end, as a CI job would use it: a token over real HTTP (uvicorn), a Celery
worker and the watcher, the simulated platform on the real clock.

Create a cluster, poll its operation to success, download the kubeconfig, scale, read the
estimate, delete. (Named to run last in this folder: the session's worker then starts after
the other API tests, which leave queued creations behind.)
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import requests
import yaml
from django.utils import timezone

from portal.permissions import Role
from tests.api.factories import make_token
from tests.billing.conftest import add_price
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import eventually

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        url = path if path.startswith("http") else self.base + path
        return self.session.request(method, url, timeout=30, **kwargs)

    def wait_for(self, operation: dict, timeout: float = 90) -> dict:
        seen: list[dict] = []

        def finished() -> dict | None:
            current = self("GET", operation["url"]).json()
            seen[:] = [current]
            return current if current["state"] in ("succeeded", "failed", "cancelled") else None

        try:
            done = eventually(finished, timeout=timeout, interval=0.3)
        except AssertionError:
            raise AssertionError(f"operation did not finish: {seen}") from None
        assert done["state"] == "succeeded", done
        return done


def test_a_token_creates_polls_downloads_scales_estimates_and_deletes_a_cluster(
        live_platform, asgi_server, celery_worker_proc, watcher_proc):
    tenant = TenantFactory(slug=f"api{uuid.uuid4().hex[:8]}")
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    add_price("node.s1.large", "0.10", since=timezone.now() - timedelta(seconds=1))
    api = Api(asgi_server, make_token(owner, name="e2e"))
    clusters = f"/api/v1/tenants/{tenant.slug}/clusters/"
    spec = {"name": "ci", "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                             "max_replicas": 2, "roles": ["ingress-nginx"]}]}

    created = api("POST", clusters, json=spec, headers={"Idempotency-Key": "e2e-create"})
    assert created.status_code == 201, created.text
    retried = api("POST", clusters, json=spec, headers={"Idempotency-Key": "e2e-create"})
    assert retried.status_code == 201 and retried.headers["Idempotent-Replayed"] == "true"
    cluster = created.json()
    api.wait_for(cluster["current_operation"])
    cluster = api("GET", cluster["url"]).json()
    assert cluster["phase"] == "running" and cluster["kubeconfig_ready"] is True

    kubeconfig = api("GET", f"{clusters}ci/kubeconfig/")
    assert kubeconfig.status_code == 200, kubeconfig.text
    assert kubeconfig.headers["Cache-Control"] == "no-store"
    config = yaml.safe_load(kubeconfig.text)
    assert config["kind"] == "Config" and "ci" in config["clusters"][0]["cluster"]["server"]

    scaled = api("PATCH", f"{clusters}ci/node-groups/md0/", json={"max_replicas": 4},
                 headers={"Idempotency-Key": "e2e-scale"})
    assert scaled.status_code == 202, scaled.text
    assert scaled.headers["Location"] == scaled.json()["url"]
    api.wait_for(scaled.json())
    group = api("GET", f"{clusters}ci/node-groups/md0/").json()
    assert group["max_replicas"] == 4

    estimate = api("POST", "/api/v1/estimate/", json={"node_groups": [
        {k: group[k] for k in ("name", "instance_type", "min_replicas", "max_replicas",
                               "ephemeral_storage_gib", "roles")}]})
    assert estimate.status_code == 200, estimate.text
    figures = estimate.json()
    node = next(line for line in figures["lines"] if line["sku"] == "node.s1.large")
    assert (node["monthly_min"], node["monthly_max"]) == ("73.00", "292.00")  # 0.10 × 730 × n

    deleted = api("DELETE", f"{clusters}ci/", headers={"Idempotency-Key": "e2e-delete"})
    assert deleted.status_code == 202, deleted.text
    api.wait_for(deleted.json())
    assert api("GET", f"{clusters}ci/").status_code == 404
    timeline = api("GET", f"{clusters}ci/events/")
    assert timeline.status_code == 404  # a deleted cluster is gone from the API
    operations = api("GET", f"/api/v1/tenants/{tenant.slug}/operations/").json()["results"]
    assert [o["kind"] for o in operations] == ["delete", "scale", "create"]
    assert all(o["state"] == "succeeded" for o in operations)
