"""Against a Cozystack 1.6.2 platform, end to end: a cluster created with auto-repair, a disk
per group and access for a colleague; its single sign-on kubeconfig "being prepared", then
downloaded; the colleague leaving the tenant, then missing from the platform's oidc.users."""

from __future__ import annotations

import dataclasses

import pytest

from clusters import access, actions
from clusters.models import Cluster, Operation
from cozystack.dialects.v16 import NEVER_REPAIR
from cozystack.specs import AutoRepairSpec, OidcUserSpec
from portal import actions as tenancy
from portal.models import Membership
from portal.permissions import Role
from tests.clusters.conftest import NS, cluster_spec, group
from tests.clusters.ui import url
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.django_db,
              pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)]


def settled(engine, cluster: Cluster) -> Operation:
    operation = engine.settle(cluster, seconds=60)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    return operation


@pytest.fixture
def colleague(tenant, owner):
    return MembershipFactory(tenant=tenant, role=Role.MEMBER).user


def create_with_access(engine, colleague) -> Cluster:
    spec = dataclasses.replace(
        cluster_spec(groups=(dataclasses.replace(group(disk=40), max_unhealthy="1"),)),
        auto_repair=AutoRepairSpec(max_unhealthy="34%", node_startup_timeout="15m"),
        oidc_users=(OidcUserSpec(colleague.email, "admin"),))
    cluster = engine.create(spec)
    settled(engine, cluster)
    return cluster


def test_the_platform_gets_auto_repair_the_disk_and_the_colleagues_access(engine, colleague):
    create_with_access(engine, colleague)
    spec = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert spec["nodeHealthCheck"] == {"maxUnhealthy": "34%", "nodeStartupTimeout": "15m"}
    assert spec["nodeGroups"]["md0"]["diskSize"] == "40Gi"
    assert spec["nodeGroups"]["md0"]["maxUnhealthy"] == "1"
    assert spec["oidc"] == {"mode": "System",
                            "users": [{"email": colleague.email, "role": "admin"}]}
    engine.platform.advance(30)
    assert engine.platform.oidc_bindings(NS, "demo") == {colleague.email: "cluster-admin"}


def test_the_sso_kubeconfig_is_being_prepared_then_downloaded(engine, colleague, client_for,
                                                              tenant):
    spec = dataclasses.replace(cluster_spec(), oidc_users=(OidcUserSpec(colleague.email,
                                                                        "view"),))
    cluster = engine.create(spec)
    engine.outbox.run()  # sent: the platform holds the placeholder once manifests apply
    engine.platform.advance(0.5)
    link = url("oidc_kubeconfig", tenant, cluster_name="demo")
    page = client_for(colleague).get(link).content.decode()
    assert "still preparing the single sign-on kubeconfig" in page
    settled(engine, cluster)
    engine.platform.advance(30)
    response = client_for(colleague).get(link)
    assert response.status_code == 200
    assert b"oidc-login" in response.content


def test_a_colleague_who_leaves_loses_access_on_the_platform(engine, colleague, tenant,
                                                             django_capture_on_commit_callbacks,
                                                             monkeypatch):
    cluster = create_with_access(engine, colleague)
    queued = []
    monkeypatch.setattr(access.revoke_access, "apply_async",
                        lambda args=None, kwargs=None, **options: queued.append(args))
    membership = Membership.objects.get(tenant=tenant, user=colleague)
    with engine.capture(execute=True):
        tenancy.do_remove_member(engine.actor, engine.ctx, membership.pk)
    with engine.capture(execute=True):
        for args in queued:
            access.revoke_access.run(*args)
    operation = settled(engine, cluster)
    assert operation.kind == Operation.Kind.ACCESS
    spec = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert not (spec.get("oidc") or {}).get("users")
    cluster.refresh_from_db()
    assert cluster.oidc_users == []


def test_owners_change_access_and_auto_repair_on_a_running_cluster(engine, colleague):
    cluster = create_with_access(engine, colleague)
    engine.act(actions.do_set_cluster_access, "demo",
               (OidcUserSpec(colleague.email, "view"),))
    settled(engine, cluster)
    engine.act(actions.do_set_auto_repair, "demo", AutoRepairSpec(enabled=False),
               {"md0": ("", "")})
    settled(engine, cluster)
    spec = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert spec["oidc"]["users"] == [{"email": colleague.email, "role": "view"}]
    assert "maxUnhealthy" not in spec["nodeGroups"]["md0"]
    assert spec["nodeHealthCheck"]["maxUnhealthy"] == NEVER_REPAIR


def test_a_colleague_lowered_to_viewer_keeps_only_view_on_the_platform(engine, colleague,
                                                                      tenant, monkeypatch):
    """End to end: the role change is published, the clusters domain lowers the access through
    an access operation, and the platform's oidc.users (and the bindings its OIDC Job makes)
    follow."""
    cluster = create_with_access(engine, colleague)
    engine.platform.advance(30)
    assert engine.platform.oidc_bindings(NS, "demo") == {colleague.email: "cluster-admin"}
    queued = []
    monkeypatch.setattr(access.lower_access, "apply_async",
                        lambda args=None, kwargs=None, **options: queued.append(args))
    membership = Membership.objects.get(tenant=tenant, user=colleague)
    with engine.capture(execute=True):
        tenancy.do_change_role(engine.actor, engine.ctx, membership.pk, role=Role.VIEWER)
    assert queued == [(tenant.pk, [colleague.email])]
    with engine.capture(execute=True):
        access.lower_access.run(*queued[0])
    operation = settled(engine, cluster)
    assert operation.kind == Operation.Kind.ACCESS and operation.requested_by is None
    spec = engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]
    assert spec["oidc"]["users"] == [{"email": colleague.email, "role": "view"}]
    engine.platform.advance(30)
    assert engine.platform.oidc_bindings(NS, "demo") == {colleague.email: "view"}
    # Raised back, nothing is granted by itself: an owner gives admin again when they mean to.
    with engine.capture(execute=True):
        tenancy.do_change_role(engine.actor, engine.ctx, membership.pk, role=Role.MEMBER)
    assert len(queued) == 1
    cluster.refresh_from_db()
    assert cluster.oidc_users == [{"email": colleague.email, "role": "view"}]
