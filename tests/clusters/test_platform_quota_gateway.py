"""The tenant's quotas on the platform (PLATFORM.md f, PLATFORM-v1.6.md row 27): the simulator
serves the ResourceQuotas ``tenant-quota`` and ``tenant-quota-allocated`` with a ``status.used``
that follows what the namespace's clusters run; the gateway reads both through the real
``kubernetes`` client; ``combine_quotas`` lets the smaller one win per resource. No database."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest
from kubernetes import client as k8s

from cozystack.gateway import Gateway, PlatformUnavailable, build_api_client
from cozystack.quotas import (
    ALLOCATED_QUOTA,
    TENANT_QUOTA,
    QuotaResource,
    combine_quotas,
    headroom,
    shortfall,
)
from cozystack.simulator import SimulatedPlatform
from cozystack.simulator.quotas import parse_quota_option
from tests.clusters.conftest import NS

GIB = Decimal(2**30)


@pytest.fixture
def simulated_platform(simulated_platform_factory) -> SimulatedPlatform:
    return simulated_platform_factory(release="1.6.2")


@pytest.fixture
def gw(simulated_platform) -> Gateway:
    gateway = Gateway(build_api_client(kubeconfig=str(simulated_platform.kubeconfig_path)),
                      request_timeout=5)
    yield gateway
    gateway.close()


def quota(hard: dict[str, str], used: dict[str, str]) -> dict:
    return {"kind": "ResourceQuota", "status": {"hard": hard, "used": used}}


def kubernetes_app(name: str, groups: dict) -> dict:
    return {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"version": "v1.34", "nodeGroups": groups}}


def md0(**fields) -> dict:
    return {"minReplicas": 2, "maxReplicas": 4, "instanceType": "u1.large", "diskSize": "30Gi",
            "roles": ["ingress-nginx"], **fields}


# --- combining ------------------------------------------------------------------------------------


def test_where_both_quotas_limit_a_resource_the_smaller_limit_and_the_smaller_headroom_win():
    combined = combine_quotas({
        TENANT_QUOTA: quota({"limits.cpu": "32", "limits.memory": "64Gi", "pods": "50"},
                            {"limits.cpu": "4", "limits.memory": "40Gi", "pods": "3"}),
        ALLOCATED_QUOTA: quota({"limits.cpu": "16", "limits.memory": "128Gi"},
                               {"limits.cpu": "14", "limits.memory": "40Gi"}),
    })
    by = {r.resource: r for r in combined}
    assert list(by) == ["limits.cpu", "limits.memory", "pods"]
    assert by["limits.cpu"] == QuotaResource("limits.cpu", Decimal(16), Decimal(14), Decimal(2),
                                             ALLOCATED_QUOTA, ALLOCATED_QUOTA)
    # The chart's quota has the smaller limit of memory; its headroom is the smaller one too.
    assert by["limits.memory"].hard == 64 * GIB
    assert by["limits.memory"].remaining == 24 * GIB
    assert (by["limits.memory"].hard_quota, by["limits.memory"].binding_quota) == (
        TENANT_QUOTA, TENANT_QUOTA)
    assert by["pods"].binding_quota == TENANT_QUOTA and by["pods"].remaining == 47


def test_the_smaller_headroom_can_come_from_the_quota_with_the_larger_limit():
    # The allocated quota counts the whole sub-tree: more in use than the namespace alone.
    combined = combine_quotas({
        TENANT_QUOTA: quota({"limits.cpu": "16"}, {"limits.cpu": "2"}),
        ALLOCATED_QUOTA: quota({"limits.cpu": "20"}, {"limits.cpu": "19500m"}),
    })
    (cpu,) = combined
    assert (cpu.hard, cpu.hard_quota) == (Decimal(16), TENANT_QUOTA)
    assert (cpu.remaining, cpu.binding_quota, cpu.used) == (Decimal("0.5"), ALLOCATED_QUOTA,
                                                             Decimal("19.5"))


def test_one_quota_missing_or_none_at_all():
    only = combine_quotas({TENANT_QUOTA: quota({"requests.nvidia.com/AD102GL_L40S": "2"}, {}),
                           ALLOCATED_QUOTA: None})
    assert [(r.resource, r.hard, r.used, r.binding_quota) for r in only] == [
        ("requests.nvidia.com/AD102GL_L40S", Decimal(2), Decimal(0), TENANT_QUOTA)]
    # Every resource is shown: CPU, memory, storage, load balancers and pods first, then GPUs.
    listed = combine_quotas({TENANT_QUOTA: quota(
        {"services": "9", "requests.nvidia.com/GH100_H100L_94GB": "1", "pods": "9",
         "requests.storage": "1Ti", "services.loadbalancers": "2", "requests.memory": "8Gi",
         "limits.cpu": "4"}, {})})
    assert [r.resource for r in listed] == [
        "limits.cpu", "requests.memory", "requests.storage", "services.loadbalancers", "pods",
        "requests.nvidia.com/GH100_H100L_94GB", "services"]
    assert combine_quotas({TENANT_QUOTA: None, ALLOCATED_QUOTA: None}) == ()
    assert combine_quotas({}) == ()
    # A quota the platform has not counted yet (no status) and junk limit nothing.
    assert combine_quotas({TENANT_QUOTA: {"spec": {"hard": {"pods": "3"}}},
                           ALLOCATED_QUOTA: quota({"pods": "lots"}, {})}) == ()


def test_the_shortfall_names_the_tightest_limit_of_cpu_and_of_memory():
    resources = combine_quotas({TENANT_QUOTA: quota(
        {"limits.cpu": "10", "requests.cpu": "1", "limits.memory": "64Gi",
         "requests.memory": "32Gi"},
        {"limits.cpu": "6", "requests.cpu": "600m", "limits.memory": "8Gi",
         "requests.memory": "8Gi"})})
    # requests.cpu is a fraction of the vCPUs; it never stands for them.
    assert headroom(resources, "cpu").resource.resource == "limits.cpu"
    assert headroom(resources, "memory").resource.resource == "requests.memory"
    assert shortfall(resources, vcpu=Decimal(4), memory_bytes=24 * GIB) == []
    short = shortfall(resources, vcpu=Decimal(8), memory_bytes=32 * GIB)
    assert [(r.resource, needed) for r, needed in short] == [
        ("limits.cpu", Decimal(8)), ("requests.memory", 32 * GIB)]
    assert shortfall((), vcpu=Decimal(1000), memory_bytes=GIB) == []


# --- the simulator and the gateway ----------------------------------------------------------------


def test_the_gateway_reads_both_quotas_and_a_missing_one_is_none(simulated_platform, gw):
    assert gw.read_resource_quotas(NS) == {TENANT_QUOTA: None, ALLOCATED_QUOTA: None}
    simulated_platform.set_quota(NS, {"limits.cpu": "16", "limits.memory": "64Gi", "pods": "20"})
    found = gw.read_resource_quotas(NS, timeout=2)
    assert found[ALLOCATED_QUOTA] is None
    assert found[TENANT_QUOTA]["status"] == {
        "hard": {"limits.cpu": "16", "limits.memory": "64Gi", "pods": "20"},
        "used": {"limits.cpu": "0", "limits.memory": "0", "pods": "0"}}
    simulated_platform.set_quota(NS, {"limits.cpu": "8"}, ALLOCATED_QUOTA)
    both = gw.read_resource_quotas(NS)
    assert both[ALLOCATED_QUOTA]["status"]["hard"] == {"limits.cpu": "8"}
    assert combine_quotas(both)[0].hard_quota == ALLOCATED_QUOTA


def test_used_follows_the_control_planes_and_worker_vms_of_the_namespace(simulated_platform, gw):
    simulated_platform.set_quota(NS, {
        "limits.cpu": "64", "requests.cpu": "6400m", "limits.memory": "256Gi", "pods": "50",
        "requests.storage": "1Ti", "requests.nvidia.com/AD102GL_L40S": "4"})
    custom = k8s.CustomObjectsApi(gw.api_client)
    gpu = md0(minReplicas=1, maxReplicas=1, instanceType="u1.2xlarge", roles=[],
              gpus=[{"name": "nvidia.com/AD102GL_L40S"}], diskSize="100Gi")
    custom.create_namespaced_custom_object(
        "apps.cozystack.io", "v1alpha1", NS, "kuberneteses",
        kubernetes_app("demo", {"md0": md0(), "gpu": gpu}))
    simulated_platform.advance(5)
    used = gw.read_resource_quotas(NS)[TENANT_QUOTA]["status"]["used"]
    # Two u1.large (2 vCPU, 8 GiB), one u1.2xlarge (8 vCPU, 32 GiB), one control plane
    # (3.5 cores, 2.75 GiB): limits and a tenth of the vCPUs as requests.
    assert used == {"limits.cpu": "15500m", "requests.cpu": "1550m",
                    "limits.memory": "51968Mi", "pods": "4", "requests.storage": "160Gi",
                    "requests.nvidia.com/AD102GL_L40S": "1"}
    # Through the core API as a list too, as kubectl reads it.
    listed = k8s.CoreV1Api(gw.api_client).list_namespaced_resource_quota(NS)
    assert [item.metadata.name for item in listed.items] == [TENANT_QUOTA]
    custom.delete_namespaced_custom_object("apps.cozystack.io", "v1alpha1", NS, "kuberneteses",
                                           "demo")
    simulated_platform.advance(5)
    assert set(gw.read_resource_quotas(NS)[TENANT_QUOTA]["status"]["used"].values()) == {"0"}


def test_a_quota_read_on_a_platform_that_is_down_is_unavailable(simulated_platform, gw):
    simulated_platform.set_down()
    with pytest.raises(PlatformUnavailable):
        gw.read_resource_quotas(NS, timeout=1)


def test_quotas_are_set_over_the_control_endpoint_and_from_the_command_line(simulated_platform):
    request = urllib.request.Request(
        f"{simulated_platform.url}/_sim/quota", method="POST",
        data=json.dumps({"namespace": NS, "name": ALLOCATED_QUOTA,
                         "hard": {"pods": "7"}}).encode(),
        headers={"Authorization": f"Bearer {simulated_platform.token}"})
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        assert json.loads(response.read())["spec"] == {"hard": {"pods": "7"}}
    shown = simulated_platform.get_object("ResourceQuota", NS, ALLOCATED_QUOTA)
    assert shown["status"] == {"hard": {"pods": "7"}, "used": {"pods": "0"}}
    assert parse_quota_option("tenant-acme:limits.cpu=16, limits.memory=64Gi") == (
        "tenant-acme", {"limits.cpu": "16", "limits.memory": "64Gi"})
    for bad in ("limits.cpu=16", "tenant-acme:limits.cpu", ":pods=1"):
        with pytest.raises(ValueError):
            parse_quota_option(bad)


def test_machines_beyond_the_quota_are_not_started_and_an_event_says_why(simulated_platform, gw):
    simulated_platform.set_quota(NS, {"limits.cpu": "8", "limits.memory": "64Gi"})
    custom = k8s.CustomObjectsApi(gw.api_client)
    # Four u1.large of 2 vCPU beside a control plane of 3.5 cores: two fit in 8.
    custom.create_namespaced_custom_object(
        "apps.cozystack.io", "v1alpha1", NS, "kuberneteses",
        kubernetes_app("demo", {"md0": md0(minReplicas=4, maxReplicas=4)}))
    simulated_platform.advance(5)
    (deployment,) = gw.list_machine_deployments(NS, "demo")
    assert deployment["spec"]["replicas"] == 4  # the platform accepted all four
    assert deployment["status"]["replicas"] == 2  # two started: the missing workers
    (refused,) = [e for e in simulated_platform.events(NS) if e["reason"] == "FailedCreate"]
    assert refused["type"] == "Warning"
    assert refused["involvedObject"]["name"] == "kubernetes-demo-md0"
    assert "is forbidden: exceeded quota: tenant-quota, requested: limits.cpu=2, used: " \
           "limits.cpu=7500m, limited: limits.cpu=8" in refused["message"]
    used = gw.read_resource_quotas(NS)[TENANT_QUOTA]["status"]["used"]
    assert used["limits.cpu"] == "7500m"
    # The tenant's quota is raised: the missing workers start, and nothing is said again.
    simulated_platform.set_quota(NS, {"limits.cpu": "16", "limits.memory": "64Gi"})
    simulated_platform.advance(5)
    (deployment,) = gw.list_machine_deployments(NS, "demo")
    assert deployment["status"]["replicas"] == deployment["status"]["readyReplicas"] == 4
    assert len([e for e in simulated_platform.events(NS) if e["reason"] == "FailedCreate"]) == 1
