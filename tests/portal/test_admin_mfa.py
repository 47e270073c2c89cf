"""The staff admin is reachable only by active staff with two-factor authentication."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory
from tests.portal.pages import visible_text

ADMIN_PAGES = [
    "/admin/",
    "/admin/portal/tenant/",
    "/admin/portal/membership/",
    "/admin/portal/invitation/",
    "/admin/portal/auditentry/",
    "/admin/portal/announcement/add/",
    "/admin/auth/user/",
    "/admin/password_change/",
]


@pytest.mark.parametrize("url", ADMIN_PAGES)
def test_staff_without_mfa_are_told_to_set_it_up_and_see_no_admin_page(
        client_for, staff_without_mfa, url):
    response = client_for(staff_without_mfa).get(url, follow=True)

    assert response.status_code == 403
    text = visible_text(response)
    assert "Two-factor authentication required" in text
    # Set up from a link sent to the verified address: the password alone opens no set-up page.
    assert "Email me an enrolment link" in text
    assert reverse("mfa_enrolment_request") in response.content.decode()
    assert reverse("mfa_activate_totp") not in response.content.decode()
    assert "Site administration" not in text and "Operations" not in text


def test_staff_without_mfa_cannot_change_anything_in_the_admin(
        client_for, staff_without_mfa, tenant):
    response = client_for(staff_without_mfa).post(
        f"/admin/portal/tenant/{tenant.pk}/change/", {"name": "Renamed by staff"})
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert tenant.name == "ACME"


@pytest.mark.parametrize("url", [u for u in ADMIN_PAGES if u != "/admin/password_change/"])
def test_staff_with_mfa_reach_the_admin(client_for, staff_with_mfa, url):
    response = client_for(staff_with_mfa).get(url)
    assert response.status_code == 200


def test_the_admin_index_lists_the_tenancy_models(client_for, staff_with_mfa):
    text = visible_text(client_for(staff_with_mfa).get("/admin/"))
    for model in ("Tenants", "Memberships", "Invitations", "Audit entries"):
        assert model in text


def test_recovery_codes_alone_do_not_open_the_admin(client_for, staff_without_mfa):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    RecoveryCodes.activate(staff_without_mfa)
    assert client_for(staff_without_mfa).get("/admin/", follow=True).status_code == 403


@pytest.mark.parametrize("url", ["/admin/", "/admin/portal/tenant/"])
def test_signed_in_non_staff_are_refused_without_a_redirect_loop(client_for, user, url):
    response = client_for(user).get(url, follow=True)

    assert response.status_code == 403
    assert len(response.redirect_chain) <= 2
    assert "Site administration" not in visible_text(response)


def test_a_non_staff_user_with_mfa_is_still_refused(client_for, user):
    from tests.portal.conftest import give_totp

    give_totp(user)
    assert client_for(user).get("/admin/", follow=True).status_code == 403


def test_inactive_staff_are_refused(client_for, db):
    staff = UserFactory(is_staff=True, is_superuser=True, is_active=False)
    from tests.portal.conftest import give_totp

    give_totp(staff)
    response = client_for(staff).get("/admin/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


def test_anonymous_visitors_are_sent_to_the_portal_login(client, db):
    # db: the sign-in page shows the branding, which staff keep in the database.
    response = client.get("/admin/portal/tenant/", follow=True)

    final_url, _status = response.redirect_chain[-1]
    parts = urlsplit(final_url)
    assert parts.path == reverse("account_login")
    assert parse_qs(parts.query)["next"] == ["/admin/portal/tenant/"]
    assert response.status_code == 200


def test_the_admin_login_url_never_shows_a_password_form(client):
    response = client.get("/admin/login/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login") + "?")
    assert b"password" not in response.content


def test_posting_a_password_to_the_admin_login_signs_nobody_in(client, staff_with_mfa):
    response = client.post("/admin/login/", {"username": staff_with_mfa.username,
                                             "password": PASSWORD})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("account_login"))
    assert "_auth_user_id" not in client.session
    assert client.get("/admin/").status_code == 302


def test_the_admin_login_does_not_redirect_off_site(client_for, staff_with_mfa):
    response = client_for(staff_with_mfa).get("/admin/login/",
                                              {"next": "https://evil.example/phish"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/"


def test_the_admin_login_forwards_staff_with_mfa_to_where_they_were_going(
        client_for, staff_with_mfa):
    response = client_for(staff_with_mfa).get("/admin/login/",
                                              {"next": "/admin/portal/tenant/"})
    assert response["Location"] == "/admin/portal/tenant/"


def test_the_admin_password_page_is_the_portals_own(client_for, staff_with_mfa):
    response = client_for(staff_with_mfa).get("/admin/password_change/")
    assert response.status_code == 302
    assert response["Location"] == reverse("account_change_password")
