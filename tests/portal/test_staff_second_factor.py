"""A stolen password alone never opens a staff page: the admin, the operations console, its
WebSocket and impersonation need a session that passed the staff member's second factor.

The sessions here are made the real way where it matters (the sign-in form, then the app), or
with ``tests.staffing.sign_in``, which writes the records allauth's sign-in writes.
"""

from __future__ import annotations

from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
from allauth.mfa.models import Authenticator
from django.urls import reverse

from portal.tenancy import IMPERSONATION_SESSION_KEY
from tests.clusters.ui import offline_platform
from tests.factories import PASSWORD, UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import by_testid, visible_text
from tests.portal.test_accounts import (
    MFA_AUTHENTICATE,
    current_code,
    log_in,
    signed_in_user_id,
    tolerant_totp,
)
from tests.staffing import audit

__all__ = ["offline_platform", "tolerant_totp"]

STAFF_PAGES = ["/admin/", "/admin/portal/tenant/", "/admin/auth/user/", "/staff/"]


@pytest.fixture
def staff_and_secret(db):
    user = UserFactory(is_staff=True, is_superuser=True)
    return user, give_totp(user)


def confirm_link(response) -> str:
    """The "Confirm with your authenticator app" link of the refusal page."""
    html = response.content.decode()
    marker = html.index('data-testid="mfa-confirm"')
    start = html.rindex('href="', 0, marker) + len('href="')
    return unescape(html[start:html.index('"', start)])


# --------------------------------------------------------------------------- the sessions


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_a_password_only_session_of_staff_with_an_app_is_asked_to_confirm_with_it(
        client_for, staff_with_mfa, url):
    client = client_for(staff_with_mfa, second_factor=False)

    response = client.get(url, follow=True)

    assert response.status_code == 403
    text = visible_text(response)
    assert "Two-factor authentication required" in text
    assert "This session was opened with your password alone." in text
    assert "Site administration" not in text and "Operations console" not in text
    assert confirm_link(response).startswith(reverse("mfa_reauthenticate") + "?next=")


@pytest.mark.parametrize("url", STAFF_PAGES)
def test_a_session_that_passed_the_app_opens_the_staff_pages(client_for, staff_with_mfa, url):
    assert client_for(staff_with_mfa).get(url).status_code == 200


def test_signing_in_with_the_password_and_the_app_opens_the_admin(client, staff_and_secret,
                                                                 tolerant_totp):
    staff, secret = staff_and_secret

    assert log_in(client, staff.email)["Location"] == MFA_AUTHENTICATE
    assert client.post(MFA_AUTHENTICATE, {"code": current_code(secret)}).status_code == 302

    assert signed_in_user_id(client) == str(staff.pk)
    assert client.get("/admin/").status_code == 200
    assert client.get("/staff/").status_code == 200


def test_confirming_with_the_app_opens_the_page_asked_for(client_for, staff_and_secret,
                                                          tolerant_totp):
    staff, secret = staff_and_secret
    client = client_for(staff, second_factor=False)
    refused = client.get("/admin/portal/tenant/", follow=True)

    asked = client.get(confirm_link(refused))
    assert asked.status_code == 200
    wrong = client.post(confirm_link(refused), {"code": "000000"})
    assert wrong.status_code == 200 and client.get("/admin/").status_code == 302

    confirmed = client.post(confirm_link(refused), {"code": current_code(secret)}, follow=True)

    assert confirmed.status_code == 200
    assert confirmed.redirect_chain[-1][0] == "/admin/portal/tenant/"
    assert client.get("/staff/").status_code == 200


def test_a_password_reauthentication_is_no_second_factor(client_for, staff_with_mfa):
    client = client_for(staff_with_mfa, second_factor=False)

    confirmed = client.post(reverse("account_reauthenticate"), {"password": PASSWORD})

    assert confirmed.status_code == 302
    assert client.get("/admin/", follow=True).status_code == 403


