"""`KubernetesNodes` pools (Cozystack v1.6, PLATFORM-v1.6.md rows 23 and 24): worker pools
attached to a cluster on the platform, outside its spec. Against the simulated 1.6.2 platform,
over HTTP: the portal shows them read-only on the cluster page and in the API, never writes them
into its spec or sends them back, never scales them as node groups, and meters their nodes once,
as the platform reports them."""

from __future__ import annotations

from decimal import Decimal

import pytest
from kubernetes import client as k8s
from rest_framework.test import APIClient

from billing.models import UsageSegment
from clusters import actions, observe
from clusters.models import Cluster, NodePool, Operation
from cozystack.gateway import get_gateway
from tests.api.factories import make_token
from tests.clusters.conftest import NS, cluster_spec, group
from tests.clusters.ui import url

pytestmark = [pytest.mark.django_db]
V16 = pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)
V13 = pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)
POOLS = ("apps.cozystack.io", "v1alpha1")


def custom() -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(get_gateway().api_client)


def attach_pool(name: str = "demo-gpu", **spec) -> dict:
    """A KubernetesNodes object created on the platform, as its operators would."""
    body = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "KubernetesNodes",
            "metadata": {"name": name},
            "spec": {"cluster": "demo", "version": "v1.34", "instanceType": "u1.xlarge",
                     "minReplicas": 2, "maxReplicas": 4, "diskSize": "40Gi", **spec}}
    return custom().create_namespaced_custom_object(*POOLS, NS, "kubernetesnodes", body)


def running(engine, spec=None) -> Cluster:
    cluster = engine.create(spec or cluster_spec(groups=(group(instance_type="u1.large"),)))
    operation = engine.settle(cluster, seconds=60)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    return cluster


def with_pool(engine) -> Cluster:
    cluster = running(engine)
    attach_pool()
    engine.platform.advance(5)
    engine.observe()
    return cluster


def api(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


@V16
def test_a_pool_is_followed_as_the_platform_reports_it(engine):
    cluster = with_pool(engine)
    pool = NodePool.objects.get(cluster=cluster)
    assert (pool.name, pool.instance_type, pool.min_replicas, pool.max_replicas,
            pool.disk_gib) == ("gpu", "u1.xlarge", 2, 4, 40)
    assert (pool.observed_nodes, pool.ready_nodes) == (2, 2)
    assert pool.spec_seen and pool.sized
    assert cluster.events.filter(reason="NodePool").exists()


@V16
def test_a_pool_never_joins_the_spec_and_is_never_sent_back(engine):
    cluster = with_pool(engine)
    cluster.refresh_from_db()
    assert [g.name for g in cluster.to_spec().node_groups] == ["md0"]
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=5)
    assert engine.settle(cluster, seconds=60).state == Operation.State.SUCCEEDED
    sent = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert set(sent["nodeGroups"]) == {"md0"}
    # The platform still runs the pool, untouched.
    machines = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-gpu")
    assert machines["status"]["replicas"] == 2
    # The portal's own groups are the only ones counted in its status line.
    assert cluster.node_groups.count() == 1
    with pytest.raises(Exception, match="no node group gpu"):
        engine.act(actions.do_scale_node_group, "demo", "gpu", min_replicas=1, max_replicas=9)


@V16
def test_the_cluster_page_shows_the_pool_read_only_with_its_cost(engine, client_for, owner,
                                                                  tenant):
    with_pool(engine)
    html = client_for(owner).get(url("detail", tenant, cluster_name="demo")).content.decode()
    pools = html[html.index('data-testid="node-pools"'):]
    assert 'data-pool="gpu"' in pools
    assert "u1.xlarge · 4 vCPU · 16 GiB" in pools
    assert "the portal does not change, scale or remove them" in pools
    cost = pools[pools.index('data-testid="pool-cost"'):][:200]
    assert "CHF" in cost or "not priced" in cost
    groups = html[html.index('data-testid="node-groups"'):html.index('data-testid="node-pools"')]
    assert 'data-group="gpu"' not in groups
    # No action form of the page names the pool.
    assert "scale-gpu" not in html and "edit-gpu" not in html


@V16
def test_the_api_shows_pools_read_only_and_refuses_them_as_input(engine, owner):
    with_pool(engine)
    client = api(owner)
    body = client.get("/api/v1/tenants/acme/clusters/demo/").json()
    assert [g["name"] for g in body["node_groups"]] == ["md0"]
    (pool,) = body["node_pools"]
    assert (pool["name"], pool["instance_type"], pool["nodes"]["observed"],
            pool["nodes"]["ready"], pool["size_known"]) == ("gpu", "u1.xlarge", 2, 2, True)
    assert pool["custom_size"] is None and pool["gpu_model"] is None
    assert client.get("/api/v1/tenants/acme/clusters/demo/node-groups/gpu/").status_code == 404
    refused = client.patch("/api/v1/tenants/acme/clusters/demo/",
                           {"node_pools": [{"name": "gpu", "max_replicas": 9}]}, format="json")
    assert refused.status_code == 400
    assert not NodePool.objects.filter(max_replicas=9).exists()


