"""Actions of the detail page: each shows its consequences first and runs only when confirmed;
roles decide who may; the server refuses what the page does not offer."""

from __future__ import annotations

import pytest

from clusters.models import Cluster, Operation
from portal.models import AuditEntry
from tests.clusters.ui import (
    by_testid,
    field_errors,
    make_cluster,
    make_operation,
    offline_platform,
    text_of,
    url,
)

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]
HTMX = {"HX-Request": "true"}


@pytest.fixture
def cluster(tenant, owner):
    cluster = make_cluster(tenant, groups=[{"name": "md0", "observed_nodes": 3,
                                             "ready_nodes": 3, "desired_nodes": 3}])
    make_operation(cluster)
    return cluster


def scale_url(tenant, group="md0"):
    return url("group_scale", tenant, cluster_name="demo", group_name=group)


def test_scaling_first_states_the_consequence_and_changes_nothing(client_for, member, tenant,
                                                                   cluster):
    response = client_for(member).post(scale_url(tenant), {
        "scale-md0-min_replicas": "2", "scale-md0-max_replicas": "6"}, headers=HTMX)

    assert response.status_code == 200
    confirm = " ".join(by_testid(response, "confirm-scale-md0"))
    assert "node group md0: min/max 1–3 → 2–6: autoscaler limits only, no replacement" in confirm
    assert cluster.operations.count() == 1
    assert cluster.node_groups.get().max_replicas == 3


def test_confirmed_scaling_queues_the_operation_and_says_so(client_for, member, tenant, cluster):
    response = client_for(member).post(scale_url(tenant), {
        "scale-md0-min_replicas": "2", "scale-md0-max_replicas": "6",
        "scale-md0-confirm": "True"}, headers=HTMX)

    assert response.status_code == 200
    assert by_testid(response, "action-done") == ["Scaling of md0 to 2–6 nodes requested."]
    operation = cluster.operations.order_by("-created_at").first()
    assert operation.kind == Operation.Kind.SCALE and operation.is_active
    group = cluster.node_groups.get()
    assert (group.min_replicas, group.max_replicas) == (2, 6)
    # The other regions come along out of band, so the page shows the new state at once.
    html = response.content.decode()
    assert ' id="cluster-operation" data-stamp=' in html
    assert "Scale" in text_of(html, "cluster-operation")
    assert AuditEntry.objects.filter(verb="cluster.scale", actor=member).exists()


def test_without_javascript_a_confirmed_action_redirects_back_with_a_message(
        client_for, member, tenant, cluster):
    response = client_for(member).post(scale_url(tenant), {
        "scale-md0-min_replicas": "1", "scale-md0-max_replicas": "5",
        "scale-md0-confirm": "True"}, follow=True)

    assert response.redirect_chain[-1][0] == url("detail", tenant, cluster_name="demo")
    assert "Scaling of md0 to 1–5 nodes requested." in response.content.decode()


def test_min_above_max_is_refused_beside_the_field(client_for, member, tenant, cluster):
    response = client_for(member).post(scale_url(tenant), {
        "scale-md0-min_replicas": "4", "scale-md0-max_replicas": "2"}, headers=HTMX)

    assert response.status_code == 422
    assert field_errors(response, "scale-md0-min_replicas") == [
        "The minimum number of nodes (4) cannot be more than the maximum (2)."]


def test_changing_the_instance_type_warns_that_every_node_is_replaced(client_for, member,
                                                                      tenant, cluster):
    data = {"edit-md0-instance_type": "u1.large", "edit-md0-min_replicas": "1",
            "edit-md0-max_replicas": "3", "edit-md0-disk_gib": "50", "edit-md0-ingress": "on",
            "edit-md0-gpu_model": "", "edit-md0-gpu_count": "1"}
    client = client_for(member)
    first = client.post(url("group_update", tenant, cluster_name="demo", group_name="md0"), data,
                        headers=HTMX)

    confirm = " ".join(by_testid(first, "confirm-edit-md0"))
    assert "all 3 nodes replaced (instance type u1.medium → u1.large); up to 6 nodes during " \
           "the change" in confirm
    assert "Up to twice the nodes" in confirm
    assert cluster.node_groups.get().instance_type == "u1.medium"

    client.post(url("group_update", tenant, cluster_name="demo", group_name="md0"),
                {**data, "edit-md0-confirm": "True"}, headers=HTMX)
    assert cluster.node_groups.get().instance_type == "u1.large"
    assert cluster.operations.filter(kind=Operation.Kind.UPDATE).exists()