def test_the_second_factor_counts_only_while_its_authenticator_exists(client_for,
                                                                      staff_with_mfa):
    client = client_for(staff_with_mfa)
    assert client.get("/staff/").status_code == 200

    Authenticator.objects.filter(user=staff_with_mfa).delete()
    give_totp(staff_with_mfa)  # a new app: the session never passed this one

    response = client.get("/staff/")
    assert response.status_code == 403
    assert "This session was opened with your password alone." in visible_text(response)


def test_another_accounts_second_factor_does_not_count(client_for, staff_with_mfa):
    other = UserFactory(is_staff=True)
    give_totp(other)
    client = client_for(staff_with_mfa, second_factor=False)
    session = client.session
    other_app = Authenticator.objects.get(user=other, type=Authenticator.Type.TOTP)
    session["account_authentication_methods"].append(
        {"method": "mfa", "at": 0, "id": other_app.pk, "type": "totp"})
    session.save()

    assert client.get("/admin/", follow=True).status_code == 403


# --------------------------------------------------------------------------- impersonation


def test_impersonation_cannot_start_from_a_password_only_session(client_for, staff_with_mfa,
                                                                 tenant):
    client = client_for(staff_with_mfa, second_factor=False)

    console = client.post(reverse("staff_impersonate"), {"tenant": "acme"})
    admin_action = client.post(reverse("admin:portal_tenant_changelist"), {
        "action": "view_as_tenant", "_selected_action": [tenant.pk]}, follow=True)

    assert console.status_code == 403 and admin_action.status_code == 403
    assert IMPERSONATION_SESSION_KEY not in client.session
    assert audit("staff.impersonation.start") == []
    assert client.get("/t/acme/").status_code == 404


# --------------------------------------------------------------------------- the console socket


def _staff_with_app() -> object:
    user = UserFactory(is_staff=True, is_superuser=True)
    give_totp(user)
    return user


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_platform")
async def test_the_console_socket_is_closed_to_a_password_only_session():
    from channels.db import database_sync_to_async

    from tests.portal.test_staff import _connect

    staff = await database_sync_to_async(_staff_with_app)()

    communicator, connected, code = await _connect(staff, second_factor=False)

    assert not connected and code == 4403
    await communicator.disconnect()


@pytest.mark.parametrize("change", ["authenticator_removed", "staff_flag_dropped"])
@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("offline_platform")
async def test_an_open_console_socket_closes_when_its_staff_member_loses_their_standing(change):
    from channels.db import database_sync_to_async
    from django.contrib.auth import get_user_model

    from staff.views import notify_staff
    from tests.portal.test_staff import _connect

    staff = await database_sync_to_async(_staff_with_app)()
    communicator, connected, _code = await _connect(staff)
    assert connected
    assert '<div id="ops-board"' in await communicator.receive_from(timeout=10)

    def lose_standing() -> None:
        if change == "authenticator_removed":
            Authenticator.objects.filter(user=staff).delete()
        else:
            get_user_model().objects.filter(pk=staff.pk).update(is_staff=False)
        notify_staff()

    await database_sync_to_async(lose_standing)()

    closed = await communicator.receive_output(timeout=10)
    assert closed == {"type": "websocket.close", "code": 4403}
    await communicator.disconnect()


def test_the_refusal_page_returns_to_the_admin_page_asked_for(client_for, staff_with_mfa):
    response = client_for(staff_with_mfa, second_factor=False).get("/admin/portal/tenant/",
                                                                   follow=True)

    link = urlsplit(confirm_link(response))
    next_url = parse_qs(link.query)["next"][0]
    assert urlsplit(next_url).path == reverse("admin:login")
    assert parse_qs(urlsplit(next_url).query)["next"] == ["/admin/portal/tenant/"]
    assert by_testid(response, "mfa-confirm") == ["Confirm with your authenticator app"]
