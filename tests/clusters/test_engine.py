"""The provisioning engine against the simulated platform: actions → tasks → platform →
observation, step by step on a ManualClock, through the real ``kubernetes`` client.

Celery's delivery is replaced by ``task_outbox`` (tasks run in this process, in order); the
platform and the gateway are real.
"""

from __future__ import annotations

import copy
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError

from billing.models import UsageSegment
from clusters import actions, tasks
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from cozystack.simulator import Fault
from cozystack.specs import AddonSpec
from tests.clusters.conftest import NS, cluster_spec, group, point_portal_at
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    """These tests follow Cozystack v1.3.6's behaviour (two machines per new group, complete
    specs); ``test_engine_releases.py`` runs the engine against each release."""
    return simulated_platform_factory(release="1.3.6")


def groups_by_name(cluster: Cluster) -> dict[str, NodeGroup]:
    return {g.name: g for g in cluster.node_groups.filter(removed_at__isnull=True)}


def running(engine, spec=None) -> Cluster:
    cluster = engine.create(spec)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    return cluster


# --- create ------------------------------------------------------------------------------------


def test_create_reaches_running_and_node_counts_follow_the_autoscaler(engine):
    platform = engine.platform
    cluster = engine.create()
    assert engine.outbox.names() == ["clusters.apply_operation"]
    assert cluster.phase == Cluster.Phase.CREATING

    engine.outbox.run()
    raw = platform.raw_object("Kubernetes", NS, "demo")
    assert raw["spec"]["nodeGroups"]["md0"]["resources"] == {}  # gotcha 4
    assert raw["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "kube-portal"
    operation = engine.operation(cluster)
    assert operation.submitted_at is not None
    assert engine.outbox.names() == ["clusters.poll_operation"]

    platform.advance(1.0)  # control plane up, kubeconfig issued, two machines (gotcha 2)
    engine.outbox.run()
    cluster.refresh_from_db()
    md0 = groups_by_name(cluster)["md0"]
    assert cluster.platform_ready and cluster.kubeconfig_ready
    assert (md0.desired_nodes, md0.observed_nodes, md0.ready_nodes) == (2, 2, 0)
    assert cluster.phase == Cluster.Phase.CREATING
    assert "control plane ready" in cluster.status_message

    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED
    assert [s["state"] for s in operation.steps] == ["done"] * 5
    md0 = groups_by_name(cluster)["md0"]
    assert (md0.desired_nodes, md0.observed_nodes, md0.ready_nodes) == (1, 1, 1)
    assert cluster.phase == Cluster.Phase.RUNNING
    assert cluster.status_message == "Running: 1 nodes ready."

    platform.set_demand(NS, "demo", "md0", 3)
    platform.advance(2.0)
    assert engine.observe() > 0
    md0 = groups_by_name(cluster)["md0"]
    assert (md0.desired_nodes, md0.observed_nodes, md0.ready_nodes) == (3, 3, 3)
    platform.set_demand(NS, "demo", "md0", 10)  # clamped to max
    platform.advance(2.0)
    engine.observe()
    assert groups_by_name(cluster)["md0"].ready_nodes == 3
    meter = UsageSegment.objects.get(cluster=cluster, sku="node.u1.large", end__isnull=True)
    assert meter.quantity == 3
    assert engine.observe() == 0  # nothing new: nothing written


def test_timeline_says_what_the_portal_did_and_what_the_platform_reported(engine):
    cluster = running(engine)
    reasons = list(ClusterEvent.objects.filter(cluster=cluster).order_by("at", "id")
                   .values_list("reason", flat=True))
    assert reasons[0] == "operation.create"
    assert "operation.submitted" in reasons
    assert "InstallSucceeded" in reasons
    assert "KubeconfigIssued" in reasons
    assert reasons[-1] == "operation.create.done"


# --- changes -----------------------------------------------------------------------------------


def test_scale_changes_the_autoscaler_limits_without_replacing_nodes(engine):
    cluster = running(engine)
    machines_before = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")
    operation = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=2,
                           max_replicas=4)
    assert operation.kind == Operation.Kind.SCALE
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    md = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")
    annotations = md["metadata"]["annotations"]
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] == "2"
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "4"
    assert md["spec"]["template"] == machines_before["spec"]["template"]
    md0 = groups_by_name(cluster)["md0"]
    assert (md0.min_replicas, md0.max_replicas, md0.ready_nodes) == (2, 4, 2)
    assert cluster.phase == Cluster.Phase.RUNNING


