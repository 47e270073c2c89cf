"""Read-only impersonation: staff see the portal as a tenant's members do, with a banner, and
can change nothing; each session is in the tenant's audit log for its owners to read.

The write walk reuses the URL walk of ``tests/test_url_isolation.py``: every tenant URL, HTML
and API alike, is posted to (and put, patched, deleted) by an impersonating staff member, and
nothing may change.
"""

from __future__ import annotations

import time

import pytest
from django.urls import reverse

from billing.models import Budget
from clusters.models import Cluster, NodeGroup, Operation
from portal import reauthentication
from portal.models import ApiToken, AuditEntry, Invitation, Membership, Tenant
from portal.tenancy import IMPERSONATION_SESSION_KEY
from tests.api.factories import make_token
from tests.clusters.conftest import engine, platform, pushed, task_outbox
from tests.clusters.ui import make_cluster, make_operation, offline_platform
from tests.factories import UserFactory
from tests.portal.pages import by_testid, visible_text
from tests.staffing import audit
from tests.test_url_isolation import TENANT_PATTERNS, _url, world

__all__ = ["engine", "offline_platform", "platform", "pushed", "task_outbox", "world"]


def impersonating(client_for, staff, slug: str = "acme"):
    client = client_for(staff)
    response = client.post(reverse("staff_impersonate"), {"tenant": slug})
    assert response.status_code == 302, response.status_code
    return client


# --------------------------------------------------------------------------- starting, stopping


def test_staff_see_the_tenant_as_its_members_do_with_a_banner(client_for, staff_with_mfa,
                                                              owner, tenant):
    make_cluster(tenant, "web")
    client = client_for(staff_with_mfa)

    response = client.post(reverse("staff_impersonate"), {"tenant": "acme"}, follow=True)

    assert response.redirect_chain[-1][0] == "/t/acme/"
    banner, = by_testid(response, "impersonation-banner")
    assert "You are viewing ACME as its members see it. This view is read-only and recorded." \
        in banner
    for url in ("/t/acme/clusters/", "/t/acme/clusters/web/", "/t/acme/members/",
                "/t/acme/billing/", "/t/acme/billing/invoices/", "/t/acme/audit/"):
        page = client.get(url)
        assert page.status_code == 200, url
        assert by_testid(page, "impersonation-banner"), url


def test_starting_and_stopping_are_in_the_tenants_audit_log_for_its_owners(
        client_for, staff_with_mfa, owner, tenant):
    client = impersonating(client_for, staff_with_mfa)

    stopped = client.post(reverse("staff_impersonate_stop"), follow=True)

    assert f"You stopped viewing {tenant.name}." in visible_text(stopped)
    assert IMPERSONATION_SESSION_KEY not in client.session
    assert client.get("/t/acme/").status_code == 404  # staff are not members
    start, = audit("staff.impersonation.start")
    stop, = audit("staff.impersonation.stop")
    for entry in (start, stop):
        assert (entry.actor_label, entry.via, entry.tenant) == (staff_with_mfa.email, "admin",
                                                                 tenant)
    log = visible_text(client_for(owner).get("/t/acme/audit/"))
    assert f"{staff_with_mfa.email} Admin" in log
    assert "staff.impersonation.start" in log and "staff.impersonation.stop" in log


def test_switching_tenants_ends_the_first_session_in_its_own_log(client_for, staff_with_mfa,
                                                                tenant, other_tenant):
    client = impersonating(client_for, staff_with_mfa, "acme")

    impersonating_again = client.post(reverse("staff_impersonate"), {"tenant": "globex"})

    assert impersonating_again["Location"] == "/t/globex/"
    assert client.get("/t/acme/").status_code == 404
    assert [(e.verb, e.tenant_slug) for e in AuditEntry.objects.order_by("id")] == [
        ("staff.impersonation.start", "acme"), ("staff.impersonation.stop", "acme"),
        ("staff.impersonation.start", "globex")]


def test_staff_start_from_the_tenant_list_of_the_admin(client_for, staff_with_mfa, tenant):
    client = client_for(staff_with_mfa)

    response = client.post(reverse("admin:portal_tenant_changelist"), {
        "action": "view_as_tenant", "_selected_action": [tenant.pk]})

    assert response["Location"] == "/t/acme/"
    assert client.session[IMPERSONATION_SESSION_KEY] == tenant.pk
    assert len(audit("staff.impersonation.start")) == 1


