"""Lowering a member's portal role lowers their single sign-on access to the tenant's clusters
(``MembershipRoleChanged``, published through ``portal.events``): admin becomes view where the
new role only reads, and access goes where the new role sees no cluster. Raising a role grants
nothing. Each change is an access operation with its audit entry; the sweep catches a role
changed without an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from clusters import access
from clusters.models import Cluster, ClusterEvent, Operation
from portal import actions as tenancy
from portal import events
from portal.member_events import MembershipRoleChanged
from portal.models import AuditEntry, Membership
from portal.permissions import Role
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db


@dataclass
class Queued:
    """The access tasks as enqueued (recorded, run by the test), never through a broker."""

    lowered: list[tuple[tuple[Any, ...], float | None]] = field(default_factory=list)
    revoked: list[tuple[tuple[Any, ...], float | None]] = field(default_factory=list)
    capture: Any = None

    def run(self) -> list[dict[str, int]]:
        batch = list(self.lowered)
        self.lowered.clear()  # the list the recorder appends to: a retry lands in it again
        with self.capture(execute=True):
            return [access.lower_access.run(*args) for args, _countdown in batch]


@pytest.fixture
def queued(monkeypatch, django_capture_on_commit_callbacks) -> Queued:
    recorded = Queued(capture=django_capture_on_commit_callbacks)

    def keep(into):
        def record(args=None, kwargs=None, *, countdown=None, **options):
            into.append((tuple(args or ()), countdown))
        return record

    monkeypatch.setattr(access.lower_access, "apply_async", keep(recorded.lowered))
    monkeypatch.setattr(access.revoke_access, "apply_async", keep(recorded.revoked))
    return recorded


def running(engine, name: str = "demo") -> Cluster:
    from tests.clusters.conftest import cluster_spec

    cluster = engine.create(cluster_spec(name))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    return cluster


def grant(cluster: Cluster, *users: tuple[str, str]) -> None:
    cluster.oidc_users = [{"email": email, "role": role} for email, role in users]
    cluster.save(update_fields=["oidc_users"])


def change_role(engine, tenant, user, role: str) -> None:
    membership = Membership.objects.get(tenant=tenant, user=user)
    with engine.capture(execute=True):
        tenancy.do_change_role(engine.actor, engine.ctx, membership.pk, role=role)


def test_the_role_change_is_published_for_other_domains(engine, tenant):
    person = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    assert access.on_membership_role_changed in events.subscribers(MembershipRoleChanged,
                                                                   "after_commit")
    seen: list[MembershipRoleChanged] = []
    events.subscribe(MembershipRoleChanged, seen.append, moment="after_commit")
    try:
        change_role(engine, tenant, person, Role.VIEWER)
    finally:
        events._handlers[(MembershipRoleChanged, "after_commit")].remove(seen.append)
    assert [(e.before, e.after, e.emails) for e in seen] == [
        (Role.ADMIN, Role.VIEWER, frozenset({person.email.lower()}))]


def test_a_member_lowered_to_viewer_keeps_only_view_on_every_cluster(engine, tenant, owner,
                                                                     queued):
    person = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    demo, other = running(engine), running(engine, "other")
    grant(demo, (person.email, "admin"), (owner.email, "admin"))
    grant(other, (person.email, "view"))

    change_role(engine, tenant, person, Role.VIEWER)
    assert [args for args, _ in queued.lowered] == [(tenant.pk, [person.email])]
    assert queued.run() == [{"lowered": 1, "busy": 0, "refused": 0}]

    demo.refresh_from_db()
    assert {u["email"]: u["role"] for u in demo.oidc_users} == {owner.email: "admin",
                                                                person.email: "view"}
    operation = engine.operation(demo)
    assert operation.kind == Operation.Kind.ACCESS and operation.requested_by is None
    assert operation.params["access_role_changed"] == [person.email]
    assert ClusterEvent.objects.filter(
        cluster=demo, reason="operation.access",
        message=f"Access of {person.email} lowered to view: their role in the tenant no longer "
                "allows cluster-admin.").exists()
    entry = AuditEntry.objects.filter(verb="cluster.access").latest("pk")
    assert entry.actor is None and entry.object_id == str(demo.pk)
    # The cluster that granted view only is left alone.
    assert engine.operation(other).kind == Operation.Kind.CREATE
    assert queued.run() == []


def test_a_member_moved_to_billing_loses_cluster_access(engine, tenant, queued):
    person = MembershipFactory(tenant=tenant, role=Role.ADMIN).user
    demo = running(engine)
    grant(demo, (person.email, "view"))
    change_role(engine, tenant, person, Role.BILLING)
    assert queued.run() == [{"lowered": 1, "busy": 0, "refused": 0}]
    demo.refresh_from_db()
    assert demo.oidc_users == []
    assert engine.operation(demo).params["access_removed"] == [person.email]


@pytest.mark.parametrize(("before", "after"), [
    (Role.VIEWER, Role.ADMIN), (Role.ADMIN, Role.MEMBER), (Role.MEMBER, Role.ADMIN)])
def test_a_role_that_allows_as_much_or_more_changes_no_access(engine, tenant, queued, before,
                                                              after):
    person = MembershipFactory(tenant=tenant, role=before).user
    demo = running(engine)
    grant(demo, (person.email, "view"))
    change_role(engine, tenant, person, after)
    assert queued.lowered == []
    demo.refresh_from_db()
    assert demo.oidc_users == [{"email": person.email, "role": "view"}]  # never raised


def test_a_role_raised_again_before_the_task_runs_is_respected(engine, tenant, queued):
    person = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    demo = running(engine)
    grant(demo, (person.email, "admin"))
    change_role(engine, tenant, person, Role.VIEWER)
    change_role(engine, tenant, person, Role.MEMBER)
    assert queued.run() == [{"lowered": 0, "busy": 0, "refused": 0}]
    demo.refresh_from_db()
    assert demo.oidc_users == [{"email": person.email, "role": "admin"}]


def test_a_busy_cluster_is_lowered_once_its_change_is_done(engine, tenant, queued):
    from tests.clusters.conftest import cluster_spec

    person = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    cluster = engine.create(cluster_spec())  # its creation is still in flight
    grant(cluster, (person.email, "admin"))
    change_role(engine, tenant, person, Role.VIEWER)
    assert queued.run() == [{"lowered": 0, "busy": 1, "refused": 0}]
    assert queued.lowered == [((tenant.pk, [person.email]), access.BUSY_RETRY_SECONDS)]
    engine.settle(cluster)
    assert queued.run() == [{"lowered": 1, "busy": 0, "refused": 0}]
    cluster.refresh_from_db()
    assert cluster.oidc_users == [{"email": person.email, "role": "view"}]


def test_an_ownership_transfer_lowers_nothing(engine, tenant, owner, queued):
    person = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    grant(running(engine), (owner.email, "admin"))
    membership = Membership.objects.get(tenant=tenant, user=person)
    with engine.capture(execute=True):
        tenancy.do_transfer_ownership(engine.actor, engine.ctx, membership.pk)
    assert queued.lowered == []  # the former owner is an admin: cluster-admin is still allowed


def test_the_sweep_lowers_a_role_changed_without_an_event(engine, tenant, owner, queued):
    person = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    grant(running(engine), (person.email, "admin"), (owner.email, "admin"))
    Membership.objects.filter(user=person).update(role=Role.VIEWER)  # e.g. staff, in the admin
    assert access.sweep_access.run() == {"tenants": 1}
    assert [args for args, _ in queued.lowered] == [(tenant.pk, [person.email])]
    assert queued.revoked == []
    queued.run()
    assert access.sweep_access.run() == {"tenants": 0}
