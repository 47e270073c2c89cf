"""The tenant's quota on the platform over the API (PLATFORM.md f, PLATFORM-v1.6.md row 27): read
as data, and the writes that start nodes carry the same warning as the pages, as data, when the
nodes that start now do not fit (the platform accepts them; they just do not start)."""

from __future__ import annotations

import pytest

from clusters import platform_quota
from cozystack.quotas import ALLOCATED_QUOTA
from tests.api.factories import make_cluster
from tests.clusters.conftest import NS, gateway, platform

__all__ = ["gateway", "platform"]  # the simulated platform, wired as the portal's

pytestmark = pytest.mark.django_db
BASE = "/api/v1/tenants/acme/"


def spec(name: str = "web", **group) -> dict:
    return {"name": name, "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "u1.large", "min_replicas": 2,
                             "max_replicas": 3, "roles": ["ingress-nginx"], **group}]}


def test_the_platform_quota_reads_as_data(owner, viewer, api, tenant, platform):
    platform.set_quota(NS, {"limits.cpu": "16", "limits.memory": "64Gi"})
    platform.set_quota(NS, {"limits.cpu": "8"}, ALLOCATED_QUOTA)
    body = api(viewer).get(f"{BASE}platform-quota/").json()
    assert body == {"state": "read", "quotas": ["tenant-quota", "tenant-quota-allocated"],
                    "resources": [
                        {"resource": "limits.cpu", "hard": "8", "used": "0", "remaining": "8",
                         "unit": "cores", "hard_quota": "tenant-quota-allocated",
                         "binding_quota": "tenant-quota-allocated"},
                        {"resource": "limits.memory", "hard": str(64 * 2**30), "used": "0",
                         "remaining": str(64 * 2**30), "unit": "bytes",
                         "hard_quota": "tenant-quota", "binding_quota": "tenant-quota"}]}


def test_the_platform_quota_is_unknown_while_the_platform_is_down(owner, api, tenant, platform):
    platform.set_down()
    response = api(owner).get(f"{BASE}platform-quota/")
    assert response.status_code == 200
    assert response.json() == {"state": "unknown", "quotas": [], "resources": []}


def test_a_creation_beyond_the_platform_quota_is_accepted_with_its_warning(owner, api, tenant,
                                                                          platform):
    platform.set_quota(NS, {"limits.cpu": "3", "limits.memory": "64Gi"})
    response = api(owner).post(f"{BASE}clusters/", spec(), format="json")
    assert response.status_code == 201
    (warning,) = response.json()["platform_quota_warnings"]
    assert {k: v for k, v in warning.items() if k != "message"} == {
        "code": "platform_quota", "resource": "limits.cpu", "quota": "tenant-quota",
        "needed": "4", "remaining": "3", "hard": "3", "used": "0", "unit": "cores"}
    assert warning["message"].startswith("The nodes that start now need 4 of limits.cpu, but "
                                         "the platform's quota tenant-quota leaves 3")
    fits = api(owner).post(f"{BASE}clusters/", spec("small", min_replicas=1), format="json")
    assert fits.json()["platform_quota_warnings"] == []


def test_a_scale_that_starts_nodes_beyond_the_quota_says_so(owner, api, tenant, platform):
    make_cluster(tenant)  # prod-eu: md0 of s1.large (4 vCPU), 1 to 3 nodes, 1 running
    platform.set_quota(NS, {"limits.cpu": "5"})
    platform_quota.forget(NS)
    group = f"{BASE}clusters/prod-eu/node-groups/md0/"
    wider = api(owner).patch(group, {"max_replicas": 8}, format="json")
    assert wider.status_code == 202
    assert wider.json()["platform_quota_warnings"] == []
    make_cluster(tenant, "second")
    raised = api(owner).patch(f"{BASE}clusters/second/node-groups/md0/",
                              {"min_replicas": 4, "max_replicas": 4}, format="json")
    assert raised.status_code == 202
    assert [w["needed"] for w in raised.json()["platform_quota_warnings"]] == ["12"]