def test_the_consoles_button_takes_staff_to_the_tenant_through_htmx(client_for, staff_with_mfa,
                                                                    tenant):
    client = client_for(staff_with_mfa)

    response = client.post(reverse("staff_impersonate"), {"tenant": "acme"},
                           headers={"HX-Request": "true"})

    assert response.status_code == 200 and response["HX-Redirect"] == "/t/acme/"
    assert client.session[IMPERSONATION_SESSION_KEY] == tenant.pk


def test_the_impersonation_reaches_only_the_chosen_tenant(client_for, staff_with_mfa, tenant,
                                                         other_tenant):
    client = impersonating(client_for, staff_with_mfa)

    assert client.get("/t/acme/").status_code == 200
    assert client.get("/t/globex/").status_code == 404
    assert client.get("/api/v1/tenants/globex/clusters/").status_code == 404


def _lose_standing(staff, change: str) -> None:
    from allauth.mfa.models import Authenticator

    if change == "authenticator_removed":
        Authenticator.objects.filter(user=staff).delete()
    elif change == "authenticator_replaced":  # a new app: the session never passed this one
        from tests.portal.conftest import give_totp

        Authenticator.objects.filter(user=staff).delete()
        give_totp(staff)
    elif change == "staff_flag_dropped":
        staff.is_staff = False
        staff.save(update_fields=["is_staff"])
    else:
        staff.is_active = False
        staff.save(update_fields=["is_active"])


STANDING_LOST = ["authenticator_removed", "authenticator_replaced", "staff_flag_dropped",
                 "deactivated"]
REASONS = {"authenticator_removed": "no_authenticator", "authenticator_replaced": "password_only",
           "staff_flag_dropped": "not_staff", "deactivated": "not_staff"}


@pytest.mark.parametrize("change", STANDING_LOST)
def test_the_impersonation_ends_at_the_next_request_once_the_staff_member_loses_standing(
        client_for, staff_with_mfa, owner, tenant, change):
    client = impersonating(client_for, staff_with_mfa)
    assert client.get("/t/acme/").status_code == 200

    _lose_standing(staff_with_mfa, change)
    page = client.get("/t/acme/")
    api = client.get("/api/v1/tenants/acme/clusters/")

    # No longer a view of the tenant: not found, or signed out for a deactivated account.
    assert (page.status_code, api.status_code) == (
        (302, 401) if change == "deactivated" else (404, 404))
    assert IMPERSONATION_SESSION_KEY not in client.session
    stop, = audit("staff.impersonation.stop")
    assert (stop.actor, stop.via, stop.tenant) == (staff_with_mfa, "admin", tenant)
    assert stop.changes == {"reason": [None, REASONS[change]]}
    assert "staff.impersonation.stop" in visible_text(client_for(owner).get("/t/acme/audit/"))


def test_the_staff_member_is_told_why_the_view_ended(client_for, staff_with_mfa, tenant):
    client = impersonating(client_for, staff_with_mfa)
    _lose_standing(staff_with_mfa, "authenticator_removed")

    response = client.get("/", follow=True)

    assert "Your read-only view of ACME ended" in visible_text(response)
    assert not by_testid(response, "impersonation-banner")


def _impersonating_cookie() -> tuple[object, bytes]:
    from django.test import Client

    from tests.factories import TenantFactory
    from tests.portal.conftest import give_totp
    from tests.staffing import sign_in

    tenant = TenantFactory(slug="acme", name="ACME")
    make_cluster(tenant, "demo")
    staff = UserFactory(is_staff=True, is_superuser=True)
    give_totp(staff)
    client = sign_in(Client(), staff)
    assert client.post(reverse("staff_impersonate"), {"tenant": "acme"}).status_code == 302
    return staff, f"sessionid={client.cookies['sessionid'].value}".encode()


async def _live_list_opens(cookie: bytes) -> bool:
    from channels.testing import WebsocketCommunicator

    from portal.asgi import application

    communicator = WebsocketCommunicator(
        application, "/ws/t/acme/clusters/?lang=en&phase=&version=&page=1",
        headers=[(b"origin", b"http://127.0.0.1"), (b"cookie", cookie)])
    connected, _code = await communicator.connect(timeout=5)
    await communicator.disconnect()
    return connected