def test_upgrade_moves_one_minor_and_replaces_the_nodes(engine):
    cluster = running(engine, cluster_spec(version="v1.33"))
    template = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")[
        "spec"]["template"]["spec"]
    operation = engine.act(actions.do_upgrade_cluster, "demo", "v1.34")
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert [s["key"] for s in operation.steps] == ["validate", "submit", "upgrade", "workers"]
    assert engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.34"
    upgraded = engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-md0")[
        "spec"]["template"]["spec"]
    assert upgraded["version"].startswith("v1.34.") and template["version"].startswith("v1.33.")
    md0 = groups_by_name(cluster)["md0"]
    assert md0.updated_nodes == md0.ready_nodes == 1
    assert cluster.version == "v1.34" and cluster.phase == Cluster.Phase.RUNNING


def test_an_upgrade_that_skips_a_minor_is_refused_before_anything_is_sent(engine):
    cluster = running(engine, cluster_spec(version="v1.33"))
    sent = engine.writes()
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_upgrade_cluster, "demo", "v1.35")
    # The platform's rule, worded once (cozystack.rules): the page's preview says the same.
    assert error.value.message_dict["version"] == [
        "Upgrade one minor version at a time: from v1.33 the next version is v1.34."]
    assert engine.writes() == sent
    assert not cluster.operations.filter(kind=Operation.Kind.UPGRADE).exists()


def test_an_upgrade_the_platform_refuses_fails_with_a_classified_message(engine):
    cluster = running(engine, cluster_spec(version="v1.33"))
    # The portal's record drifted (say a failed upgrade left it ahead of the platform): the
    # portal allows v1.34 → v1.35, Kamaji sees v1.33 → v1.35 and refuses.
    Cluster.objects.filter(pk=cluster.pk).update(version="v1.34")
    engine.act(actions.do_upgrade_cluster, "demo", "v1.35")
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.INVALID_SPEC
    assert operation.error_message.startswith("The platform refused the version change")
    assert "one minor at a time" in operation.error_message
    assert operation.step("upgrade")["state"] == "failed"
    assert "admission webhook" in operation.step("upgrade")["detail"]  # the platform's words
    assert cluster.phase == Cluster.Phase.FAILED


def test_an_instance_type_the_platform_does_not_offer_fails_with_words(
        engine, simulated_platform_factory, settings):
    narrow = simulated_platform_factory(release="1.3.6", instance_types=["u1.medium"])
    point_portal_at(narrow, settings)
    engine.platform = narrow
    cluster = engine.create()
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.INVALID_SPEC
    assert operation.error_message == (
        "The platform rejected instance type u1.large: it is not offered there. Choose another "
        "instance type.")
    assert cluster.phase == Cluster.Phase.FAILED
    assert "Specified instancetype not exists in cluster: u1.large" in cluster.last_error


def test_addons_are_switched_on_the_platform(engine):
    cluster = running(engine)
    addons = (AddonSpec(key="certManager", enabled=True),
              AddonSpec(key="ingressNginx", enabled=True, hosts=("app.example.com",)))
    engine.act(actions.do_set_addons, "demo", addons)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    raw = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["addons"]
    assert raw["certManager"] == {"enabled": True, "valuesOverride": {}}
    assert raw["ingressNginx"]["hosts"] == ["app.example.com"]
    assert cluster.addons["certManager"]["enabled"] is True


def test_a_node_group_is_added_then_removed(engine):
    cluster = running(engine)
    engine.act(actions.do_add_node_group, "demo",
               group("batch", instance_type="u1.medium", min_replicas=2, max_replicas=2,
                     roles=()))
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    batch = groups_by_name(cluster)["batch"]
    assert (batch.observed_nodes, batch.ready_nodes) == (2, 2)
    assert UsageSegment.objects.filter(node_group=batch, end__isnull=True).exists()

    engine.act(actions.do_remove_node_group, "demo", "batch")
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert engine.platform.get_object("MachineDeployment", NS, "kubernetes-demo-batch") is None
    batch.refresh_from_db()
    assert batch.removed_at is not None
    assert (batch.observed_nodes, batch.observed_phase) == (0, "Deleted")
    assert not UsageSegment.objects.filter(node_group=batch, end__isnull=True).exists()
    assert set(groups_by_name(cluster)) == {"md0"}