def test_adding_and_removing_a_node_group(client_for, member, tenant, cluster):
    client = client_for(member)
    add = {"add-name": "workers", "add-instance_type": "s1.large", "add-min_replicas": "1",
           "add-max_replicas": "2", "add-disk_gib": "50", "add-gpu_model": "",
           "add-gpu_count": "1"}
    first = client.post(url("group_add", tenant, cluster_name="demo"), add, headers=HTMX)
    assert "node group workers added: 1–2 nodes of s1.large" in " ".join(
        by_testid(first, "confirm-add"))

    client.post(url("group_add", tenant, cluster_name="demo"), {**add, "add-confirm": "True"},
                headers=HTMX)
    assert sorted(g.name for g in cluster.live_node_groups()) == ["md0", "workers"]

    Operation.objects.filter(cluster=cluster).update(state=Operation.State.SUCCEEDED)
    remove_url = url("group_remove", tenant, cluster_name="demo", group_name="workers")
    first = client.post(remove_url, {}, headers=HTMX)
    assert "node group workers removed" in " ".join(by_testid(first, "confirm-remove-workers"))
    client.post(remove_url, {"remove-workers-confirm": "True"}, headers=HTMX)
    assert [g.name for g in cluster.live_node_groups()] == ["md0"]


def test_the_last_node_group_cannot_be_removed(client_for, member, tenant, cluster):
    response = client_for(member).post(
        url("group_remove", tenant, cluster_name="demo", group_name="md0"), {}, headers=HTMX)
    assert response.status_code == 422
    assert "A cluster needs at least one node group" in text_of(response.content,
                                                                 "cluster-actions")


def test_upgrade_offers_only_the_next_minor_and_says_what_it_rolls(client_for, member, tenant,
                                                                  cluster):
    client = client_for(member)
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert "Review upgrade to v1.35" in text_of(page, "cluster-actions")

    first = client.post(url("upgrade", tenant, cluster_name="demo"),
                        {"upgrade-version": "v1.35"}, headers=HTMX)
    confirm = " ".join(by_testid(first, "confirm-upgrade"))
    assert "version v1.34 → v1.35: control plane upgraded first, then every node group is " \
           "rolled" in confirm

    client.post(url("upgrade", tenant, cluster_name="demo"),
                {"upgrade-version": "v1.35", "upgrade-confirm": "True"}, headers=HTMX)
    assert Cluster.objects.get(pk=cluster.pk).version == "v1.35"


def test_an_upgrade_that_skips_a_minor_is_refused_in_words(client_for, member, tenant):
    old = make_cluster(tenant, name="old", version="v1.32")
    response = client_for(member).post(url("upgrade", tenant, cluster_name="old"),
                                       {"upgrade-version": "v1.34", "upgrade-confirm": "True"},
                                       headers=HTMX)

    assert response.status_code == 422
    assert "Upgrade one minor version at a time: from v1.32 the next version is v1.33." in \
        text_of(response.content, "cluster-actions")
    assert Cluster.objects.get(pk=old.pk).version == "v1.32"


def test_add_ons_change_states_what_is_installed(client_for, member, tenant, cluster):
    client = client_for(member)
    data = {"addon-certManager_enabled": "on", "addon-ingressNginx_expose_method": "Proxied"}
    first = client.post(url("addons", tenant, cluster_name="demo"), data, headers=HTMX)
    assert "add-on cert-manager enabled: installed into the cluster" in " ".join(
        by_testid(first, "confirm-addons"))
    client.post(url("addons", tenant, cluster_name="demo"), {**data, "addons-confirm": "True"},
                headers=HTMX)
    assert Cluster.objects.get(pk=cluster.pk).addons["certManager"]["enabled"] is True


def test_a_second_change_while_one_runs_is_refused_in_words(client_for, member, tenant, cluster):
    make_operation(cluster, Operation.Kind.SCALE, state=Operation.State.RUNNING)
    response = client_for(member).post(scale_url(tenant), {
        "scale-md0-min_replicas": "2", "scale-md0-max_replicas": "6",
        "scale-md0-confirm": "True"}, headers=HTMX)

    assert response.status_code == 422
    assert "Another change to this cluster is still in progress" in text_of(
        response.content, "cluster-actions")


