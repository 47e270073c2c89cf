"""Change plans: one pure function per spec change says what it does and what refuses it; the
page's preview, the action and the API all answer from it, in the same words."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError

from clusters import actions, plans
from clusters.models import Operation
from cozystack.changes import cluster_changes
from cozystack.specs import AddonSpec
from tests.clusters.conftest import cluster_spec, group
from tests.clusters.ui import make_cluster, offline_platform, text_of, url

__all__ = ["offline_platform"]

BEFORE = cluster_spec(groups=(group("md0"), group("gpu", instance_type="u1.2xlarge")))


def codes(error: ValidationError) -> dict[str, list[str | None]]:
    return {field: [e.code for e in errors] for field, errors in error.error_dict.items()}


@pytest.mark.parametrize(("planner", "kind", "verb", "params"), [
    (plans.scale_node_group("md0", min_replicas=2, max_replicas=6), Operation.Kind.SCALE,
     "cluster.scale", {"node_group": "md0"}),
    (plans.update_node_group(group("md0", instance_type="u1.xlarge")), Operation.Kind.UPDATE,
     "cluster.node_group.update", {"node_group": "md0"}),
    (plans.add_node_group(group("batch")), Operation.Kind.ADD_NODE_GROUP,
     "cluster.node_group.add", {"node_group": "batch"}),
    (plans.remove_node_group("gpu"), Operation.Kind.REMOVE_NODE_GROUP,
     "cluster.node_group.remove", {"node_group": "gpu"}),
    (plans.upgrade("v1.35"), Operation.Kind.UPGRADE, "cluster.upgrade", {"version": "v1.35"}),
    (plans.set_addons((AddonSpec("certManager", enabled=True),)), Operation.Kind.ADDONS,
     "cluster.addons", {}),
    (plans.update_cluster(dataclasses.replace(BEFORE, name="ignored", version="v1.35")),
     Operation.Kind.UPDATE, "cluster.update", {}),
])
def test_each_plan_says_what_it_changes(planner, kind, verb, params):
    plan = planner(BEFORE)
    assert (plan.kind, plan.verb, plan.params) == (kind, verb, params)
    assert plan.before == BEFORE and plan.changes_anything and plan.refusals() == []
    assert plan.after.name == BEFORE.name
    assert [c.message for c in plan.consequences({"md0": 3})] == [
        c.message for c in cluster_changes(BEFORE, plan.after, node_counts={"md0": 3})]


def test_a_plan_that_changes_nothing_is_refused_as_no_change():
    plan = plans.scale_node_group("md0", min_replicas=1, max_replicas=3)(BEFORE)
    assert not plan.changes_anything
    assert [(e.field, e.code) for e in plan.refusals()] == [("__all__", "no_change")]


def test_a_missing_group_is_its_own_refusal():
    for planner in (plans.scale_node_group("md9", min_replicas=1, max_replicas=2),
                    plans.update_node_group(group("md9")), plans.remove_node_group("md9")):
        with pytest.raises(plans.NoSuchNodeGroup) as error:
            planner(BEFORE)
        assert error.value.message_dict == {"node_group": ["This cluster has no node group md9."]}


def test_intent_refusals_carry_the_codes_the_api_answers_409_to():
    with pytest.raises(ValidationError) as error:
        plans.add_node_group(group("md0"))(BEFORE)
    assert codes(error.value) == {"name": ["already_exists"]}
    with pytest.raises(ValidationError) as error:
        plans.upgrade("v1.34")(BEFORE)
    assert codes(error.value) == {"version": ["no_change"]}
    assert error.value.message_dict == {"version": ["The cluster already runs v1.34."]}
    with pytest.raises(ValidationError) as error:
        plans.remove_node_group("md0")(cluster_spec())
    assert error.value.message_dict == {"node_group": [
        "A cluster needs at least one node group; delete the cluster instead."]}


def test_the_action_refuses_with_the_plans_codes(engine):
    engine.create()
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_add_node_group, "demo", group("md0"))
    assert codes(error.value) == {"name": ["already_exists"]}
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_create_cluster, cluster_spec())
    assert codes(error.value) == {"name": ["already_exists"]}


# --------------------------------------------------------------------------- the same words


@pytest.mark.usefixtures("offline_platform")
def test_the_preview_refuses_in_the_actions_words(client_for, member, tenant):
    make_cluster(tenant)
    response = client_for(member).post(url("upgrade", tenant, cluster_name="demo"),
                                       {"upgrade-version": "v1.34"}, headers={"HX-Request": "1"})
    assert response.status_code == 422
    assert "The cluster already runs v1.34." in text_of(response.content, "cluster-actions")


@pytest.mark.usefixtures("offline_platform")
def test_a_group_the_url_names_and_the_cluster_lacks_is_not_found(client_for, member, tenant):
    make_cluster(tenant)
    response = client_for(member).post(
        url("group_scale", tenant, cluster_name="demo", group_name="md9"),
        {"scale-md9-min_replicas": "1", "scale-md9-max_replicas": "2"})
    assert response.status_code == 404



# --- auto-repair and access ----------------------------------------------------------------------


def test_auto_repair_plan_sets_the_cluster_and_the_named_groups_without_replacing_nodes():
    from cozystack.specs import AutoRepairSpec

    before = cluster_spec(groups=(group("md0"), group("big", roles=())))
    plan = plans.set_auto_repair(AutoRepairSpec(max_unhealthy="1"), {"big": ("2", "20m")})(before)
    assert plan.kind == Operation.Kind.UPDATE and plan.verb == "cluster.auto_repair"
    assert plan.after.auto_repair == AutoRepairSpec(max_unhealthy="1")
    assert plan.after.group("md0") == before.group("md0")
    assert plan.after.group("big") == dataclasses.replace(before.group("big"), max_unhealthy="2",
                                                 node_startup_timeout="20m")
    changes = plan.consequences()
    assert [c.field for c in changes] == ["node_groups[big].auto_repair", "auto_repair"]
    assert "20m" in changes[0].message and "limit 1" in changes[1].message
    assert not any(c.replaces_nodes for c in changes)


def test_auto_repair_plan_for_a_group_the_cluster_lacks_is_refused():
    with pytest.raises(plans.NoSuchNodeGroup):
        plans.set_auto_repair(None, {"nope": ("1", "")})(cluster_spec())


def test_access_plan_names_who_gains_and_who_loses_access():
    from cozystack.specs import OidcUserSpec

    before = dataclasses.replace(cluster_spec(), oidc_users=(
        OidcUserSpec("ada@example.org", "admin"), OidcUserSpec("bob@example.org", "view")))
    plan = plans.set_oidc_users((OidcUserSpec("bob@example.org", "admin"),
                                 OidcUserSpec("cy@example.org", "view")))(before)
    assert plan.kind == Operation.Kind.ACCESS and plan.verb == "cluster.access"
    assert plan.params == {"access_granted": ["cy@example.org"],
                           "access_removed": ["ada@example.org"],
                           "access_role_changed": ["bob@example.org"]}
    (change,) = plan.consequences()
    assert change.field == "oidc_users" and not change.replaces_nodes
    for words in ("cy@example.org (view) added", "ada@example.org removed",
                  "bob@example.org view → admin"):
        assert words in change.message
    assert plans.set_oidc_users(before.oidc_users)(before).refusals()[0].code == "no_change"


def test_a_new_storage_class_for_a_group_replaces_its_nodes():
    before = cluster_spec()
    after = dataclasses.replace(before, node_groups=(
        dataclasses.replace(before.node_groups[0], storage_class="replicated-async"),))
    (change,) = plans.update_node_group(after.node_groups[0])(before).consequences({"md0": 2})
    assert change.replaces_nodes
    assert "storage class the cluster’s → replicated-async" in change.message
