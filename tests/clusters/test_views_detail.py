"""The detail page: status in plain words, classified failures saying who must act, operation
progress, timeline, node groups, and which actions each role is offered."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import timezone

from clusters import progress
from clusters.models import Cluster, Offering, Operation
from tests.clusters.ui import (
    by_testid,
    make_cluster,
    make_event,
    make_operation,
    offline_platform,
    text_of,
    url,
    visible_text,
)

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]


def detail(client, tenant, name="demo"):
    return client.get(url("detail", tenant, cluster_name=name))


def test_a_creating_cluster_reads_in_plain_words_with_its_steps(client_for, member, tenant):
    cluster = make_cluster(tenant, phase=Cluster.Phase.CREATING, kubeconfig_ready=False,
                           status_message="Creating: control plane ready, waiting for 1 of 3 "
                                          "workers ready",
                           groups=[{"name": "md0", "ready_nodes": 1, "observed_nodes": 2,
                                    "desired_nodes": 3, "min_replicas": 3}])
    make_operation(cluster, state=Operation.State.RUNNING, step_states={
        "validate": progress.DONE, "submit": progress.DONE, "control_plane": progress.DONE,
        "kubeconfig": progress.RUNNING})

    page = detail(client_for(member), tenant)

    assert page.status_code == 200
    assert by_testid(page, "status-message") == [
        "Creating: control plane ready, waiting for 1 of 3 workers ready"]
    steps = text_of(page.content, "cluster-operation")
    assert "Check the specification" in steps and "Worker nodes ready" in steps
    html = page.content.decode()
    assert 'data-step="control_plane" data-state="done"' in html
    assert 'data-step="kubeconfig" data-state="running"' in html
    assert 'data-step="workers" data-state="pending"' in html
    assert "running for" in steps
    assert "Not issued yet" in text_of(html, "kubeconfig-state")


def test_node_groups_show_limits_and_observed_and_ready_nodes(client_for, viewer, tenant):
    make_cluster(tenant, groups=[
        {"name": "md0", "min_replicas": 1, "max_replicas": 4, "desired_nodes": 3,
         "observed_nodes": 3, "ready_nodes": 2},
        {"name": "gpu", "instance_type": "u1.2xlarge", "gpu_model": "nvidia.com/AD102GL_L40S",
         "gpus_per_node": 1, "roles": [], "desired_nodes": 1, "observed_nodes": 1,
         "ready_nodes": 1}])

    page = detail(client_for(viewer), tenant)

    html = page.content.decode()
    md0 = html[html.index('data-group="md0"'):]
    assert '<td data-testid="limits">1–4</td>' in md0
    assert '<td data-testid="observed">3</td>' in md0 and '<td data-testid="ready">2</td>' in md0
    assert "NVIDIA L40S" in text_of(html, "cluster-groups")
    assert "u1.2xlarge · 8 vCPU · 32 GiB" in text_of(html, "cluster-groups")


@pytest.mark.parametrize(("error_class", "message", "title", "who"), [
    ("invalid_spec", "Specified instancetype not exists in cluster: x1.huge",
     "Instance type not offered by the platform", "You need to act"),
    ("platform_unavailable", "connection refused", "Platform incident", "Platform staff act"),
    ("timeout", "Stuck at “Worker nodes ready” for too long: 1 of 3 workers ready",
     "The change did not finish in time", "Platform staff act"),
    ("quota", "exceeded quota: tenant-quota", "Quota exceeded", "You need to act"),
    ("conflict", "the object has been modified", "Conflicting change", "You need to act"),
], ids=["invalid-spec", "platform-unavailable", "timeout", "quota", "conflict"])
def test_a_failed_operation_is_classified_with_who_must_act(client_for, member, tenant,
                                                             error_class, message, title, who):
    cluster = make_cluster(tenant, phase=Cluster.Phase.FAILED, last_error=message)
    make_operation(cluster, state=Operation.State.FAILED, error_class=error_class,
                   error_message=message, step_states={"control_plane": progress.FAILED})

    page = detail(client_for(member), tenant)

    problem = text_of(page.content, "cluster-status")
    assert title in problem and who in problem and message in problem
    assert by_testid(page, "retry") == ["Retry"]


def test_a_retrying_platform_outage_says_staff_act_and_the_portal_retries(
        client_for, member, tenant):
    cluster = make_cluster(tenant, phase=Cluster.Phase.CREATING)
    operation = make_operation(cluster, state=Operation.State.RUNNING, submitted=False)
    operation.steps = progress.set_step(operation.steps, "submit", progress.RUNNING,
                                        "The platform is unreachable; retrying (attempt 3).")
    operation.save()

    status = text_of(detail(client_for(member), tenant).content, "cluster-status")

    assert "Platform incident" in status and "keeps retrying by itself" in status


def test_the_timeline_is_newest_first_with_who_did_what(client_for, viewer, tenant):
    cluster = make_cluster(tenant)
    make_event(cluster, "Creation requested.", minutes_ago=10, source="portal")
    make_event(cluster, "Ready=True: Helm install succeeded", minutes_ago=5)
    make_event(cluster, "md0: 3 nodes, 3 ready (target 3).", minutes_ago=1)

    timeline = text_of(detail(client_for(viewer), tenant).content, "cluster-timeline")

    assert timeline.index("md0: 3 nodes") < timeline.index("Ready=True") < timeline.index(
        "Creation requested.")


def test_conditions_are_behind_a_disclosure(client_for, viewer, tenant):
    make_cluster(tenant)
    html = detail(client_for(viewer), tenant).content.decode()
    assert '<details id="conditions-' in html
    assert "Helm install succeeded" in text_of(html, "cluster-status")


def test_a_viewer_reads_everything_but_sees_no_action_or_kubeconfig(client_for, viewer, tenant):
    cluster = make_cluster(tenant, phase=Cluster.Phase.FAILED)
    make_operation(cluster, state=Operation.State.FAILED, error_class="platform_error",
                   error_message="boom")

    page = detail(client_for(viewer), tenant)

    html = page.content.decode()
    assert page.status_code == 200
    assert 'data-testid="actions"' not in html
    assert 'data-testid="retry"' not in html
    assert 'data-testid="kubeconfig-download"' not in html
    assert "not download its kubeconfig" in text_of(html, "kc-title") or \
        "not download its kubeconfig" in visible_text(page)


def test_a_member_gets_changes_but_no_delete(client_for, member, tenant):
    make_cluster(tenant)
    html = detail(client_for(member), tenant).content.decode()
    assert 'data-testid="actions"' in html
    assert 'data-testid="scale-md0"' in html and 'data-testid="upgrade"' in html
    assert 'data-testid="delete"' not in html
    assert '<input type="radio" name="kind" value="super-admin"' not in html


@pytest.mark.parametrize("persona", ["owner", "tenant_admin"])
def test_owners_and_admins_can_also_delete_and_get_the_super_admin_kubeconfig(
        client_for, persona, request, tenant):
    make_cluster(tenant)
    html = detail(client_for(request.getfixturevalue(persona)), tenant).content.decode()
    assert 'data-testid="delete"' in html
    assert 'value="super-admin"' in html


def test_hostile_platform_text_renders_as_text(client_for, member, tenant):
    hostile = '<img src=x onerror="alert(1)">'
    cluster = make_cluster(tenant, phase=Cluster.Phase.FAILED, last_error=hostile,
                           status_message=f"Failed: {hostile}")
    make_operation(cluster, state=Operation.State.FAILED, error_class="platform_error",
                   error_message=hostile)
    make_event(cluster, hostile)

    html = detail(client_for(member), tenant).content.decode()

    assert hostile not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


def test_the_detail_page_opens_one_websocket_and_can_fall_back_to_polling(
        client_for, viewer, tenant):
    make_cluster(tenant)
    html = detail(client_for(viewer), tenant).content.decode()
    assert html.count("ws-connect=") == 1
    assert 'ws-connect="/ws/t/acme/clusters/demo/?lang=en"' in html
    assert f'data-poll-url="{url("detail_live", tenant, cluster_name="demo")}"' in html


def test_the_polling_fallback_returns_every_live_region(client_for, viewer, tenant):
    make_cluster(tenant)
    response = client_for(viewer).get(url("detail_live", tenant, cluster_name="demo"))
    html = response.content.decode()
    for region in ("cluster-header", "cluster-status", "cluster-groups", "cluster-timeline",
                   "cluster-operation", "cluster-actions", "kubeconfig-state"):
        assert f'id="{region}"' in html
    assert html.count('hx-swap-oob="true"') >= 7
    assert 'data-testid="actions"' not in html  # the viewer's variant


def test_other_tenants_clusters_do_not_exist_for_an_outsider(client_for, outsider, tenant):
    make_cluster(tenant)
    client = client_for(outsider)
    assert detail(client, tenant).status_code == 404
    assert client.get(url("detail_live", tenant, cluster_name="demo")).status_code == 404


def test_an_unknown_cluster_is_not_found(client_for, owner, tenant, other_tenant):
    make_cluster(other_tenant, name="theirs")
    assert detail(client_for(owner), tenant, "theirs").status_code == 404
    assert detail(client_for(owner), tenant, "nothing").status_code == 404


def select_options(html: str, name: str) -> dict[str, bool]:
    """The options of the select named ``name``: value → selected."""
    select = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select named {name}"
    return {value: " selected" in attrs for value, attrs in re.findall(
        r'<option value="([^"]*)"([^>]*)>', select.group(1))}


def retire(version: str = "v1.34", on: datetime.date = datetime.date(2020, 1, 1), **kw):
    return Offering.objects.create(kind=Offering.Kind.VERSION, name=version,
                                   end_of_life_on=on, **kw)


def test_a_hidden_instance_type_stays_on_the_group_that_runs_it_only(client_for, member,
                                                                    tenant):
    gpu = "nvidia.com/H100_94GB"
    make_cluster(tenant, groups=[{"name": "md0", "instance_type": "u1.large"},
                                 {"name": "ml", "instance_type": "u1.2xlarge", "roles": [],
                                  "gpu_model": gpu, "gpus_per_node": 1}])
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    Offering.objects.create(kind=Offering.Kind.GPU_MODEL, name=gpu, hidden=True)

    html = detail(client_for(member), tenant).content.decode()

    # The group that runs it still shows (and keeps) its type; a new group cannot pick it.
    assert select_options(html, "edit-md0-instance_type")["u1.large"] is True
    assert "u1.large" not in select_options(html, "edit-ml-instance_type")
    assert "u1.large" not in select_options(html, "add-instance_type")
    assert select_options(html, "edit-ml-gpu_model")[gpu] is True
    assert gpu not in select_options(html, "edit-md0-gpu_model")
    assert gpu not in select_options(html, "add-gpu_model")


def test_an_end_of_life_version_is_flagged_with_the_upgrade_to_make(client_for, member,
                                                                   tenant):
    retire(note="Plan it this month.")
    make_cluster(tenant)

    page = detail(client_for(member), tenant)

    assert by_testid(page, "eol-warning") == [
        "End of life: Kubernetes v1.34 reached its end of life on 2020-01-01. Upgrade to "
        "v1.35. Plan it this month. Upgrade now"]
    html = page.content.decode()
    # "Upgrade now" leads to the upgrade form, which is on the page for a member.
    assert 'href="#act-upgrade-body"' in html
    assert "Review upgrade to v1.35" in text_of(html, "act-upgrade-body")


def test_the_end_of_life_warning_is_in_the_live_regions_in_the_pages_language(
        client_for, viewer, tenant):
    retire()
    make_cluster(tenant)
    client = client_for(viewer)

    english = client.get(url("detail_live", tenant, cluster_name="demo"))
    french = client.get(url("detail_live", tenant, cluster_name="demo"),
                        headers={"Accept-Language": "fr"})

    assert by_testid(english, "eol-warning")[0].startswith(
        "End of life: Kubernetes v1.34 reached its end of life on 2020-01-01.")
    (warning,) = by_testid(french, "eol-warning")
    assert warning.startswith("Fin de vie")
    assert "Kubernetes v1.34 a atteint sa fin de vie le 2020-01-01." in warning


def test_a_supported_version_or_a_future_end_of_life_shows_no_warning(client_for, member,
                                                                      tenant):
    retire("v1.33")
    retire("v1.34", on=timezone.now().date() + datetime.timedelta(days=1))
    make_cluster(tenant)

    page = detail(client_for(member), tenant)

    assert by_testid(page, "eol-warning") == []


def test_the_live_regions_of_a_deleted_cluster_say_so_and_retire_the_kubeconfig(tenant):
    from clusters.web import live, queries

    retire()
    cluster = make_cluster(tenant, phase=Cluster.Phase.DELETED, kubeconfig_ready=True)
    cluster.deleted_at = timezone.now()
    cluster.save()

    html = live.render_detail(queries.cluster_state(cluster), live.MANAGE)

    assert text_of(html, "kubeconfig-state") == "The cluster is deleted."
    # The download form beside it is hidden by the page's style on this marker.
    assert 'data-state="deleted"' in html
    assert 'data-testid="delete"' not in html and 'data-testid="eol-warning"' not in html