@V16
def test_pool_nodes_are_metered_once_as_the_clusters(engine):
    cluster = with_pool(engine)
    md0 = cluster.node_groups.get()
    open_segments = {(s.node_group_id, s.sku): s.quantity
                     for s in UsageSegment.objects.filter(cluster=cluster, end__isnull=True)}
    assert open_segments[(None, "node.u1.xlarge")] == Decimal(2)
    assert open_segments[(md0.pk, "node.u1.large")] == Decimal(1)
    # The disk of both: the group's 30 GiB node and the pool's two 40 GiB nodes, each once.
    assert open_segments[(md0.pk, "disk.gib")] == Decimal(30)
    assert open_segments[(None, "disk.gib")] == Decimal(80)
    nodes = sum(q for (g, sku), q in open_segments.items() if sku.startswith("node."))
    assert nodes == Decimal(3)  # md0's one node and the pool's two, nothing twice


@V16
def test_a_pool_removed_on_the_platform_stops_being_shown_and_billed(engine):
    cluster = with_pool(engine)
    custom().delete_namespaced_custom_object(*POOLS, NS, "kubernetesnodes", "demo-gpu")
    engine.platform.advance(2)
    engine.observe()
    pool = NodePool.objects.get(cluster=cluster)
    assert pool.removed_at is not None and pool.observed_nodes == 0
    assert not UsageSegment.objects.filter(cluster=cluster, node_group=None,
                                           sku="node.u1.xlarge", end__isnull=True).exists()
    html_pools = NodePool.objects.filter(cluster=cluster, removed_at__isnull=True)
    assert not html_pools.exists()  # what the cluster page and the API list


@V16
def test_a_pool_that_collides_with_a_group_is_refused_by_the_platform_and_shown(engine):
    cluster = running(engine)
    attach_pool("demo-md0")
    engine.platform.advance(2)
    engine.observe()
    pool = NodePool.objects.get(cluster=cluster)
    assert "already managed by release" in pool.status_message
    assert pool.observed_nodes == 0
    # The group keeps its own machines: nothing of the refused pool is attributed to it.
    assert cluster.node_groups.get().observed_nodes == 1


@V16
def test_a_pools_nodes_are_metered_only_once_its_size_is_known(engine):
    cluster = running(engine)
    machines = {"metadata": {
        "name": "kubernetes-demo-late", "namespace": NS,
        "labels": {observe.CLUSTER_LABEL: "kubernetes-demo"},
        "annotations": {observe.RELEASE_ANNOTATION: "kubernetes-nodes-demo-late"}},
        "spec": {"replicas": 3}, "status": {"replicas": 3, "readyReplicas": 3}}
    assert observe.group_of(machines) is None
    assert observe.apply_machine_deployment(NS, machines)
    pool = NodePool.objects.get(cluster=cluster, name="late")
    assert pool.observed_nodes == 3 and not pool.sized
    assert not UsageSegment.objects.filter(cluster=cluster, node_group=None,
                                           sku__startswith="node.").exists()
    spec = {"metadata": {"name": "demo-late", "namespace": NS},
            "spec": {"cluster": "demo", "instanceType": "u1.medium", "diskSize": "20Gi"}}
    assert observe.apply_node_pool(NS, spec)
    segment = UsageSegment.objects.get(cluster=cluster, node_group=None, sku="node.u1.medium",
                                       end__isnull=True)
    assert segment.quantity == Decimal(3)


@V16
def test_the_machine_deployments_of_groups_and_pools_are_told_apart(engine):
    running(engine)
    attach_pool()
    engine.platform.advance(5)
    group_md = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")
    pool_md = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-gpu")
    assert observe.group_of(group_md) == ("demo", "md0") and observe.pool_of(group_md) is None
    assert observe.pool_of(pool_md) == ("demo", "gpu") and observe.group_of(pool_md) is None


@V13
def test_a_v13_platform_has_no_pools_and_the_resync_carries_on(engine):
    cluster = running(engine, cluster_spec(version="v1.33",
                                           groups=(group(instance_type="u1.large"),)))
    assert engine.observe() >= 0
    assert not NodePool.objects.filter(cluster=cluster).exists()
