"""The portal's rules on auto-repair, per-group storage, single sign-on access, add-on
dependencies and routed hosts, and which of them the live platform offers at all."""

from __future__ import annotations

import dataclasses
import json

import pytest

from clusters import features, spec_rules
from cozystack.specs import AddonSpec, AutoRepairSpec, OidcUserSpec
from portal.permissions import Role
from tests.clusters.conftest import cluster_spec, group
from tests.factories import MembershipFactory
from tests.fixtures.simulator import release_schema

V13 = json.loads(release_schema("1.3.6").read_text())
V16 = json.loads(release_schema("1.6.2").read_text())


def fields_of(errors):
    return {e.field: e.message for e in errors}


def check(tenant, spec, previous=None, schema=V16):
    return fields_of(spec_rules.check_tenant_settings(tenant, spec, previous, schema))


# --- what each release offers --------------------------------------------------------------


@pytest.mark.parametrize("feature", [f for f in features.FEATURES
                                     if f != features.CREDENTIAL_ROTATION])
def test_v16_offers_the_new_settings_and_v13_none_of_them(feature):
    assert features.supports(feature, V16)
    assert not features.supports(feature, V13)


def test_no_release_offers_credential_rotation():
    assert not features.supports(features.CREDENTIAL_ROTATION, V16)
    assert not features.supports(features.CREDENTIAL_ROTATION, V13)


def test_an_unknown_feature_is_a_programming_error():
    with pytest.raises(ValueError):
        features.supports("teleport", V16)


def test_ouroboros_is_offered_only_where_the_platform_speaks_the_proxy_protocol(settings):
    settings.PLATFORM_PROXY_PROTOCOL = False
    assert not features.addon_offered("ouroboros", V16)
    settings.PLATFORM_PROXY_PROTOCOL = True
    assert features.addon_offered("ouroboros", V16)
    assert not features.addon_offered("ouroboros", V13)
    assert features.addon_offered("hami", V16) and not features.addon_offered("hami", V13)
    assert features.addon_offered("certManager", V13)


def test_the_control_plane_sizes_come_in_five_families():
    assert [f.key for f in features.preset_families()] == ["t1", "c1", "s1", "u1", "m1"]


# --- auto-repair -----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("max_unhealthy", "startup", "bad"), [
    ("50%", "10m", set()),
    ("0", "1h30m", set()),
    ("2", "90s", set()),
    ("half", "10m", {"auto_repair.max_unhealthy"}),
    ("150%", "10m", {"auto_repair.max_unhealthy"}),
    ("-1", "10m", {"auto_repair.max_unhealthy"}),
    ("50%", "10", {"auto_repair.node_startup_timeout"}),
    ("50%", "20s", {"auto_repair.node_startup_timeout"}),
    ("50%", "ten minutes", {"auto_repair.node_startup_timeout"}),
])
def test_auto_repair_values_are_a_node_count_or_percentage_and_a_duration(
        tenant, max_unhealthy, startup, bad):
    spec = dataclasses.replace(cluster_spec(), auto_repair=AutoRepairSpec(
        max_unhealthy=max_unhealthy, node_startup_timeout=startup))
    assert set(check(tenant, spec)) == bad


@pytest.mark.django_db
def test_a_group_override_is_checked_like_the_cluster_setting(tenant):
    spec = cluster_spec(groups=(dataclasses.replace(group(), max_unhealthy="lots",
                                                    node_startup_timeout="5s"),))
    errors = check(tenant, spec)
    assert "number of nodes" in errors["node_groups[0].max_unhealthy"]
    assert "at least 30 seconds" in errors["node_groups[0].node_startup_timeout"]


@pytest.mark.django_db
def test_a_v13_platform_refuses_every_v16_setting_in_words(tenant):
    spec = dataclasses.replace(
        cluster_spec(groups=(dataclasses.replace(group(), storage_class="replicated",
                                                 max_unhealthy="1"),)),
        auto_repair=AutoRepairSpec(), oidc_users=(OidcUserSpec("a@example.org", "view"),),
        addons=(AddonSpec("hami", True), AddonSpec("gpuOperator", True)))
    errors = check(tenant, spec, schema=V13)
    assert set(errors) == {"auto_repair", "node_groups[0].storage_class",
                           "node_groups[0].max_unhealthy", "oidc_users", "addons.hami.enabled"}
    assert errors["auto_repair"] == "This platform does not offer node auto-repair."


# --- storage class per group -------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("storage_class", "error"), [
    ("", None), ("replicated-async", None), ("replicated", None),
    ("local", "replicated storage class"), ("gold", "no storage class “gold”"),
])
def test_a_group_storage_class_must_hold_disks_that_move_with_their_node(
        tenant, storage_class, error):
    spec = cluster_spec(groups=(dataclasses.replace(group(), storage_class=storage_class),))
    errors = check(tenant, spec)
    if error is None:
        assert errors == {}
    else:
        assert error in errors["node_groups[0].storage_class"]


