"""Actions: who may do what, the words a person sees, and what is written and enqueued."""

from __future__ import annotations

import dataclasses
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404
from django.utils import timezone

from clusters import actions
from clusters.models import Cluster, Operation, OutboxEntry
from portal.audit import Actor
from portal.models import AuditEntry, Membership
from portal.tenancy import TenantContext
from tests.clusters.conftest import cluster_spec, group

pytestmark = pytest.mark.django_db


def context_of(user, tenant) -> TenantContext:
    membership = Membership.objects.get(user=user, tenant=tenant)
    return TenantContext(tenant, membership.role, membership)


def test_a_viewer_may_not_create_and_nothing_is_written(engine, viewer, tenant):
    with pytest.raises(PermissionDenied):
        actions.do_create_cluster(Actor(user=viewer), context_of(viewer, tenant), cluster_spec())
    assert not Cluster.objects.exists() and engine.outbox.queued == []


def test_an_impersonating_staff_member_changes_nothing(engine, tenant, owner):
    with pytest.raises(PermissionDenied) as error:
        actions.do_create_cluster(Actor(user=owner, read_only=True), engine.ctx, cluster_spec())
    assert str(error.value) == "This is a read-only view."


def test_another_tenants_cluster_looks_missing(engine, outsider, other_tenant):
    engine.create()
    with pytest.raises(Http404):
        actions.do_scale_node_group(Actor(user=outsider), context_of(outsider, other_tenant),
                                    "demo", "md0", min_replicas=1, max_replicas=2)


def test_create_writes_rows_operation_and_audit_and_enqueues_only_on_commit(engine):
    with engine.capture(execute=False) as callbacks:
        cluster = actions.do_create_cluster(engine.actor, engine.ctx, cluster_spec())
        assert engine.outbox.queued == []  # nothing leaves before the commit
    assert len(callbacks) == 2  # the task, the live push
    for callback in callbacks:
        callback()
    assert engine.outbox.names() == ["clusters.apply_operation"]
    assert engine.pushed == [cluster.pk]
    operation = cluster.operations.get()
    # The intent was a row of the same transaction, handed to the broker after the commit.
    assert OutboxEntry.objects.filter(operation=operation, sent_at__isnull=False).count() == 1
    assert operation.kind == Operation.Kind.CREATE and operation.state == Operation.State.QUEUED
    assert operation.desired_spec["spec"]["nodeGroups"]["md0"]["maxReplicas"] == 3
    assert [s["key"] for s in operation.steps] == [
        "validate", "submit", "control_plane", "kubeconfig", "workers"]
    assert AuditEntry.objects.filter(verb="cluster.create").count() == 1
    assert cluster.status_message == "Queued: waiting for a worker."


def test_a_duplicate_name_is_refused_in_words(engine):
    engine.create()
    with pytest.raises(ValidationError) as error:
        engine.create()
    assert error.value.message_dict["name"] == ["A cluster with this name already exists."]


def test_names_follow_the_platform_rules(engine):
    with pytest.raises(ValidationError) as error:
        engine.create(cluster_spec("a" * 43))
    assert "42" in " ".join(error.value.message_dict["name"])
    with pytest.raises(ValidationError) as error:
        engine.create(cluster_spec("a" * 30, groups=(group("workers" + "x" * 6),)))
    assert "39" in " ".join(m for ms in error.value.message_dict.values() for m in ms)


def test_a_change_to_nothing_says_so(engine):
    engine.create()
    engine.outbox.clear()
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=3)
    assert error.value.messages == ["Nothing to change: this is the current configuration."]


def test_upgrade_to_the_current_version_is_refused_in_words(engine):
    engine.create()
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_upgrade_cluster, "demo", "v1.34")
    assert error.value.message_dict["version"] == ["The cluster already runs v1.34."]


def test_cancelling_a_queued_create_forgets_the_cluster(engine):
    cluster = engine.create()
    operation = cluster.operations.get()
    engine.act(actions.do_cancel_operation, operation.pk)
    cluster.refresh_from_db()
    operation.refresh_from_db()
    assert operation.state == Operation.State.CANCELLED
    assert cluster.deleted_at is not None and cluster.phase == Cluster.Phase.DELETED
    engine.outbox.run()  # the queued message arrives after all: it does nothing
    assert engine.writes() == []


def test_cancelling_a_queued_change_puts_the_rows_back(engine):
    cluster = engine.create()
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    scale = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=2,
                       max_replicas=5)
    assert cluster.node_groups.get().max_replicas == 5
    engine.act(actions.do_cancel_operation, scale.pk)
    md0 = cluster.node_groups.get()
    assert (md0.min_replicas, md0.max_replicas) == (1, 3)
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.RUNNING
    engine.outbox.run()
    assert engine.writes() == ["POST 201"]


def test_an_operation_being_sent_cannot_be_cancelled(engine):
    cluster = engine.create()
    Operation.objects.filter(cluster=cluster).update(
        state=Operation.State.RUNNING, lease_until=timezone.now() + timedelta(minutes=1))
    operation = cluster.operations.get()
    assert not operation.can_cancel
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_cancel_operation, operation.pk)
    assert error.value.code == "not_cancellable"


def test_removing_the_last_node_group_is_refused(engine):
    engine.create()
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_remove_node_group, "demo", "md0")
    assert error.value.message_dict["node_group"] == [
        "A cluster needs at least one node group; delete the cluster instead."]


def test_delete_needs_the_name_typed_and_supersedes_a_queued_change(engine):
    cluster = engine.create()
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_delete_cluster, "demo", confirm="dmeo")
    assert error.value.message_dict["confirm"] == ["Type the cluster name exactly to confirm."]
    scale = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1,
                       max_replicas=4)
    delete = engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    scale.refresh_from_db()
    assert scale.state == Operation.State.CANCELLED
    assert scale.error_message == "Superseded by the deletion."
    assert delete.kind == Operation.Kind.DELETE
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    assert error.value.messages == ["This cluster is already being deleted."]


def test_only_failed_or_cancelled_operations_can_be_retried(engine):
    cluster = engine.create()
    operation = engine.settle(cluster)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_retry_operation, operation.pk)
    assert error.value.code == "not_retryable"


def test_a_member_may_change_but_not_delete(engine, member, tenant):
    engine.create()
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    actor, ctx = Actor(user=member), context_of(member, tenant)
    with engine.capture(execute=True):
        actions.do_scale_node_group(actor, ctx, "demo", "md0", min_replicas=1, max_replicas=4)
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    with pytest.raises(PermissionDenied):
        actions.do_delete_cluster(actor, ctx, "demo", confirm="demo")


def test_only_owners_and_admins_choose_who_gets_into_a_cluster(engine, member, tenant, owner):
    from cozystack.specs import OidcUserSpec

    engine.create()
    users = (OidcUserSpec(owner.email, "admin"),)
    spec = dataclasses.replace(cluster_spec("other"), oidc_users=users)
    with pytest.raises(PermissionDenied) as error:
        actions.do_create_cluster(Actor(user=member), context_of(member, tenant), spec)
    assert "Only owners and admins" in str(error.value)
    with pytest.raises(PermissionDenied):
        actions.do_set_cluster_access(Actor(user=member), context_of(member, tenant), "demo",
                                      users)
    assert Cluster.objects.count() == 1
    assert Cluster.objects.get().operations.count() == 1