def test_deleting_needs_the_typed_name_and_warns_about_volumes(client_for, owner, tenant,
                                                               cluster):
    client = client_for(owner)
    page = client.get(url("detail", tenant, cluster_name="demo"))
    assert "the data of all its persistent volumes" in " ".join(by_testid(page, "delete"))

    wrong = client.post(url("delete", tenant, cluster_name="demo"),
                        {"delete-confirm_name": "dem"}, headers=HTMX)
    assert wrong.status_code == 422
    assert field_errors(wrong, "delete-confirm_name") == [
        "Type the cluster name exactly to confirm."]

    right = client.post(url("delete", tenant, cluster_name="demo"),
                        {"delete-confirm_name": "demo"}, headers=HTMX)
    assert right.status_code == 200
    assert Cluster.objects.get(pk=cluster.pk).phase == Cluster.Phase.DELETING
    assert cluster.operations.filter(kind=Operation.Kind.DELETE).exists()


def test_a_member_cannot_delete(client_for, member, tenant, cluster):
    response = client_for(member).post(url("delete", tenant, cluster_name="demo"),
                                       {"delete-confirm_name": "demo"})
    assert response.status_code == 403
    assert Cluster.objects.get(pk=cluster.pk).phase == Cluster.Phase.RUNNING


def test_a_failed_operation_is_retried(client_for, member, tenant, cluster):
    failed = make_operation(cluster, Operation.Kind.SCALE, state=Operation.State.FAILED,
                            error_class="platform_error", error_message="boom")
    response = client_for(member).post(
        url("operation_retry", tenant, cluster_name="demo", operation_id=failed.pk), {},
        headers=HTMX)

    assert response.status_code == 200
    assert by_testid(response, "action-done") == ["Retry requested."]
    retry = cluster.operations.order_by("-created_at").first()
    assert retry.params["retry_of"] == failed.pk and retry.is_active


def test_an_operation_not_yet_sent_can_be_cancelled(client_for, member, tenant, cluster):
    queued = make_operation(cluster, Operation.Kind.SCALE, state=Operation.State.QUEUED,
                            submitted=False)
    page = client_for(member).get(url("detail", tenant, cluster_name="demo"))
    assert by_testid(page, "cancel") == ["Cancel it"]

    client_for(member).post(
        url("operation_cancel", tenant, cluster_name="demo", operation_id=queued.pk), {},
        headers=HTMX)
    queued.refresh_from_db()
    assert queued.state == Operation.State.CANCELLED


def test_an_operation_of_another_cluster_is_not_found(client_for, member, tenant, cluster):
    other = make_cluster(tenant, name="other")
    theirs = make_operation(other, state=Operation.State.FAILED, error_class="platform_error")
    response = client_for(member).post(
        url("operation_retry", tenant, cluster_name="demo", operation_id=theirs.pk), {})
    assert response.status_code == 404


ACTIONS = [
    ("group_scale", {"group_name": "md0"}, {"scale-md0-min_replicas": "1",
                                            "scale-md0-max_replicas": "9",
                                            "scale-md0-confirm": "True"}),
    ("group_update", {"group_name": "md0"}, {"edit-md0-instance_type": "u1.large",
                                             "edit-md0-confirm": "True"}),
    ("group_add", {}, {"add-name": "x", "add-confirm": "True"}),
    ("group_remove", {"group_name": "md0"}, {"remove-md0-confirm": "True"}),
    ("upgrade", {}, {"upgrade-version": "v1.35", "upgrade-confirm": "True"}),
    ("addons", {}, {"addons-confirm": "True"}),
    ("delete", {}, {"delete-confirm_name": "demo"}),
]


@pytest.mark.parametrize(("name", "kwargs", "data"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_the_server_refuses_every_action_to_a_viewer(client_for, viewer, tenant, cluster, name,
                                                     kwargs, data):
    response = client_for(viewer).post(url(name, tenant, cluster_name="demo", **kwargs), data)
    assert response.status_code == 403
    assert cluster.operations.count() == 1


@pytest.mark.parametrize(("name", "kwargs", "data"), ACTIONS, ids=[a[0] for a in ACTIONS])
def test_every_action_is_not_found_for_an_outsider(client_for, outsider, tenant, cluster, name,
                                                   kwargs, data):
    response = client_for(outsider).post(url(name, tenant, cluster_name="demo", **kwargs), data)
    assert response.status_code == 404
    assert cluster.operations.count() == 1


def test_a_suspended_tenant_offers_no_actions_and_refuses_them(client_for, owner, tenant,
                                                                cluster):
    from django.utils import timezone

    tenant.suspended_at = timezone.now()
    tenant.suspension_reason = "unpaid invoice"
    tenant.save()
    client = client_for(owner)
    assert 'data-testid="actions"' not in client.get(
        url("detail", tenant, cluster_name="demo")).content.decode()
    assert client.post(scale_url(tenant), ACTIONS[0][2]).status_code == 403