# --- access ------------------------------------------------------------------------------------


def with_users(*users):
    return dataclasses.replace(cluster_spec(), oidc_users=tuple(
        OidcUserSpec(email, role) for email, role in users))


@pytest.mark.django_db
def test_access_goes_to_members_with_a_role_their_portal_role_allows(tenant, owner):
    member = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    accountant = MembershipFactory(tenant=tenant, role=Role.BILLING).user
    spec = with_users((owner.email, "admin"), (member.email, "admin"), (viewer.email, "view"))
    assert check(tenant, spec) == {}
    refused = with_users((viewer.email, "admin"), (accountant.email, "view"),
                         ("stranger@example.net", "view"))
    errors = check(tenant, refused)
    by_email = {u.email: i for i, u in enumerate(refused.oidc_users)}
    assert "does not allow the cluster role admin" in \
        errors[f"oidc_users[{by_email[viewer.email]}].role"]
    assert "Billing" in errors[f"oidc_users[{by_email[accountant.email]}].role"]
    assert errors[f"oidc_users[{by_email['stranger@example.net']}].email"] == \
        "stranger@example.net is not a member of this tenant; invite them first."


@pytest.mark.django_db
def test_access_already_granted_is_not_judged_again(tenant, owner):
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    granted = with_users((viewer.email, "admin"), ("gone@example.net", "view"))
    assert check(tenant, granted, previous=granted) == {}
    assert set(check(tenant, granted, previous=cluster_spec())) == {
        "oidc_users[0].email", "oidc_users[1].role"}


@pytest.mark.django_db
def test_access_roles_are_admin_or_view_and_each_person_is_listed_once(tenant, owner):
    errors = check(tenant, with_users((owner.email, "root")))
    assert errors == {"oidc_users[0].role": "Choose the role admin or view."}
    # Sorted by email, the upper-case spelling comes first; the second one is the repeat.
    errors = check(tenant, with_users((owner.email, "admin"), (owner.email.upper(), "view")))
    assert errors == {"oidc_users[1].email": f"{owner.email} is listed twice."}


# --- add-on dependencies -----------------------------------------------------------------------


@pytest.mark.django_db
def test_fractional_gpus_need_the_gpu_operator_beside_the_toggle(tenant):
    spec = dataclasses.replace(cluster_spec(), addons=(AddonSpec("hami", True),))
    assert "enable the GPU operator" in check(tenant, spec)["addons.hami.enabled"]
    spec = dataclasses.replace(cluster_spec(), addons=(AddonSpec("hami", True),
                                                       AddonSpec("gpuOperator", True)))
    assert check(tenant, spec) == {}


@pytest.mark.django_db
def test_ouroboros_needs_ingress_nginx(tenant, settings):
    settings.PLATFORM_PROXY_PROTOCOL = True
    spec = dataclasses.replace(cluster_spec(), addons=(AddonSpec("ouroboros", True),))
    assert "enable Ingress NGINX" in check(tenant, spec)["addons.ouroboros.enabled"]
    settings.PLATFORM_PROXY_PROTOCOL = False
    assert "does not offer the ouroboros" in check(tenant, spec)["addons.ouroboros.enabled"]


# --- routed hosts ------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("host", "error"), [
    ("app.example.com", None),
    ("acme.example.org", None),
    ("shop.acme.example.org", None),
    ("*.example.com", "wildcard"),
    ("*.acme.example.org", "wildcard"),
    ("globex.example.org", "outside your tenant's domain acme.example.org"),
    ("app.globex.example.org", "outside your tenant's domain"),
    ("example.org", "outside your tenant's domain"),
    ("notacme.example.org", "outside your tenant's domain"),
])
def test_routed_hosts_follow_the_platforms_admission_rule(tenant, settings, host, error):
    settings.PLATFORM_ROOT_HOST = "example.org"
    spec = dataclasses.replace(cluster_spec(), addons=(
        AddonSpec("ingressNginx", True, hosts=("ok.example.com", host)),))
    errors = check(tenant, spec, schema=V13)
    if error is None:
        assert errors == {}
    else:
        assert error in errors["addons.ingressNginx.hosts[1]"]


@pytest.mark.django_db
def test_without_a_root_host_only_wildcards_are_refused(tenant, settings):
    settings.PLATFORM_ROOT_HOST = ""
    spec = dataclasses.replace(cluster_spec(), addons=(
        AddonSpec("ingressNginx", True, hosts=("globex.example.org", "*.x.com")),))
    assert set(check(tenant, spec)) == {"addons.ingressNginx.hosts[1]"}