@pytest.mark.parametrize("change", ["authenticator_removed", "staff_flag_dropped"])
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_platform")
async def test_live_updates_of_an_impersonated_tenant_stop_with_the_standing(change):
    from channels.db import database_sync_to_async

    staff, cookie = await database_sync_to_async(_impersonating_cookie)()
    assert await _live_list_opens(cookie)

    await database_sync_to_async(_lose_standing)(staff, change)

    assert not await _live_list_opens(cookie)


@pytest.mark.parametrize("who", ["staff_without_mfa", "non_staff", "tenant_member"])
def test_only_staff_with_mfa_may_impersonate(client_for, who, request, tenant, owner,
                                             other_tenant, outsider):
    user = {"staff_without_mfa": lambda: request.getfixturevalue("staff_without_mfa"),
            "non_staff": UserFactory,
            "tenant_member": lambda: outsider}[who]()
    client = client_for(user)

    response = client.post(reverse("staff_impersonate"), {"tenant": "acme"})

    assert response.status_code == 403
    assert IMPERSONATION_SESSION_KEY not in client.session
    assert client.get("/t/acme/").status_code == 404
    assert audit("staff.impersonation.start") == []


def test_a_session_key_alone_gives_nothing_to_a_non_staff_user(client_for, tenant):
    client = client_for(UserFactory())
    session = client.session
    session[IMPERSONATION_SESSION_KEY] = tenant.pk
    session.save()

    assert client.get("/t/acme/").status_code == 404
    assert client.get("/api/v1/tenants/acme/clusters/").status_code == 404


def test_an_impersonating_staff_member_sees_no_write_buttons(client_for, staff_with_mfa, owner,
                                                             tenant):
    make_cluster(tenant, "web")
    client = impersonating(client_for, staff_with_mfa)

    detail = client.get("/t/acme/clusters/web/").content.decode()
    members = client.get("/t/acme/members/").content.decode()

    assert "/t/acme/clusters/web/delete/" not in detail
    assert "/t/acme/clusters/web/upgrade/" not in detail
    assert "/t/acme/members/invite/" not in members


# --------------------------------------------------------------------------- nothing changes


def _counts() -> dict[str, int]:
    return {
        "tenants": Tenant.objects.count(),
        "tenant_names": repr(list(Tenant.objects.order_by("pk").values_list("name", flat=True))),
        "memberships": repr(list(Membership.objects.order_by("pk").values_list("role",
                                                                                flat=True))),
        "invitations": repr(list(Invitation.objects.order_by("pk").values_list(
            "revoked_at", "accepted_at"))),
        "clusters": repr(list(Cluster.objects.order_by("pk").values_list(
            "phase", "version", "deleted_at", "addons"))),
        "groups": repr(list(NodeGroup.objects.order_by("pk").values_list(
            "min_replicas", "max_replicas", "removed_at", "instance_type"))),
        "operations": repr(list(Operation.objects.order_by("pk").values_list("pk", "state"))),
        "budgets": Budget.objects.count(),
        "tokens": ApiToken.objects.count(),
        "audit": AuditEntry.objects.exclude(verb__startswith="staff.impersonation").count(),
    }


# A kubeconfig is a credential, not a change, yet a read-only view must not hand it out. Today
# only side conditions stop an empty request here (the HTML view asks for a recent sign-in,
# the API for a JSON body); a real request gets the file. See
# test_kubeconfigs_are_not_handed_to_an_impersonating_staff_member below.
CREDENTIALS = {"clusters:kubeconfig", "api:cluster_kubeconfig"}


@pytest.mark.usefixtures("offline_platform")
@pytest.mark.parametrize("pattern", TENANT_PATTERNS, ids=lambda p: p[0])
def test_impersonation_cannot_change_anything(pattern, world, client_for, staff_with_mfa):
    name, params, _entry, route = pattern
    url = _url(name, params, world)
    client = impersonating(client_for, staff_with_mfa)
    before = _counts()

    for method in ("post", "put", "patch", "delete"):
        response = getattr(client, method)(url)
        if name in CREDENTIALS:
            assert not 200 <= response.status_code < 300, (method, url, response.status_code)
            continue
        assert response.status_code in (403, 405), (method, url, response.status_code)

    assert _counts() == before


