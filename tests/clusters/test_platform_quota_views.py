"""Where a person decides, the pages show the tenant's quota on the platform beside the portal's
and warn (never refuse) when the nodes that start now need more vCPU or memory than it leaves,
naming the quota that binds (PLATFORM.md f, PLATFORM-v1.6.md row 27). The quota is read from the
simulated platform, kept briefly per tenant, and "unknown" while the platform is down."""

from __future__ import annotations

import pytest

from clusters import platform_quota
from clusters.models import Cluster
from cozystack.quotas import ALLOCATED_QUOTA, TENANT_QUOTA
from cozystack.simulator import Fault
from tests.clusters.conftest import NS, cluster_spec
from tests.clusters.ui import by_testid, make_cluster, url

pytestmark = pytest.mark.django_db
HTMX = {"HX-Request": "true"}


def create_form(**overrides) -> dict:
    """The create page's defaults (one group md0 of u1.medium, 1 vCPU / 4 GiB, from 1 node)."""
    data = {
        "name": "demo", "version": "v1.35", "control_plane_replicas": "2",
        "control_plane_preset": "c1.medium", "storage_class": "replicated", "host": "",
        "groups": ["0"], "ng-0-name": "md0", "ng-0-instance_type": "u1.medium",
        "ng-0-min_replicas": "1", "ng-0-max_replicas": "3", "ng-0-disk_gib": "50",
        "ng-0-ingress": "on", "ng-0-gpu_model": "", "ng-0-gpu_count": "1",
        "addon-ingressNginx_expose_method": "Proxied",
    }
    data.update(overrides)
    return data


def quota_reads(platform) -> int:
    return len(platform.requests("GET", "/resourcequotas/"))


def warnings(response) -> list[str]:
    return by_testid(response, "platform-quota-warning")


def test_the_create_page_shows_both_quotas_combined_beside_the_portals(
        client_for, member, tenant, platform):
    platform.set_quota(NS, {"limits.cpu": "16", "limits.memory": "64Gi", "pods": "30"})
    platform.set_quota(NS, {"limits.cpu": "8"}, ALLOCATED_QUOTA)
    response = client_for(member).get(url("create", tenant))
    html = response.content.decode()
    table = html[html.index('data-testid="platform-quota"'):]
    assert 'data-state="read"' in table[:60]
    assert '<tr class="" data-resource="limits.cpu" data-quota="tenant-quota-allocated">' in table
    assert "<td><code>limits.cpu</code></td><td>0</td><td>8</td><td>8</td>" in table
    assert "<td><code>limits.memory</code></td><td>0 GiB</td><td>64 GiB</td><td>64 GiB</td>" in (
        table)
    assert "tenant-quota, tenant-quota-allocated" in table
    assert warnings(response) == []  # one node of 1 vCPU / 4 GiB fits
    # The portal's own quota is still there, first.
    assert html.index('data-testid="quota"') < html.index('data-testid="platform-quota"')


def test_the_create_page_warns_naming_the_smaller_quota_and_still_creates(
        client_for, member, tenant, platform):
    platform.set_quota(NS, {"limits.cpu": "16", "limits.memory": "64Gi"})
    platform.set_quota(NS, {"limits.cpu": "2", "limits.memory": "128Gi"}, ALLOCATED_QUOTA)
    client = client_for(member)
    response = client.post(url("create_check", tenant), create_form(**{
        "ng-0-min_replicas": "3", "ng-0-max_replicas": "3"}), headers=HTMX)
    assert warnings(response) == [
        "The nodes that start now need 3 of limits.cpu, but the platform's quota "
        "tenant-quota-allocated leaves 2 (0 of 2 in use). The platform accepts the change, but "
        "the nodes beyond its quota will not start until it is raised or something else stops."]
    # Memory fits (12 GiB of the chart quota's 64): only CPU is said.
    created = client.post(url("create", tenant), create_form(**{
        "ng-0-min_replicas": "3", "ng-0-max_replicas": "3"}))
    assert created.status_code == 302  # a warning, not a refusal
    assert Cluster.objects.filter(tenant=tenant, name="demo").exists()


def test_without_a_quota_on_the_platform_the_page_says_so(client_for, member, tenant, platform):
    response = client_for(member).get(url("create", tenant))
    assert by_testid(response, "platform-quota") == [
        "On the platform The platform sets no quota for this tenant."]