def test_delete_terminates_then_the_cluster_is_gone_and_its_row_kept(engine):
    cluster = running(engine)
    engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.DELETING
    engine.outbox.run()  # DELETE sent
    engine.outbox.run()  # first poll: terminating
    cluster.refresh_from_db()
    assert cluster.platform_terminating and cluster.phase == Cluster.Phase.DELETING
    assert cluster.deleted_at is None
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED
    assert engine.platform.get_object("Kubernetes", NS, "demo") is None
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.deleted_at is not None and cluster.phase == Cluster.Phase.DELETED
    assert not cluster.kubeconfig_ready  # the secret went with the cluster
    assert not cluster.node_groups.filter(removed_at__isnull=True).exists()
    assert not UsageSegment.objects.filter(cluster=cluster, end__isnull=True).exists()
    assert cluster.node_groups.count() == 1 and cluster.operations.count() == 2  # history
    # The name is free again.
    again = engine.create()
    assert again.pk != cluster.pk


# --- failures ----------------------------------------------------------------------------------


def test_platform_down_during_create_waits_retries_and_succeeds_when_it_returns(engine):
    engine.platform.set_down(True)
    cluster = engine.create()
    engine.outbox.run()
    operation = engine.operation(cluster)
    assert operation.state == Operation.State.RUNNING and operation.submitted_at is None
    assert "unreachable" in operation.step("validate")["detail"]
    [retry] = engine.outbox.queued
    assert retry.name == "clusters.apply_operation" and retry.kwargs["token"]
    assert 0.5 <= retry.countdown <= 1.0
    assert not operation.can_cancel or operation.lease_token  # waiting, not sending

    # A duplicate delivery (redelivery, resync) may not run beside the scheduled retry.
    tasks.apply_operation.run(operation.pk)
    assert engine.operation(cluster).attempts == 1

    engine.outbox.run()  # still down: retried again, later
    [retry] = engine.outbox.queued
    assert engine.operation(cluster).attempts == 2
    engine.platform.set_down(False)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED
    assert operation.attempts == 3
    assert len(engine.platform.objects("Kubernetes", NS)) == 1
    assert cluster.phase == Cluster.Phase.RUNNING