@pytest.mark.usefixtures("offline_platform")
def test_real_writes_are_refused_with_the_read_only_reason(client_for, staff_with_mfa, owner,
                                                           tenant):
    cluster = make_cluster(tenant, "web")
    queued = make_operation(make_cluster(tenant, "slow"), state=Operation.State.QUEUED,
                            submitted=False)
    client = impersonating(client_for, staff_with_mfa)
    member = Membership.objects.get(tenant=tenant, user=owner)

    attempts = [
        ("/t/acme/settings/", {"name": "Taken over"}),
        ("/t/acme/members/invite/", {"email": "spy@example.org", "role": "owner"}),
        (f"/t/acme/members/{member.pk}/remove/", {}),
        ("/t/acme/leave/", {}),
        ("/t/acme/clusters/-/new/", {"name": "sneaky", "version": "v1.34"}),
        ("/t/acme/clusters/web/delete/", {"delete-confirm": "web"}),
        ("/t/acme/clusters/web/groups/md0/scale/", {"scale-md0-min_replicas": 1,
                                                    "scale-md0-max_replicas": 9}),
        (f"/t/acme/clusters/slow/operations/{queued.pk}/cancel/", {}),
        ("/t/acme/billing/budget/", {"amount": "10", "thresholds": "50,100"}),
    ]
    for url, data in attempts:
        response = client.post(url, data)
        assert response.status_code == 403, (url, response.status_code)
    cluster.refresh_from_db()
    queued.refresh_from_db()
    assert not cluster.is_deleted and queued.state == Operation.State.QUEUED
    assert Membership.objects.filter(tenant=tenant, user=owner).exists()
    assert Tenant.objects.get(pk=tenant.pk).name == "ACME"


@pytest.mark.usefixtures("offline_platform")
def test_the_api_refuses_writes_from_an_impersonating_staff_session(client_for, staff_with_mfa,
                                                                   tenant):
    make_cluster(tenant, "web")
    client = impersonating(client_for, staff_with_mfa)

    listed = client.get("/api/v1/tenants/acme/clusters/")
    created = client.post("/api/v1/tenants/acme/clusters/", {
        "name": "sneaky", "version": "v1.34",
        "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                         "max_replicas": 3}]}, content_type="application/json")
    deleted = client.delete("/api/v1/tenants/acme/clusters/web/")
    upgraded = client.post("/api/v1/tenants/acme/clusters/web/upgrade/", {},
                           content_type="application/json")

    assert listed.status_code == 200 and [c["name"] for c in listed.json()["results"]] == ["web"]
    for response in (created, deleted, upgraded):
        assert response.status_code == 403, response.content
    assert not Cluster.objects.filter(name="sneaky").exists()
    assert not Cluster.objects.get(name="web").is_deleted


@pytest.mark.usefixtures("offline_platform")
def test_a_staff_members_own_token_never_impersonates(api_token_client, staff_with_mfa, tenant):
    make_cluster(tenant, "web")
    client = api_token_client(staff_with_mfa)

    assert client.get("/api/v1/tenants/acme/clusters/").status_code == 404
    assert client.post("/api/v1/tenants/acme/clusters/web/upgrade/", {},
                       content_type="application/json").status_code == 404


@pytest.fixture
def api_token_client(client_for):
    """A staff member who started an impersonation in the browser, then uses their own token
    from a script sharing the session cookie: the token decides, not the session."""

    def make(user):
        client = impersonating(client_for, user)
        client.defaults["HTTP_AUTHORIZATION"] = f"Bearer {make_token(user)}"
        return client

    return make


def test_kubeconfigs_are_not_handed_to_an_impersonating_staff_member(
        client_for, staff_with_mfa, engine):
    cluster = engine.create()
    engine.settle(cluster)
    # Signed in a moment ago (password and app): recent enough for anyone else's kubeconfig.
    client = impersonating(client_for, staff_with_mfa)
    session = client.session
    session[reauthentication.SESSION_KEY] = {"user": str(staff_with_mfa.pk), "at": time.time()}
    session.save()

    api = client.get("/api/v1/tenants/acme/clusters/demo/kubeconfig/", {"kind": "super_admin"})
    page = client.post("/t/acme/clusters/demo/kubeconfig/", {"kind": "admin"})

    assert api.status_code == 403, api.content[:200]
    assert page.status_code == 403
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_the_live_updates_of_an_impersonated_tenant_are_read_only(staff_with_mfa, tenant):
    from clusters.web import live
    from portal.tenancy import access_tenant

    ctx = access_tenant(staff_with_mfa, "acme", impersonate_tenant_id=tenant.pk)

    assert ctx.read_only and live.tier_of(ctx) == live.VIEW