def test_a_platform_that_is_down_leaves_the_quota_unknown_and_is_not_asked_again_at_once(
        client_for, member, tenant, platform):
    platform.set_quota(NS, {"limits.cpu": "500m"})
    platform.set_down()
    client = client_for(member)
    page = client.get(url("create", tenant))
    assert page.status_code == 200
    assert 'data-testid="platform-quota" data-state="unknown"' in page.content.decode()
    assert warnings(page) == []  # nothing is claimed about a quota nobody could read
    platform.set_down(False)
    platform.request_log.clear()
    again = client.post(url("create_check", tenant), create_form(), headers=HTMX)
    assert 'data-state="unknown"' in again.content.decode()
    assert quota_reads(platform) == 0  # the failure is remembered for a while
    platform_quota.forget(NS)
    fresh = client.post(url("create_check", tenant), create_form(), headers=HTMX)
    assert warnings(fresh)[0].startswith("The nodes that start now need 1 of limits.cpu")
    assert quota_reads(platform) == 2


def test_the_quota_is_read_once_per_tenant_while_it_is_fresh(client_for, member, tenant,
                                                            platform):
    platform.set_quota(NS, {"limits.cpu": "16"})
    client = client_for(member)
    client.get(url("create", tenant))
    client.post(url("create_check", tenant), create_form(), headers=HTMX)
    client.post(url("create_check", tenant), create_form(), headers=HTMX)
    assert quota_reads(platform) == 2  # tenant-quota and tenant-quota-allocated, once


@pytest.fixture
def running(tenant):
    return make_cluster(tenant, groups=[{"name": "md0", "observed_nodes": 1, "ready_nodes": 1,
                                         "desired_nodes": 1}])


def test_the_scale_preview_warns_when_the_new_minimum_does_not_fit(
        client_for, member, tenant, platform, running):
    platform.set_quota(NS, {"limits.cpu": "2", "limits.memory": "64Gi"})
    client = client_for(member)
    scale = url("group_scale", tenant, cluster_name="demo", group_name="md0")
    response = client.post(scale, {"scale-md0-min_replicas": "4", "scale-md0-max_replicas": "6"},
                           headers=HTMX)
    assert response.status_code == 200
    (warning,) = warnings(response)
    assert warning.startswith("The nodes that start now need 3 of limits.cpu, but the "
                              "platform's quota tenant-quota leaves 2 (0 of 2 in use).")
    assert warning in " ".join(by_testid(response, "confirm-scale-md0"))
    # A higher maximum starts nothing now: no warning.
    wider = client.post(scale, {"scale-md0-min_replicas": "1", "scale-md0-max_replicas": "9"},
                        headers=HTMX)
    assert warnings(wider) == []


def test_the_add_group_preview_warns_about_memory_too(client_for, member, tenant, platform,
                                                      running):
    platform.set_quota(NS, {"limits.cpu": "64", "requests.memory": "10Gi"})
    add = {"add-name": "big", "add-instance_type": "u1.large", "add-min_replicas": "2",
           "add-max_replicas": "3", "add-disk_gib": "30"}
    response = client_for(member).post(url("group_add", tenant, cluster_name="demo"), add,
                                       headers=HTMX)
    (warning,) = warnings(response)
    assert warning.startswith("The nodes that start now need 16 GiB of requests.memory, but "
                              "the platform's quota tenant-quota leaves 10 GiB (0 GiB of 10 GiB "
                              "in use).")


def test_the_platform_quota_reflects_what_the_tenants_clusters_run(engine, tenant, owner,
                                                                    client_for, platform):
    platform.set_quota(NS, {"limits.cpu": "8"}, TENANT_QUOTA)
    cluster = engine.create()  # md0: one u1.large (2 vCPU) from its minimum, a control plane
    assert engine.settle(cluster, seconds=60).state == "succeeded"
    platform_quota.forget(NS)
    (cpu,) = platform_quota.tenant_platform_quota(NS).resources
    assert (cpu.resource, cpu.used, cpu.remaining) == ("limits.cpu", 5.5, 2.5)


@pytest.mark.parametrize("status", [403, 500])
def test_a_quota_the_platform_refuses_to_show_is_unknown_and_read_again_later(platform, status):
    platform.set_quota(NS, {"limits.cpu": "4"})
    platform.faults.add(Fault(method="GET", path="resourcequotas", status=status, times=1))
    unknown = platform_quota.tenant_platform_quota(NS)
    assert (unknown.state, unknown.resources) == ("unknown", ())
    assert platform_quota.quota_warnings(NS, None, cluster_spec()) == []
    platform_quota.forget(NS)
    (cpu,) = platform_quota.tenant_platform_quota(NS).resources
    assert (cpu.resource, cpu.hard) == ("limits.cpu", 4)
