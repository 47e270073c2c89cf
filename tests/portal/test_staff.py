"""Staff run the service from the portal: the operations console, tenants in the admin
(create, rename, quotas, members, suspend), announcements and the exportable audit log.

Every staff action is tried by staff with two-factor authentication (it works and leaves an
audit entry with their name), by staff without it and by a signed-in non-staff user (both are
refused and nothing changes).
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from billing.models import UsageSegment
from clusters.models import Offering, Operation
from portal.models import Announcement, AuditEntry, Membership, Tenant
from portal.permissions import Role
from tests.clusters.conftest import platform
from tests.clusters.ui import make_cluster, make_operation, offline_platform
from tests.factories import MembershipFactory, TenantFactory, UserFactory
from tests.portal.pages import by_testid, table_rows, visible_text
from tests.staffing import REFUSED, audit

__all__ = ["offline_platform", "platform"]


def tenant_action(client, action: str, tenants, **extra):
    return client.post(reverse("admin:portal_tenant_changelist"), {
        "action": action, "_selected_action": [t.pk for t in tenants], **extra}, follow=True)


# --------------------------------------------------------------------------- the console


CONSOLE = "/staff/"


def test_anonymous_visitors_are_sent_to_sign_in(client):
    response = client.get(CONSOLE)
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@REFUSED
def test_the_console_is_refused(client_for, refused):
    response = client_for(refused).get(CONSOLE)

    assert response.status_code == 403
    assert "Operations console" not in visible_text(response)


def test_staff_without_mfa_are_told_to_set_it_up(client_for, staff_without_mfa):
    response = client_for(staff_without_mfa).get(CONSOLE)

    assert response.status_code == 403
    assert "Two-factor authentication required" in visible_text(response)


@pytest.mark.usefixtures("offline_platform")
def test_an_empty_platform_reads_calmly(client_for, staff_with_mfa):
    page = client_for(staff_with_mfa).get(CONSOLE)

    assert page.status_code == 200
    assert by_testid(page, "stuck-operations") == ["Nothing is stuck."]
    assert by_testid(page, "failed-operations") == ["No failures."]
    assert by_testid(page, "versions") == ["No clusters."]
    assert by_testid(page, "top-tenants") == ["No usage yet."]
    assert by_testid(page, "revenue") == ["CHF 0.00"]
    assert by_testid(page, "watcher-down") == ["Not running"]
    assert "No resync has run yet." in visible_text(page)


@pytest.mark.usefixtures("offline_platform")
def test_stuck_operations_are_listed_past_the_chosen_age(client_for, staff_with_mfa, tenant):
    stuck = make_operation(make_cluster(tenant, "slow"), Operation.Kind.UPGRADE,
                           state=Operation.State.RUNNING, minutes_ago=45)
    make_operation(make_cluster(tenant, "fresh"), Operation.Kind.SCALE,
                   state=Operation.State.RUNNING, minutes_ago=5)
    make_operation(make_cluster(tenant, "done"), minutes_ago=300)
    client = client_for(staff_with_mfa)

    default = client.get(CONSOLE)
    longer = client.get(CONSOLE, {"stuck": "60"})

    rows = table_rows(default, "stuck-operations")
    assert [r[:2] for r in rows] == [["Upgrade", "acme/slow"]]
    assert reverse("admin:clusters_cluster_change", args=[stuck.cluster_id]) in \
        default.content.decode()
    assert table_rows(longer, "stuck-operations") == [["Nothing is stuck."]]
    assert "Operations running longer than 60 minutes" in visible_text(longer)


@pytest.mark.usefixtures("offline_platform")
def test_failed_operations_are_grouped_by_error_class(client_for, staff_with_mfa, tenant):
    for name, error_class, message in [
            ("a", Operation.ErrorClass.TIMEOUT, "Workers never became ready"),
            ("b", Operation.ErrorClass.TIMEOUT, "Control plane stuck"),
            ("c", Operation.ErrorClass.INVALID_SPEC, "nodeGroups.md0: unknown instance type")]:
        make_operation(make_cluster(tenant, name), state=Operation.State.FAILED,
                       error_class=error_class, error_message=message)
    old = make_operation(make_cluster(tenant, "old"), state=Operation.State.FAILED,
                         error_class=Operation.ErrorClass.CONFLICT, error_message="ancient")
    Operation.objects.filter(pk=old.pk).update(finished_at=timezone.now() - timedelta(days=8))

    page = client_for(staff_with_mfa).get(CONSOLE)

    text = by_testid(page, "failed-operations")[0]
    assert "Did not converge in time · 2" in text
    assert "The platform rejected the specification · 1" in text
    assert "acme/c — nodeGroups.md0: unknown instance type" in text
    assert "ancient" not in text and "Conflicting change" not in text


@pytest.mark.usefixtures("offline_platform")
def test_clusters_per_version_flag_the_end_of_life_ones(client_for, staff_with_mfa, tenant):
    make_cluster(tenant, "old1", version="v1.33")
    make_cluster(tenant, "old2", version="v1.33")
    make_cluster(tenant, "new", version="v1.34")
    gone = make_cluster(tenant, "gone", version="v1.32")
    gone.deleted_at = timezone.now()
    gone.save()
    Offering.objects.create(kind="version", name="v1.33", end_of_life_on=date(2020, 1, 1))

    page = client_for(staff_with_mfa).get(CONSOLE)

    assert table_rows(page, "versions") == [["v1.34", "1"], ["v1.33 end of life", "2"]]
    assert 'class="table-danger"' in page.content.decode()


@pytest.mark.usefixtures("offline_platform")
def test_capacity_in_use_by_instance_type_and_gpu_model(client_for, staff_with_mfa, tenant):
    make_cluster(tenant, "web", groups=[
        {"name": "md0", "instance_type": "u1.large", "observed_nodes": 3},
        {"name": "md1", "instance_type": "u1.medium", "observed_nodes": 2}])
    make_cluster(tenant, "ml", groups=[
        {"name": "gpu", "instance_type": "u1.2xlarge", "observed_nodes": 2,
         "gpu_model": "nvidia.com/H100_94GB", "gpus_per_node": 4}])
    make_cluster(tenant, "more", groups=[
        {"name": "md0", "instance_type": "u1.large", "observed_nodes": 1}])

    page = client_for(staff_with_mfa).get(CONSOLE)

    assert table_rows(page, "capacity") == [
        ["u1.large", "4"], ["u1.2xlarge", "2"], ["u1.medium", "2"],
        ["nvidia.com/H100_94GB", "8 GPUs"]]


@pytest.mark.usefixtures("offline_platform")
def test_revenue_so_far_and_the_top_tenants(client_for, staff_with_mfa, tenant, other_tenant):
    from billing.periods import Period
    from billing.queries import revenue_mtd
    from tests.billing.conftest import add_price

    add_price("node.t1.test", "3.60")
    now = timezone.now().replace(microsecond=0)
    month = datetime.combine(Period.current(now).start, time.min, tzinfo=UTC)
    start = max(month, now - timedelta(hours=2))
    middle = start + (now - start) / 2
    for t, nodes in ((tenant, 2), (other_tenant, 1)):
        cluster = make_cluster(t, f"c-{t.slug}", groups=[{"instance_type": "t1.test"}])
        UsageSegment.objects.create(tenant=t, cluster=cluster,
                                    node_group=cluster.node_groups.get(), sku="node.t1.test",
                                    quantity=Decimal(nodes), start=start,
                                    end=middle.replace(microsecond=0))
    expected = revenue_mtd()
    assert expected > 0

    page = client_for(staff_with_mfa).get(CONSOLE)

    assert by_testid(page, "revenue") == [f"CHF {expected:,.2f}"]
    rows = table_rows(page, "top-tenants")
    assert [r[0] for r in rows] == ["ACME", "Globex"]
    assert "View as tenant" in visible_text(page)


@pytest.fixture
def watcher_cache(platform):
    """Watcher health and the last resync live in the shared cache: leave nothing behind."""
    from clusters.watcher import HEALTH_KEY

    yield
    cache.delete_many([HEALTH_KEY, "clusters:last-resync"])


@pytest.mark.usefixtures("watcher_cache")
def test_a_reachable_platform_and_a_running_watcher(client_for, staff_with_mfa):
    from clusters import tasks
    from clusters.watcher import StreamHealth, WatcherHealth

    health = WatcherHealth()
    health.streams["clusters"] = StreamHealth("clusters", events=12, relists=1,
                                              last_event_at=timezone.now().timestamp() - 30)
    health.publish()
    tasks.record_resync({"requeued": 1, "polled": 0, "changed": 3, "orphans": 0,
                         "unreachable": 0})

    page = client_for(staff_with_mfa).get(CONSOLE)

    assert by_testid(page, "platform-ok") == ["Reachable"]
    watcher = by_testid(page, "watcher")[0].replace("\xa0", " ")
    assert "Last event: 30 seconds ago" in watcher
    assert "clusters: 12 events, 1 relists, 0 reconnects" in watcher
    assert by_testid(page, "resync")[0].endswith(
        "3 changes applied, 1 operations re-queued, 0 polls restarted.")


@pytest.mark.usefixtures("offline_platform")
def test_an_unreachable_platform_is_said_in_red(client_for, staff_with_mfa):
    page = client_for(staff_with_mfa).get(CONSOLE)

    assert by_testid(page, "platform-down") == ["Unreachable"]
    assert "no usable connection to the platform" in visible_text(page)


@pytest.mark.usefixtures("offline_platform")
def test_the_polling_fallback_gets_the_board_as_an_out_of_band_region(client_for, staff_with_mfa,
                                                                     tenant):
    client = client_for(staff_with_mfa)
    make_operation(make_cluster(tenant, "slow"), state=Operation.State.RUNNING, minutes_ago=20)

    region = client.get(CONSOLE, {"stuck": "10"}, headers={"HX-Request": "true"})

    html = region.content.decode()
    assert html.lstrip().startswith('<div id="ops-board" hx-swap-oob="true"')
    assert "<html" not in html
    assert "acme/slow" in visible_text(region)


@pytest.mark.usefixtures("offline_platform")
def test_the_console_cost_does_not_grow_with_the_fleet(client_for, staff_with_mfa, tenant,
                                                       django_assert_max_num_queries):
    client = client_for(staff_with_mfa)
    for i in range(3):
        make_operation(make_cluster(tenant, f"c{i}"), state=Operation.State.FAILED,
                       error_class=Operation.ErrorClass.TIMEOUT, error_message="x")
    client.get(CONSOLE)  # warm the session and caches
    with django_assert_max_num_queries(40) as small:
        client.get(CONSOLE)
    for i in range(3, 30):
        make_operation(make_cluster(tenant, f"c{i}"), state=Operation.State.FAILED,
                       error_class=Operation.ErrorClass.TIMEOUT, error_message="x")
    with django_assert_max_num_queries(len(small.captured_queries)):
        client.get(CONSOLE)


# --------------------------------------------------------------------------- tenants


def tenant_form(**values) -> dict:
    data = {"slug": "initech", "name": "Initech", "invoice_language": "en",
            "quota_clusters": "", "quota_vcpu": "", "quota_memory_gib": "", "quota_gpus": "",
            "memberships-TOTAL_FORMS": "0", "memberships-INITIAL_FORMS": "0"}
    data.update(values)
    return data


def test_staff_create_rename_and_set_quotas_of_a_tenant(client_for, staff_with_mfa, user):
    colleague = UserFactory()
    client = client_for(staff_with_mfa)

    created = client.post(reverse("admin:portal_tenant_add"), tenant_form(**{
        "memberships-TOTAL_FORMS": "2", "memberships-0-user": str(user.pk),
        "memberships-0-role": Role.OWNER, "memberships-1-user": str(colleague.pk),
        "memberships-1-role": Role.MEMBER}))
    assert created.status_code == 302, visible_text(created)[:3000]
    tenant = Tenant.objects.get(slug="initech")
    rows = {m.user: m for m in Membership.objects.filter(tenant=tenant)}
    assert {u: m.role for u, m in rows.items()} == {user: Role.OWNER, colleague: Role.MEMBER}

    def inline(i: int, member, role: str) -> dict:
        return {f"memberships-{i}-id": str(rows[member].pk),
                f"memberships-{i}-tenant": str(tenant.pk),
                f"memberships-{i}-user": str(member.pk), f"memberships-{i}-role": role}

    changed = client.post(reverse("admin:portal_tenant_change", args=[tenant.pk]), tenant_form(
        name="Initech Corp", quota_clusters="2", quota_gpus="0", **{
            "memberships-TOTAL_FORMS": "2", "memberships-INITIAL_FORMS": "2",
            **inline(0, user, Role.OWNER), **inline(1, colleague, Role.ADMIN)}))
    assert changed.status_code == 302, visible_text(changed)[:3000]

    tenant.refresh_from_db()
    assert tenant.name == "Initech Corp"
    assert tenant.quota() == {"clusters": 2, "vcpu": 256, "memory_gib": 1024, "gpus": 0}
    create, = audit("tenant.create")
    update, = audit("tenant.update")
    assert create.actor_label == update.actor_label == staff_with_mfa.email
    assert create.via == update.via == "admin"
    assert create.changes["slug"] == [None, "initech"]
    assert update.changes == {"name": ["Initech", "Initech Corp"], "quota_clusters": [None, 2],
                              "quota_gpus": [None, 0]}
    assert sorted(e.changes["role"][1] for e in audit("membership.create")) == ["member",
                                                                                "owner"]
    change, = audit("membership.role_change")
    assert change.changes["role"] == ["member", "admin"]
    assert change.changes["user"] == [None, str(colleague)]
    assert all(e.tenant == tenant for e in audit("tenant.update") + audit("membership.create"))


def test_the_tenant_page_shows_quota_use_against_the_limits(client_for, staff_with_mfa, tenant):
    tenant.quota_clusters = 3
    tenant.save()
    make_cluster(tenant, "web")

    page = client_for(staff_with_mfa).get(reverse("admin:portal_tenant_change",
                                                  args=[tenant.pk]))

    text = visible_text(page)
    assert "Clusters: 1 / 3" in text and "GPUs: 0 / 4" in text
    assert "View as this tenant" in text


@REFUSED
def test_tenants_cannot_be_created_or_changed(client_for, refused, tenant):
    client = client_for(refused)

    client.post(reverse("admin:portal_tenant_add"), tenant_form())
    client.post(reverse("admin:portal_tenant_change", args=[tenant.pk]),
                tenant_form(slug="acme", name="Hacked", quota_clusters="999"))

    tenant.refresh_from_db()
    assert (tenant.name, tenant.quota_clusters) == ("ACME", None)
    assert not Tenant.objects.filter(slug="initech").exists()
    assert not AuditEntry.objects.exists()


def test_staff_invite_someone_to_a_tenant_from_the_admin(client_for, staff_with_mfa, tenant,
                                                        django_capture_on_commit_callbacks):
    from django.core import mail

    from portal.models import Invitation

    client = client_for(staff_with_mfa)
    form = tenant_action(client, "invite", [tenant])
    assert "Invite someone to ACME" in visible_text(form)

    with django_capture_on_commit_callbacks(execute=True):
        done = tenant_action(client, "invite", [tenant], confirm="yes",
                             email="New.Owner@Example.org", role=Role.OWNER)

    assert "Invitation sent to New.Owner@Example.org." in visible_text(done)
    invitation = Invitation.objects.get()
    assert (invitation.email, invitation.role, invitation.invited_by) == (
        "new.owner@example.org", Role.OWNER, staff_with_mfa)
    assert [m.to for m in mail.outbox] == [["new.owner@example.org"]]
    entry, = audit("invitation.create")
    assert (entry.actor_label, entry.via, entry.tenant) == (staff_with_mfa.email, "admin", tenant)


def test_an_invitation_needs_a_valid_address(client_for, staff_with_mfa, tenant):
    response = tenant_action(client_for(staff_with_mfa), "invite", [tenant], confirm="yes",
                             email="not-an-address", role=Role.MEMBER)

    assert "Enter a valid email address." in visible_text(response)
    assert not audit("invitation.create")


@REFUSED
def test_invitations_from_the_admin_are_refused(client_for, refused, tenant):
    from portal.models import Invitation

    response = tenant_action(client_for(refused), "invite", [tenant], confirm="yes",
                             email="spy@example.org", role=Role.OWNER)

    assert response.status_code == 403
    assert not Invitation.objects.exists()


def test_the_last_owner_cannot_be_removed_in_the_admin(client_for, staff_with_mfa, owner,
                                                       tenant):
    membership = Membership.objects.get(tenant=tenant, user=owner)

    response = client_for(staff_with_mfa).post(
        reverse("admin:portal_tenant_change", args=[tenant.pk]), tenant_form(
            slug="acme", name="ACME", **{
                "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "1",
                "memberships-0-id": str(membership.pk), "memberships-0-tenant": str(tenant.pk),
                "memberships-0-user": str(owner.pk), "memberships-0-role": Role.VIEWER}))

    assert response.status_code == 200
    assert "A tenant with members always has an owner" in visible_text(response)
    membership.refresh_from_db()
    assert membership.role == Role.OWNER


def test_tenants_are_suspended_never_deleted_in_the_admin(client_for, staff_with_mfa, tenant):
    client = client_for(staff_with_mfa)

    response = client.post(reverse("admin:portal_tenant_delete", args=[tenant.pk]),
                           {"post": "yes"})

    assert response.status_code == 403
    assert Tenant.objects.filter(pk=tenant.pk).exists()


def test_staff_suspend_with_a_reason_and_lift_it(client_for, staff_with_mfa, tenant,
                                                 other_tenant):
    client = client_for(staff_with_mfa)

    confirm = tenant_action(client, "suspend", [tenant])
    assert confirm.status_code == 200
    assert "Reason (shown to the tenant)" in visible_text(confirm)
    assert not Tenant.objects.get(pk=tenant.pk).is_suspended

    done = tenant_action(client, "suspend", [tenant], confirm="yes",
                         reason="Invoice 2026-0042 is 60 days overdue")
    assert "Suspended 1 tenant." in visible_text(done)
    tenant.refresh_from_db()
    assert tenant.is_suspended
    assert tenant.suspension_reason == "Invoice 2026-0042 is 60 days overdue"
    assert not Tenant.objects.get(pk=other_tenant.pk).is_suspended
    entry, = audit("tenant.suspend")
    assert (entry.actor_label, entry.via, entry.tenant) == (staff_with_mfa.email, "admin", tenant)
    assert entry.changes["reason"] == ["", "Invoice 2026-0042 is 60 days overdue"]

    lifted = tenant_action(client, "unsuspend", [tenant])
    assert "Lifted the suspension of 1 tenant." in visible_text(lifted)
    tenant.refresh_from_db()
    assert not tenant.is_suspended and tenant.suspension_reason == ""
    assert audit("tenant.unsuspend")[0].actor_label == staff_with_mfa.email


def test_a_suspension_needs_a_reason(client_for, staff_with_mfa, tenant):
    response = tenant_action(client_for(staff_with_mfa), "suspend", [tenant], confirm="yes",
                             reason="  ")

    assert "Give the reason; the tenant's members will see it." in visible_text(response)
    tenant.refresh_from_db()
    assert not tenant.is_suspended
    assert audit("tenant.suspend") == []


@REFUSED
def test_suspension_is_refused(client_for, refused, tenant, other_tenant):
    other_tenant.suspended_at = timezone.now()
    other_tenant.suspension_reason = "Fraud check"
    other_tenant.save()
    client = client_for(refused)

    assert tenant_action(client, "suspend", [tenant], confirm="yes",
                         reason="x").status_code == 403
    assert tenant_action(client, "unsuspend", [other_tenant]).status_code == 403

    assert not Tenant.objects.get(pk=tenant.pk).is_suspended
    assert Tenant.objects.get(pk=other_tenant.pk).is_suspended
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- announcements


def test_staff_publish_an_announcement_and_it_is_audited(client_for, staff_with_mfa, tenant):
    now = timezone.now()
    response = client_for(staff_with_mfa).post(reverse("admin:portal_announcement_add"), {
        "message": "Maintenance of the Geneva zone on Saturday 02:00–04:00 UTC",
        "level": "warning", "starts_at_0": now.strftime("%Y-%m-%d"),
        "starts_at_1": now.strftime("%H:%M:%S"), "ends_at_0": "", "ends_at_1": "",
        "tenants": [str(tenant.pk)]})

    assert response.status_code == 302, response.content[:3000]
    announcement = Announcement.objects.get()
    assert list(announcement.tenants.all()) == [tenant]
    entry, = audit("announcement.create")
    assert entry.actor_label == staff_with_mfa.email and entry.via == "admin"
    assert entry.changes["tenants"] == [None, ["ACME"]]


@REFUSED
def test_announcements_cannot_be_published(client_for, refused):
    client_for(refused).post(reverse("admin:portal_announcement_add"), {
        "message": "Free GPUs for everyone", "level": "info",
        "starts_at_0": "2020-01-01", "starts_at_1": "00:00:00"})

    assert not Announcement.objects.exists()


def banners(client, url: str) -> list[str]:
    return by_testid(client.get(url), "announcement")


def test_an_announcement_for_everyone_shows_to_every_tenant_while_it_runs(
        client_for, owner, outsider, tenant, other_tenant):
    now = timezone.now()
    Announcement.objects.create(message="Now for all", starts_at=now - timedelta(hours=1),
                                ends_at=now + timedelta(hours=1))
    Announcement.objects.create(message="Open-ended", starts_at=now - timedelta(days=1))
    Announcement.objects.create(message="Not yet", starts_at=now + timedelta(minutes=1))
    Announcement.objects.create(message="Over", starts_at=now - timedelta(days=2),
                                ends_at=now - timedelta(seconds=1))

    assert sorted(banners(client_for(owner), "/t/acme/")) == ["Now for all", "Open-ended"]
    assert sorted(banners(client_for(outsider), "/t/globex/clusters/")) == ["Now for all",
                                                                            "Open-ended"]
    assert sorted(banners(client_for(owner), "/")) == ["Now for all", "Open-ended"]


def test_an_announcement_for_selected_tenants_shows_only_to_them(client_for, owner, outsider,
                                                                 tenant, other_tenant):
    third = TenantFactory()
    both = MembershipFactory(tenant=third, role=Role.VIEWER, user=owner).user
    announcement = Announcement.objects.create(message="Your cluster moves tonight",
                                               level="danger")
    announcement.tenants.set([tenant])

    assert banners(client_for(owner), "/t/acme/") == ["Your cluster moves tonight"]
    assert banners(client_for(owner), "/t/acme/members/") == ["Your cluster moves tonight"]
    assert banners(client_for(both), f"/t/{third.slug}/") == []
    assert banners(client_for(outsider), "/t/globex/") == []
    assert banners(client_for(owner), "/") == []  # no tenant in view
    assert 'class="alert alert-danger"' in client_for(owner).get("/t/acme/").content.decode()


def test_announcement_changes_show_at_once_though_pages_cache_them(
        client_for, owner, tenant, django_capture_on_commit_callbacks):
    from portal.actions import do_delete_announcements, do_save_announcement

    client = client_for(owner)
    assert banners(client, "/t/acme/") == []  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        announcement = do_save_announcement(Announcement(message="Maintenance tonight",
                                                         starts_at=timezone.now()))
    assert banners(client, "/t/acme/") == ["Maintenance tonight"]

    with django_capture_on_commit_callbacks(execute=True):
        announcement.message = "Maintenance moved to tomorrow"
        do_save_announcement(announcement)
    assert banners(client, "/t/acme/members/") == ["Maintenance moved to tomorrow"]

    with django_capture_on_commit_callbacks(execute=True):
        do_delete_announcements(Announcement.objects.filter(pk=announcement.pk))
        do_save_announcement(Announcement(message="Upgrade window", starts_at=timezone.now()))
    assert banners(client, "/t/acme/") == ["Upgrade window"]

    with django_capture_on_commit_callbacks(execute=True):
        do_delete_announcements(Announcement.objects.all())  # the admin's "delete selected"
    assert banners(client, "/t/acme/") == []


def test_announcements_are_read_from_the_cache_between_changes(client_for, owner, tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    Announcement.objects.create(message="Now for all", starts_at=timezone.now())
    client = client_for(owner)
    assert banners(client, "/t/acme/") == ["Now for all"]
    with CaptureQueriesContext(connection) as captured:
        assert banners(client, "/t/acme/") == ["Now for all"]
    assert not [q for q in captured.captured_queries if "portal_announcement" in q["sql"]]


# --------------------------------------------------------------------------- the audit log


def test_staff_export_the_audit_log_to_csv(client_for, staff_with_mfa, owner, tenant):
    from portal.actions import do_rename_tenant
    from portal.audit import Actor
    from portal.tenancy import access_tenant

    do_rename_tenant(Actor(user=owner), access_tenant(owner, "acme"), name="ACME SA")
    entries = AuditEntry.objects.all()

    response = client_for(staff_with_mfa).post(reverse("admin:portal_auditentry_changelist"), {
        "action": "export_csv", "_selected_action": [e.pk for e in entries]})

    assert response["Content-Type"] == "text/csv"
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:5] == ["at", "actor", "via", "ip", "tenant"]
    assert rows[1][1:6:4] == [owner.email, "tenant.rename"]
    assert "ACME SA" in rows[1][-1]


def test_the_audit_log_cannot_be_edited_even_by_staff(client_for, staff_with_mfa, tenant):
    entry = AuditEntry.objects.create(actor_label="x", via="web", verb="tenant.rename",
                                      tenant=tenant, tenant_slug="acme")
    client = client_for(staff_with_mfa)

    assert client.get(reverse("admin:portal_auditentry_add")).status_code == 403
    client.post(reverse("admin:portal_auditentry_change", args=[entry.pk]), {"verb": "nothing"})
    client.post(reverse("admin:portal_auditentry_delete", args=[entry.pk]), {"post": "yes"})

    entry.refresh_from_db()
    assert entry.verb == "tenant.rename"


@REFUSED
def test_the_audit_log_is_not_exported(client_for, refused, tenant):
    AuditEntry.objects.create(actor_label="x", via="web", verb="tenant.rename", tenant=tenant)

    response = client_for(refused).post(reverse("admin:portal_auditentry_changelist"), {
        "action": "export_csv", "_selected_action": [e.pk for e in AuditEntry.objects.all()]},
        follow=True)

    assert response.status_code == 403
    assert response.get("Content-Type", "").startswith("text/html")


# --------------------------------------------------------------------------- live over a socket


async def _connect(user=None, query: str = "stuck=30&lang=en", *,
                   second_factor: bool | None = None):
    from channels.db import database_sync_to_async
    from channels.testing import WebsocketCommunicator

    from portal.asgi import application
    from tests.staffing import session_cookie

    headers = [(b"origin", b"http://127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(session_cookie)(
            user, second_factor=second_factor)))
    communicator = WebsocketCommunicator(application, f"/ws/staff/?{query}", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


def _staff(mfa: bool):
    from tests.portal.conftest import give_totp

    user = UserFactory(is_staff=True, is_superuser=True)
    if mfa:
        give_totp(user)
    return user


@pytest.mark.parametrize("who", ["anonymous", "non_staff", "staff_without_mfa"])
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_platform")
async def test_the_console_socket_is_closed_to_all_but_staff_with_mfa(who):
    from channels.db import database_sync_to_async

    user = None if who == "anonymous" else await database_sync_to_async(
        UserFactory if who == "non_staff" else lambda: _staff(mfa=False))()

    communicator, connected, code = await _connect(user)

    assert not connected and code == 4403
    await communicator.disconnect()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_platform")
async def test_the_console_socket_sends_the_board_then_what_changed(settings):
    from channels.db import database_sync_to_async

    from staff.views import notify_staff

    staff = await database_sync_to_async(_staff)(True)
    tenant = await database_sync_to_async(TenantFactory)(slug="acme", name="ACME")

    communicator, connected, _code = await _connect(staff, "stuck=10&lang=en")
    assert connected
    first = await communicator.receive_from(timeout=10)
    assert '<div id="ops-board" hx-swap-oob="true"' in first
    assert "Nothing is stuck." in visible_text(first)

    await communicator.receive_nothing(timeout=0.5)  # nothing changed: nothing sent
    await database_sync_to_async(lambda: make_operation(
        make_cluster(tenant, "slow"), Operation.Kind.UPGRADE, state=Operation.State.RUNNING,
        minutes_ago=20))()
    await database_sync_to_async(notify_staff)()

    second = await communicator.receive_from(timeout=10)
    assert "acme/slow" in visible_text(second)
    assert "Operations running longer than 10 minutes" in visible_text(second)
    await communicator.disconnect()


@pytest.mark.usefixtures("offline_platform")
def test_the_page_connects_to_the_socket_and_polls_without_it(client_for, staff_with_mfa):
    html = client_for(staff_with_mfa).get(CONSOLE, {"stuck": "60"}).content.decode()

    assert 'ws-connect="/ws/staff/?stuck=60&amp;lang=en"' in html
    assert 'data-poll-url="/staff/?stuck=60"' in html
    assert 'hx-swap-oob="true"' not in html  # the page itself swaps nothing
