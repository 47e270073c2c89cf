"""`KubernetesNodes` pools on the simulated platform (v1.6, PLATFORM-v1.6.md rows 23 and 24),
through the real `kubernetes` client: the object `<cluster>-<pool>` renders a MachineDeployment
named like one of the cluster's groups but owned by the pool's own release, the chart's refusals
show on the object, and removing it removes its machines. The Option API can be told what a
namespace is offered (a tenant offered less, a platform-only storage class)."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from cozystack.simulator import RELEASES, SimulatedPlatform
from tests.platform.test_simulator import NS, create, get
from tests.platform.test_simulator_releases import OPTIONS, body, client_for  # noqa: F401

POOLS = ("apps.cozystack.io", "v1alpha1", NS, "kubernetesnodes")


@pytest.fixture
def v16(simulated_platform_factory) -> SimulatedPlatform:
    return simulated_platform_factory(release="1.6.2")


@pytest.fixture
def custom16(v16, client_for) -> client.CustomObjectsApi:  # noqa: F811
    return client.CustomObjectsApi(client_for(v16))


def pool(name: str = "demo-batch", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "KubernetesNodes",
            "metadata": {"name": name},
            "spec": {"cluster": "demo", "version": "v1.34", "instanceType": "u1.large",
                     "minReplicas": 2, "maxReplicas": 4, **spec}}


def machines(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    return custom.get_namespaced_custom_object("cluster.x-k8s.io", "v1beta1", NS,
                                               "machinedeployments", name)


def pool_ready(custom: client.CustomObjectsApi, name: str = "demo-batch") -> dict[str, Any]:
    obj = custom.get_namespaced_custom_object(*POOLS, name)
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def test_a_pool_renders_its_own_machine_deployment_for_the_cluster(v16, custom16):
    create(custom16, body())
    v16.advance(3)
    custom16.create_namespaced_custom_object(*POOLS, pool())
    v16.advance(3)
    md = machines(custom16, "kubernetes-demo-batch")
    meta = md["metadata"]
    assert meta["labels"]["cluster.x-k8s.io/cluster-name"] == "kubernetes-demo"
    assert meta["annotations"]["meta.helm.sh/release-name"] == "kubernetes-nodes-demo-batch"
    assert meta["labels"]["app.kubernetes.io/instance"] == "kubernetes-nodes-demo-batch"
    assert meta["ownerReferences"][0]["kind"] == "KubernetesNodes"
    assert (md["spec"]["replicas"], md["status"]["readyReplicas"]) == (2, 2)
    own = machines(custom16, "kubernetes-demo-md0")["metadata"]
    assert own["annotations"]["meta.helm.sh/release-name"] == "kubernetes-demo"
    assert pool_ready(custom16)["status"] == "True"
    # GET fills the pool chart's defaults; the cluster's spec never lists the pool.
    shown = custom16.get_namespaced_custom_object(*POOLS, "demo-batch")["spec"]
    assert shown["diskSize"] == "20Gi" and shown["storageClass"] == "replicated"
    assert set(get(custom16)["spec"]["nodeGroups"]) == {"md0"}


def test_the_autoscaler_moves_a_pool_like_a_group(v16, custom16):
    create(custom16, body())
    custom16.create_namespaced_custom_object(*POOLS, pool())
    v16.advance(3)
    v16.set_demand(NS, "demo", "batch", 4)
    v16.advance(3)
    assert machines(custom16, "kubernetes-demo-batch")["status"]["readyReplicas"] == 4


@pytest.mark.parametrize(("name", "spec", "words"), [
    ("demo-md0", {}, "collides with a nodeGroup still managed by the parent"),
    ("other-batch", {}, 'must start with "kubernetes-nodes-demo-"'),
    ("demo-batch", {"version": "v1.35"}, "is ahead of parent cluster"),
])
def test_the_pool_charts_refusals_show_on_the_object(v16, custom16, name, spec, words):
    create(custom16, body())
    v16.advance(3)
    custom16.create_namespaced_custom_object(*POOLS, pool(name, **spec))
    v16.advance(1)
    ready = pool_ready(custom16, name)
    assert (ready["status"], ready["reason"]) == ("False", "InstallFailed")
    assert words in ready["message"]
    names = {md["metadata"]["name"] for md in v16.objects("MachineDeployment", NS)}
    assert names == {"kubernetes-demo-md0"}


def test_a_pool_without_its_cluster_waits_then_follows_it(v16, custom16):
    custom16.create_namespaced_custom_object(*POOLS, pool())
    v16.advance(1)
    assert pool_ready(custom16)["status"] == "Unknown"
    assert v16.objects("MachineDeployment", NS) == []
    create(custom16, body())
    v16.advance(3)
    assert machines(custom16, "kubernetes-demo-batch")["status"]["replicas"] == 2


def test_removing_a_pool_removes_its_machines(v16, custom16):
    create(custom16, body())
    custom16.create_namespaced_custom_object(*POOLS, pool())
    v16.advance(3)
    custom16.delete_namespaced_custom_object(*POOLS, "demo-batch")
    v16.advance(1)
    assert [md["metadata"]["name"] for md in v16.objects("MachineDeployment", NS)] == [
        "kubernetes-demo-md0"]
    assert v16.objects("KubernetesNodes", NS) == []


def test_a_pool_name_is_checked_like_an_apps_name(v16, custom16):
    with pytest.raises(ApiException) as error:
        custom16.create_namespaced_custom_object(*POOLS, pool("demo-" + "x" * 40))
    assert error.value.status == 422 and "no more than 36 characters" in error.value.body


def test_pools_survive_a_restart(simulated_platform_factory, tmp_path, client_for):  # noqa: F811
    state = tmp_path / "state.json"
    first = simulated_platform_factory(release="1.6.2", state_path=state)
    custom = client.CustomObjectsApi(client_for(first))
    create(custom, body())
    custom.create_namespaced_custom_object(*POOLS, pool())
    first.advance(3)
    first.stop()
    second = simulated_platform_factory(release="1.6.2", state_path=state)
    second.advance(1)
    md = second.get_object("MachineDeployment", NS, "kubernetes-demo-batch")
    assert md is not None and md["status"]["replicas"] == 2
    assert second.controller.node_pools.pools[(NS, "demo-batch")].group is not None


@pytest.mark.parametrize("simulated_platform", RELEASES, indirect=True)
def test_kubernetes_nodes_exist_only_from_v16(simulated_platform, api, custom):
    served = simulated_platform.release.name == "1.6.2"
    resources = client.CustomObjectsApi(api).get_api_resources(*POOLS[:2]).resources
    assert ("kubernetesnodes" in {r.name for r in resources}) == served
    if served:
        return
    with pytest.raises(ApiException) as error:
        custom.list_namespaced_custom_object(*POOLS)
    assert error.value.status == 404


def test_the_option_api_answers_a_namespace_what_it_was_told(v16, custom16):
    v16.set_options(NS, "instancetype", [{"value": "u1.medium"}, {"value": "u1.large"}])
    items = custom16.get_namespaced_custom_object(*OPTIONS, NS, "options",
                                                  "instancetype")["spec"]["items"]
    assert items == [{"value": "u1.medium"}, {"value": "u1.large"}]
    other = custom16.get_namespaced_custom_object(*OPTIONS, "tenant-other", "options",
                                                  "instancetype")["spec"]["items"]
    assert len(other) > 2
    v16.set_options(NS, "instancetype", None)
    assert len(custom16.get_namespaced_custom_object(*OPTIONS, NS, "options", "instancetype")
               ["spec"]["items"]) == len(other)
    with pytest.raises(ValueError):
        v16.set_options(NS, "network", [])
