"""A person who leaves a tenant loses the single sign-on access its clusters gave them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from clusters import access
from clusters.models import Cluster, ClusterEvent, Operation
from portal import actions as tenancy
from portal.audit import Actor
from portal.models import AuditEntry, Membership
from portal.permissions import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@dataclass
class Revocations:
    queued: list[tuple[tuple[Any, ...], float | None]] = field(default_factory=list)

    capture: Any = None

    def run(self) -> list[dict[str, int]]:
        """Run what was enqueued, with its on-commit effects (the operations it enqueues)."""
        batch, self.queued = self.queued, []
        with self.capture(execute=True):
            return [access.revoke_access.run(*args) for args, _countdown in batch]


@pytest.fixture
def revocations(monkeypatch, django_capture_on_commit_callbacks) -> Revocations:
    """``revoke_access`` as enqueued (recorded, run by the test), never through a broker."""
    recorded = Revocations(capture=django_capture_on_commit_callbacks)

    def record(args=None, kwargs=None, *, countdown=None, **options):
        recorded.queued.append((tuple(args or ()), countdown))

    monkeypatch.setattr(access.revoke_access, "apply_async", record)
    return recorded


def grant(cluster: Cluster, *users: tuple[str, str]) -> None:
    """Access as the cluster already grants it (given on a platform that offers it)."""
    cluster.oidc_users = [{"email": email, "role": role} for email, role in users]
    cluster.save(update_fields=["oidc_users"])


def running(engine, name: str = "demo") -> Cluster:
    from tests.clusters.conftest import cluster_spec

    cluster = engine.create(cluster_spec(name))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    return cluster


def remove(engine, tenant, user) -> None:
    membership = Membership.objects.get(tenant=tenant, user=user)
    with engine.capture(execute=True):
        tenancy.do_remove_member(engine.actor, engine.ctx, membership.pk)


def test_a_removed_member_loses_access_to_every_cluster_that_lists_them(
        engine, tenant, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    demo, other = running(engine), running(engine, "other")
    grant(demo, (leaver.email, "admin"))
    grant(other, (leaver.email, "view"))

    remove(engine, tenant, leaver)
    assert [args for args, _ in revocations.queued] == [(tenant.pk, [leaver.email])]
    assert revocations.run() == [{"revoked": 2, "busy": 0, "refused": 0}]

    for cluster in (demo, other):
        cluster.refresh_from_db()
        assert cluster.oidc_users == []
        operation = engine.operation(cluster)
        assert operation.kind == Operation.Kind.ACCESS and operation.requested_by is None
        assert operation.params["access_removed"] == [leaver.email]
        assert ClusterEvent.objects.filter(
            cluster=cluster, reason="operation.access",
            message=f"Access of {leaver.email} removed: no longer a member of the tenant."
        ).exists()
        assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    entry = AuditEntry.objects.filter(verb="cluster.access").latest("pk")
    assert entry.actor is None
    assert revocations.run() == []  # nothing left to do, nothing enqueued again


def test_access_others_keep_is_left_as_it_was(engine, tenant, owner, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    demo, untouched = running(engine), running(engine, "untouched")
    grant(demo, (leaver.email, "admin"))
    grant(untouched, (owner.email, "admin"))
    remove(engine, tenant, leaver)
    revocations.run()
    untouched.refresh_from_db()
    assert untouched.oidc_users == [{"email": owner.email, "role": "admin"}]
    assert engine.operation(untouched).kind == Operation.Kind.CREATE


def test_a_busy_cluster_is_tried_again_once_its_change_is_done(engine, tenant, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    from tests.clusters.conftest import cluster_spec

    cluster = engine.create(cluster_spec())  # its creation is still in flight
    grant(cluster, (leaver.email, "view"))
    remove(engine, tenant, leaver)
    assert revocations.run() == [{"revoked": 0, "busy": 1, "refused": 0}]
    assert revocations.queued == [((tenant.pk, [leaver.email]), access.BUSY_RETRY_SECONDS)]
    engine.settle(cluster)
    assert revocations.run() == [{"revoked": 1, "busy": 0, "refused": 0}]
    cluster.refresh_from_db()
    assert cluster.oidc_users == []


def test_leaving_the_tenant_revokes_too(engine, tenant, client_for, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    grant(running(engine), (leaver.email, "admin"))
    from portal.tenancy import TenantContext

    membership = Membership.objects.get(tenant=tenant, user=leaver)
    with engine.capture(execute=True):
        tenancy.do_leave_tenant(Actor(user=leaver), TenantContext(tenant, membership.role,
                                                                  membership))
    assert [args for args, _ in revocations.queued] == [(tenant.pk, [leaver.email])]


def test_every_address_of_the_person_is_revoked(engine, tenant, revocations):
    from allauth.account.models import EmailAddress

    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    EmailAddress.objects.create(user=leaver, email="Second@Example.org", verified=True)
    remove(engine, tenant, leaver)
    assert [args for args, _ in revocations.queued] == [
        (tenant.pk, sorted([leaver.email, "second@example.org"]))]


def test_nothing_is_enqueued_before_the_removal_commits(engine, tenant, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    membership = Membership.objects.get(tenant=tenant, user=leaver)
    with engine.capture(execute=False) as callbacks:
        tenancy.do_remove_member(engine.actor, engine.ctx, membership.pk)
    assert revocations.queued == []
    for callback in callbacks:
        callback()
    assert len(revocations.queued) == 1


def test_the_sweep_revokes_people_whose_membership_went_without_an_event(
        engine, tenant, owner, revocations):
    leaver = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    grant(running(engine), (leaver.email, "admin"), (owner.email, "admin"))
    Membership.objects.filter(user=leaver).delete()  # e.g. staff, in the admin
    assert access.sweep_access.run() == {"tenants": 1}
    assert [args for args, _ in revocations.queued] == [(tenant.pk, [leaver.email])]
    revocations.queued.clear()
    grant(Cluster.objects.get(name="demo"), (owner.email, "admin"))
    assert access.sweep_access.run() == {"tenants": 0}