def test_a_platform_that_stays_down_fails_the_operation_at_its_deadline(engine):
    engine.platform.set_down(True)
    cluster = engine.create()
    Operation.objects.filter(cluster=cluster).update(deadline_at=cluster.created_at)
    engine.outbox.run()
    operation = engine.operation(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.PLATFORM_UNAVAILABLE
    assert operation.error_message.startswith("The platform stayed unreachable until the "
                                              "deadline")
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.FAILED


def test_staff_are_told_of_a_platform_failure_and_only_of_those(
        engine, mailoutbox, django_capture_on_commit_callbacks):
    UserFactory(email="ops@example.org", is_staff=True)
    UserFactory(email="tenant-user@example.org")
    engine.platform.set_down(True)
    cluster = engine.create()
    Operation.objects.filter(cluster=cluster).update(deadline_at=cluster.created_at)
    with django_capture_on_commit_callbacks(execute=True):
        engine.outbox.run()
    assert [m.to for m in mailoutbox] == [["ops@example.org"]]
    mail = mailoutbox[0]
    assert mail.subject == f"[Portal] Platform unreachable: Create of {cluster.tenant.slug}/demo"
    assert "The platform stayed unreachable until the deadline" in mail.body
    assert "/staff/" in mail.body

    # A failure the tenant must fix (a version the platform refuses) alerts nobody.
    mailoutbox.clear()
    engine.platform.set_down(False)
    other = running(engine, cluster_spec("other", version="v1.33"))
    Cluster.objects.filter(pk=other.pk).update(version="v1.34")
    engine.act(actions.do_upgrade_cluster, "other", "v1.35")
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.settle(other).error_class == Operation.ErrorClass.INVALID_SPEC
    assert mailoutbox == []

    # A failure the platform reports on its own (a Helm error nobody in the tenant caused).
    engine.act(actions.do_scale_node_group, "other", "md0", min_replicas=1, max_replicas=4)
    engine.outbox.run("clusters.apply_operation")
    engine.platform.fail_cluster(NS, "other")
    with django_capture_on_commit_callbacks(execute=True):
        assert engine.settle(other).error_class == Operation.ErrorClass.PLATFORM_ERROR
    assert [m.subject for m in mailoutbox] == [
        f"[Portal] Platform error: Scale of {other.tenant.slug}/other"]


def test_a_poll_finishes_an_operation_whose_state_the_watcher_applied_before_it_was_sent(
        engine):
    from clusters import watcher
    from cozystack.gateway import get_gateway

    cluster = engine.create()
    engine.outbox.run("clusters.apply_operation")
    operation = engine.operation(cluster)
    sent_at = operation.submitted_at
    # The worker's POST landed but its answer is not recorded yet, while the platform comes
    # up and the watcher applies all of it.
    Operation.objects.filter(pk=operation.pk).update(submitted_at=None)
    engine.platform.advance(5.0)
    watcher.sync_all(get_gateway())
    cluster.refresh_from_db()
    assert cluster.platform_ready and cluster.phase == Cluster.Phase.CREATING
    Operation.objects.filter(pk=operation.pk).update(submitted_at=sent_at)

    engine.outbox.run("clusters.poll_operation")  # observes nothing new, still weighs it

    operation.refresh_from_db()
    assert operation.state == Operation.State.SUCCEEDED, operation.steps
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.RUNNING


def test_a_conflict_on_replace_is_retried_and_the_change_lands(engine):
    cluster = running(engine)
    engine.platform.faults.add(Fault(method="PUT", path="kuberneteses/demo", status=409,
                                     times=1))
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=5)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert engine.writes()[-2:] == ["PUT 409", "PUT 200"]
    assert engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["nodeGroups"]["md0"][
        "maxReplicas"] == 5


def test_a_spec_the_live_schema_rejects_is_never_sent(engine):
    cluster = running(engine)
    sent = engine.writes()
    changed = copy.deepcopy(engine.platform.schema)
    changed["properties"]["version"]["enum"] = ["v1.35"]  # the platform dropped v1.34
    engine.platform.publish_schema(changed)
    # The action validated against the cached schema (a web request must not wait); the task
    # checks the live one before sending anything.
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=4)
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.INVALID_SPEC
    assert operation.error_message == (
        "Kubernetes v1.34 is no longer offered by the platform; upgrade to v1.35 first.")
    assert engine.writes() == sent  # no POST, no PUT
    # The desired rows went back to what the platform runs.
    assert groups_by_name(cluster)["md0"].max_replicas == 3
    assert cluster.phase == Cluster.Phase.RUNNING


def test_an_invalid_spec_is_refused_by_the_action_with_the_field_in_words(engine):
    spec = cluster_spec(groups=(group(min_replicas=4, max_replicas=2),))
    with pytest.raises(ValidationError) as error:
        engine.create(spec)
    messages = error.value.message_dict
    assert any("node_groups[0]" in field for field in messages), messages
    text = " ".join(m for ms in messages.values() for m in ms)
    assert "minimum" in text.lower() and "maximum" in text.lower()
    assert engine.writes() == []
    assert not Cluster.objects.exists()


