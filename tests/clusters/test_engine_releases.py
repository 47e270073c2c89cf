"""The engine against both releases the portal speaks, and across a live platform upgrade.

Each test names its release (``simulated_platform`` parametrized by release): v1.3.6 and
v1.6.2 each with their own schema, chart values and behaviour (v1.6: Ready before the
workloads, machines start from the minimum, no hidden md0). The dialect is never configured:
the portal reads it from the schema the platform publishes.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from billing.models import UsageSegment
from clusters import actions, platform_release
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from cozystack import dialects
from cozystack.gateway import get_gateway
from cozystack.specs import AddonSpec, AutoRepairSpec
from tests.clusters.conftest import NS, cluster_spec, group, replace_group

pytestmark = pytest.mark.django_db
BOTH = pytest.mark.parametrize("simulated_platform", ["1.3.6", "1.6.2"], indirect=True)
V16_ONLY = pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)
V13_ONLY = pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)


def live_groups(cluster: Cluster) -> dict[str, NodeGroup]:
    return {g.name: g for g in cluster.node_groups.filter(removed_at__isnull=True)}


def running(engine, spec=None) -> Cluster:
    cluster = engine.create(spec)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert cluster.phase == Cluster.Phase.RUNNING
    return cluster


def settled(engine, cluster: Cluster) -> Operation:
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    return operation


# --- the whole life of a cluster, in each release ---------------------------------------------


@BOTH
def test_create_scale_upgrade_addons_and_delete(engine):
    release = engine.platform.release
    cluster = running(engine, cluster_spec(version="v1.33"))
    assert platform_release.current().dialect.name == release.dialect
    raw = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    md0 = raw["nodeGroups"]["md0"]
    if release.v16:
        assert md0["diskSize"] == "30Gi" and "ephemeralStorage" not in md0
        assert "resources" not in md0 and "talos" not in raw and "images" not in raw
        assert raw["controlPlane"]["apiServer"] == {"resourcesPreset": "c1.medium"}
    else:
        assert md0["ephemeralStorage"] == "30Gi" and md0["resources"] == {}
        assert raw["controlPlane"]["apiServer"]["resourcesPreset"] == "large"

    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=2, max_replicas=4)
    settled(engine, cluster)
    md = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")
    assert md["metadata"]["annotations"][
        "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] == "2"
    assert live_groups(cluster)["md0"].ready_nodes == 2

    engine.act(actions.do_upgrade_cluster, "demo", "v1.34")
    settled(engine, cluster)
    assert engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.34"
    assert cluster.version == "v1.34" and cluster.phase == Cluster.Phase.RUNNING

    addons = (AddonSpec("certManager", True),
              AddonSpec("ingressNginx", True, hosts=("app.example.com",)))
    engine.act(actions.do_set_addons, "demo", addons)
    settled(engine, cluster)
    raw_addons = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["addons"]
    assert raw_addons["certManager"]["enabled"] is True
    assert raw_addons["ingressNginx"]["hosts"] == ["app.example.com"]

    engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    settled(engine, cluster)
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.phase == Cluster.Phase.DELETED
    assert engine.platform.get_object("Kubernetes", NS, "demo") is None
    assert not UsageSegment.objects.filter(cluster=cluster, end__isnull=True).exists()


@V16_ONLY
def test_v16_settings_reach_the_platform(engine):
    spec = cluster_spec(groups=(
        replace_group(cluster_spec(), "md0", storage_class="replicated-async",
                      max_unhealthy="1", node_startup_timeout="15m").node_groups[0],
        group("gpu", instance_type="u1.2xlarge", min_replicas=1, max_replicas=1, roles=(),
              gpus=("nvidia.com/AD102GL_L40S",))),
        addons=(AddonSpec("gpuOperator", True), AddonSpec("hami", True)))
    spec = spec.__class__(**{**spec.__dict__, "auto_repair": AutoRepairSpec(True, "40%", "20m")})
    cluster = running(engine, spec)
    raw = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert raw["nodeGroups"]["md0"]["storageClass"] == "replicated-async"
    assert raw["nodeGroups"]["md0"]["maxUnhealthy"] == "1"
    assert raw["nodeHealthCheck"] == {"maxUnhealthy": "40%", "nodeStartupTimeout": "20m"}
    assert raw["addons"]["hami"] == {"enabled": True}
    md0 = live_groups(cluster)["md0"]
    assert (md0.storage_class, md0.max_unhealthy, md0.node_startup_timeout) == (
        "replicated-async", "1", "15m")
    assert cluster.auto_repair == {"enabled": True, "max_unhealthy": "40%",
                                   "node_startup_timeout": "20m"}


@V13_ONLY
def test_v16_settings_are_refused_by_a_v13_platform(engine):
    spec = cluster_spec(addons=(AddonSpec("gpuOperator", True), AddonSpec("hami", True)))
    with pytest.raises(ValidationError) as error:
        engine.create(spec)
    assert error.value.message_dict["addons.hami.enabled"] == [
        "HAMi fractional GPUs is not offered by this platform release; turn it off."]
    assert engine.writes() == []


@V16_ONLY
def test_a_group_starts_from_its_minimum_on_v16(engine):
    cluster = engine.create(cluster_spec(groups=(group(min_replicas=1, max_replicas=3),)))
    engine.outbox.run()
    engine.platform.advance(1.0)
    engine.outbox.run()
    assert live_groups(cluster)["md0"].desired_nodes == 1  # v1.3 hard-codes 2
    settled(engine, cluster)


# --- what Ready means ---------------------------------------------------------------------------


@V16_ONLY
def test_ready_alone_is_not_running_on_v16(engine):
    cluster = engine.create()
    engine.outbox.run()  # sent
    engine.platform.advance(0.3)  # v1.6: Ready=True once the manifests are applied
    engine.outbox.run()
    cluster.refresh_from_db()
    assert cluster.platform_ready and not cluster.kubeconfig_ready
    operation = engine.operation(cluster)
    assert operation.is_active
    assert operation.step("control_plane")["state"] == "running"
    assert operation.step("control_plane")["detail"] == (
        "The platform applied the configuration; waiting for the control plane.")
    assert cluster.phase == Cluster.Phase.CREATING
    operation = settled(engine, cluster)
    cluster.refresh_from_db()
    assert cluster.condition("WorkloadsReady")["status"] == "True"
    assert cluster.phase == Cluster.Phase.RUNNING


@V16_ONLY
def test_ready_without_control_plane_for_minutes_is_stuck_platform_side(engine):
    engine.platform.set_tenant_etcd(NS, False)  # only the awaiting-etcd ConfigMap renders
    cluster = engine.create()
    for _ in range(6):
        engine.outbox.run()
        engine.platform.advance(1.0)
    cluster.refresh_from_db()
    assert cluster.platform_ready and not cluster.kubeconfig_ready
    assert cluster.condition("WorkloadsReady") is None
    assert "Stuck" not in engine.operation(cluster).step("control_plane")["detail"]
    Cluster.objects.filter(pk=cluster.pk).update(
        ready_since=timezone.now() - timedelta(minutes=7))
    engine.outbox.run()
    operation = engine.operation(cluster)
    detail = operation.step("control_plane")["detail"]
    assert detail.startswith("Stuck on the platform side: it reported the cluster applied 7 "
                             "minutes ago, but no control plane answers")
    # Without a change in flight, the page says the same.
    Operation.objects.filter(pk=operation.pk).update(state=Operation.State.FAILED)
    engine.observe()
    from clusters import observe

    with observe.batch():
        observe.refresh(Cluster.objects.get(pk=cluster.pk))
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.DEGRADED
    assert cluster.status_message.startswith("Stuck on the platform side")


# --- never persist platform defaults ------------------------------------------------------------


@V16_ONLY
def test_a_put_after_a_get_of_the_defaulted_object_carries_no_talos(engine):
    cluster = running(engine)
    shown = get_gateway().get_cluster(NS, "demo")
    assert shown["spec"]["talos"]["version"] and "images" in shown["spec"]  # GET has defaults
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=5)
    settled(engine, cluster)
    stored = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert "talos" not in stored and "images" not in stored and "nodeHealthCheck" not in stored
    assert stored["nodeGroups"]["md0"]["maxReplicas"] == 5
    # The gateway's replace keeps only the object's metadata from its GET, never its spec.
    manifest = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
                "metadata": {"name": "demo", "namespace": NS},
                "spec": dialects.v16().render_spec(cluster.to_spec())}
    get_gateway().replace_cluster(manifest)
    assert "talos" not in engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]


# --- an unknown release stops every write ---------------------------------------------------------


def unknown_schema(schema: dict) -> dict:
    """A release the portal does not know: the node disk renamed again."""
    changed = copy.deepcopy(schema)
    group_schema = changed["properties"]["nodeGroups"]["additionalProperties"]
    group_schema["properties"]["systemDisk"] = group_schema["properties"].pop("diskSize")
    group_schema["required"] = ["systemDisk" if k == "diskSize" else k
                                for k in group_schema["required"]]
    return changed


@V16_ONLY
def test_an_unknown_schema_stops_writes_while_reads_and_billing_go_on(engine):
    cluster = running(engine)
    other = engine.create(cluster_spec(name="other"))  # queued, not sent yet
    sent = engine.writes()
    engine.platform.publish_schema(unknown_schema(engine.platform.schema))
    engine.observe()  # the watcher sees the ApplicationDefinition change

    release = platform_release.current()
    assert not release.known
    message = "The platform runs a release this portal does not know yet; changes are paused."
    for action, args in ((actions.do_create_cluster, (cluster_spec(name="new"),)),
                         (actions.do_scale_node_group, ("demo", "md0")),
                         (actions.do_delete_cluster, ("demo",))):
        kwargs = {"min_replicas": 1, "max_replicas": 5} if action is \
            actions.do_scale_node_group else {"confirm": "demo"} if action is \
            actions.do_delete_cluster else {}
        with pytest.raises(platform_release.PlatformReleaseUnknown) as error:
            engine.act(action, *args, **kwargs)
        assert error.value.messages == [message]
    # What was queued before is not sent either: it waits, saying why.
    engine.outbox.run("clusters.apply_operation")
    waiting = engine.operation(other)
    assert waiting.is_active and waiting.submitted_at is None
    assert waiting.step("submit")["state"] == "pending"
    assert waiting.step("validate")["detail"].startswith(f"{message} Trying again in ")
    assert engine.writes() == sent

    # Reads and metering go on.
    engine.platform.set_demand(NS, "demo", "md0", 2)
    engine.platform.advance(2.0)
    engine.observe()
    assert live_groups(cluster)["md0"].ready_nodes == 2
    assert UsageSegment.objects.get(cluster=cluster, sku="node.u1.large",
                                    end__isnull=True).quantity == 2


@V16_ONLY
def test_the_api_answers_a_paused_write_as_a_problem(engine, client_for, owner):
    running(engine)
    engine.platform.publish_schema(unknown_schema(engine.platform.schema))
    engine.observe()
    from rest_framework.test import APIClient

    client = APIClient()
    client.force_authenticate(owner)
    response = client.post(f"/api/v1/tenants/{engine.ctx.tenant.slug}/clusters/demo/upgrade/",
                           {"version": "v1.35"}, format="json")
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "platform_release_unknown"
    assert body["type"].endswith(":platform-release-unknown")
    assert body["detail"] == ("The platform runs a release this portal does not know yet; "
                              "changes are paused.")
    assert response["Retry-After"]
    assert client.get(f"/api/v1/tenants/{engine.ctx.tenant.slug}/clusters/demo/").status_code \
        == 200


# --- a live platform upgrade ----------------------------------------------------------------------


@V13_ONLY
def test_a_live_upgrade_from_v13_to_v16_is_followed_and_nothing_is_recreated(engine):
    platform = engine.platform
    old = running(engine, cluster_spec(name="old", version="v1.30", groups=(
        group("general", roles=("ingress-nginx",)),)))
    demo = running(engine, cluster_spec(name="demo", version="v1.34"))
    uids = {name: platform.get_object("Kubernetes", NS, name)["metadata"]["uid"]
            for name in ("old", "demo")}
    writes = engine.writes()
    assert platform_release.current().dialect.name == "v1.3"
    assert old.control_plane_preset == "c1.medium"  # stored under the portal's own name

    platform.upgrade("1.6.2")
    engine.observe()  # the watcher: the schema changed, every cluster read again
    for _ in range(4):
        platform.advance(1.0)
        engine.observe()

    assert platform_release.current().dialect.name == "v1.6"
    assert engine.writes() == writes  # the portal wrote nothing: followed only
    assert {name: platform.get_object("Kubernetes", NS, name)["metadata"]["uid"]
            for name in ("old", "demo")} == uids  # nothing re-created
    old.refresh_from_db()
    demo.refresh_from_db()
    assert old.version == "v1.31" and demo.version == "v1.34"  # migration 46
    assert sorted(live_groups(old)) == ["general", "md0"]  # migration 47's md0, now in the rows
    md0 = live_groups(old)["md0"]
    assert (md0.instance_type, md0.min_replicas, md0.max_replicas, md0.disk_gib) == (
        "u1.medium", 0, 10, 20)
    said = sorted(ClusterEvent.objects.filter(cluster=old, reason="PlatformUpgrade")
                  .values_list("message", flat=True))
    assert len(said) == 2 and said[0].startswith("Kubernetes v1.30 → v1.31")
    assert said[1].startswith("Node group md0 (0–10 nodes of u1.medium) added by the platform")
    # Rows and objects agree, in the new contract.
    v16 = dialects.v16()
    for cluster in (old, demo):
        shown = platform.get_object("Kubernetes", NS, cluster.name)
        assert v16.render_spec(v16.spec_from_platform(shown)) == v16.render_spec(
            cluster.to_spec())
        assert cluster.phase == Cluster.Phase.RUNNING, cluster.status_message
    # Observing again changes nothing.
    assert engine.observe() == 0
    assert ClusterEvent.objects.filter(reason="PlatformUpgrade").count() == 2

    # And the portal now writes v1.6: a scale of the migrated cluster.
    engine.act(actions.do_scale_node_group, "old", "general", min_replicas=1, max_replicas=4)
    settled(engine, old)
    stored = platform.raw_object("Kubernetes", NS, "old")["spec"]
    general = stored["nodeGroups"]["general"]
    assert general["diskSize"] == "30Gi" and "ephemeralStorage" not in general
    assert general["maxReplicas"] == 4 and "talos" not in stored
    assert stored["version"] == "v1.31"
    assert platform.get_object("Kubernetes", NS, "old")["metadata"]["uid"] == uids["old"]


@V16_ONLY
def test_tenants_and_staff_are_told_beside_the_forms_and_on_the_console(engine, client_for,
                                                                       member):
    from tests.clusters.ui import by_testid
    from tests.factories import UserFactory
    from tests.portal.conftest import give_totp

    running(engine)
    message = "The platform runs a release this portal does not know yet; changes are paused."
    engine.platform.publish_schema(unknown_schema(engine.platform.schema))
    engine.observe()
    slug = engine.ctx.tenant.slug
    client = client_for(member)

    page = client.get(f"/t/{slug}/clusters/-/new/")
    assert by_testid(page, "release-unknown") == [message]
    refused = client.post(f"/t/{slug}/clusters/-/new/", {"name": "new", "groups": ["0"],
                                                         "ng-0-name": "md0"})
    assert refused.status_code == 422
    assert by_testid(refused, "release-unknown") == [message]
    assert not Cluster.objects.filter(name="new").exists()
    assert by_testid(client.get(f"/t/{slug}/clusters/demo/"), "release-unknown") == [message]

    staff = UserFactory(is_staff=True, is_superuser=True)
    give_totp(staff)
    console = client_for(staff).get("/staff/")
    (said,) = by_testid(console, "platform-release")
    assert said.startswith(message) and "reads and billing go on" in said