def test_a_create_that_fails_permanently_leaves_no_object_on_the_platform(engine, settings):
    from cozystack.gateway import reset_gateway
    from tests.fixtures.processes import eventually

    settings.PLATFORM_REQUEST_TIMEOUT = 0.3
    reset_gateway()
    platform = engine.platform
    # The first POST lands on the platform but its answer never arrives in time...
    platform.faults.add(Fault(method="POST", path="kuberneteses", latency=0.8, times=1))
    cluster = engine.create()
    engine.outbox.run()
    eventually(lambda: platform.objects("Kubernetes", NS), timeout=5)
    operation = engine.operation(cluster)
    assert operation.submitted_at is None and engine.outbox.names() == [
        "clusters.apply_operation"]
    # ...and the retry is refused for good.
    platform.faults.add(Fault(method="POST", path="kuberneteses", status=403))
    engine.outbox.run()
    operation = engine.operation(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.PLATFORM_ERROR
    assert "platform credentials" in operation.error_message
    platform.advance(1.0)
    assert platform.objects("Kubernetes", NS) == []
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.FAILED and cluster.deleted_at is None
    assert cluster.events.filter(reason="cleanup").exists()


def test_an_operation_past_its_deadline_fails_saying_what_is_stuck(engine):
    cluster = engine.create()
    engine.outbox.run()
    engine.platform.advance(1.0)  # control plane up, workers not ready yet
    engine.outbox.run()
    Operation.objects.filter(cluster=cluster).update(deadline_at=cluster.created_at)
    engine.outbox.run()
    operation = engine.operation(cluster)
    assert operation.state == Operation.State.FAILED
    assert operation.error_class == Operation.ErrorClass.TIMEOUT
    assert operation.error_message == (
        "Stuck at “Worker nodes ready” for too long: 0 of 2 workers ready")
    assert engine.outbox.queued == []


# --- repeated deliveries -----------------------------------------------------------------------


def test_apply_delivered_twice_sends_once(engine, settings):
    cluster = engine.create()
    [message] = engine.outbox.take()
    tasks.apply_operation.run(*message.args)
    tasks.apply_operation.run(*message.args)
    assert engine.writes() == ["POST 201"]
    assert engine.outbox.names() == ["clusters.poll_operation", "clusters.poll_operation"]
    # Two poll chains would double the load: the second one ends at its first step.
    settings.OPERATION_POLL_SECONDS = 10
    engine.outbox.run()
    assert engine.outbox.names() == ["clusters.poll_operation"]
    settings.OPERATION_POLL_SECONDS = 0
    Operation.objects.filter(cluster=cluster).update(next_poll_at=None)
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED


def test_a_redelivery_after_a_crash_that_followed_the_post_reapplies_the_same_spec(engine):
    cluster = engine.create()
    engine.outbox.run()
    # The worker died after the POST landed and before it recorded it: nothing was written
    # on our side, the lease ran out.
    operation = engine.operation(cluster)
    initial = [dict(s, state="pending", detail="", started_at=None, finished_at=None)
               for s in operation.steps]
    Operation.objects.filter(pk=operation.pk).update(submitted_at=None, lease_until=None,
                                                     steps=initial)
    engine.outbox.clear()
    tasks.apply_operation.run(operation.pk)
    assert engine.writes() == ["POST 201", "POST 409", "PUT 200"]
    obj = engine.platform.get_object("Kubernetes", NS, "demo")
    assert obj["metadata"]["generation"] == 1  # the same spec: nothing moved on the platform
    assert len(engine.platform.objects("Kubernetes", NS)) == 1
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED
    assert operation.attempts == 2


def test_resync_requeues_an_operation_nobody_holds(engine):
    cluster = engine.create()
    engine.outbox.clear()  # the message was lost
    Operation.objects.filter(cluster=cluster).update(
        created_at=cluster.created_at - timedelta(minutes=5))
    tasks.resync.run()
    assert engine.outbox.names() == ["clusters.apply_operation"]
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED


# --- one at a time -----------------------------------------------------------------------------


def test_a_second_change_while_one_runs_gets_a_clear_message(engine):
    cluster = running(engine)
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=4)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_upgrade_cluster, "demo", "v1.35")
    assert error.value.code == "busy"
    assert error.value.messages == [
        "Another change to this cluster is still in progress. Wait for it to finish, or "
        "cancel it, then try again."]
    assert cluster.operations.filter(state__in=Operation.ACTIVE_STATES).count() == 1


def test_a_failed_change_can_be_retried(engine):
    cluster = running(engine)
    engine.platform.faults.add(Fault(method="PUT", path="kuberneteses/demo", status=403,
                                     times=1))
    failed = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1,
                        max_replicas=4)
    assert engine.settle(cluster).state == Operation.State.FAILED
    assert groups_by_name(cluster)["md0"].max_replicas == 3  # never reached the platform
    retry = engine.act(actions.do_retry_operation, failed.pk)
    assert retry.params["retry_of"] == failed.pk
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    assert groups_by_name(cluster)["md0"].max_replicas == 4

