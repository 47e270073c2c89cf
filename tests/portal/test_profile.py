"""The profile page: a person's name, their tenants and the way to their security settings."""

from __future__ import annotations

from django.urls import reverse

from portal.models import AuditEntry
from tests.portal.conftest import give_totp
from tests.portal.pages import alerts, field_errors, visible_text

PROFILE = reverse("profile")


def test_the_profile_lists_the_users_tenants_with_their_role(client_for, owner, tenant,
                                                              other_tenant):
    text = visible_text(client_for(owner).get(PROFILE))
    assert "ACME · Owner" in text
    assert "Globex" not in text


def test_saving_the_name_is_audited(client_for, user):
    response = client_for(user).post(PROFILE, {"first_name": "Ada", "last_name": "Lovelace"},
                                     follow=True)

    assert "Profile saved." in alerts(response)
    user.refresh_from_db()
    assert (user.first_name, user.last_name) == ("Ada", "Lovelace")
    entry = AuditEntry.objects.get(verb="profile.update")
    assert entry.actor == user and entry.tenant is None
    assert entry.changes == {"first_name": ["", "Ada"], "last_name": ["", "Lovelace"]}


def test_an_oversized_name_is_refused_beside_the_field(client_for, user):
    response = client_for(user).post(PROFILE, {"first_name": "A" * 151, "last_name": ""})

    assert response.status_code == 422
    assert field_errors(response, "first_name") == [
        "Ensure this value has at most 150 characters (it has 151)."]
    user.refresh_from_db()
    assert user.first_name == ""
    assert not AuditEntry.objects.exists()


def test_the_profile_says_whether_two_factor_authentication_is_on(client_for, user):
    client = client_for(user)
    assert "Two-factor authentication off" in visible_text(client.get(PROFILE))
    give_totp(user)
    assert "Two-factor authentication on" in visible_text(client.get(PROFILE))


def test_the_profile_links_to_email_password_and_two_factor_settings(client_for, user):
    page = client_for(user).get(PROFILE).content.decode()
    for name in ("account_email", "account_change_password", "mfa_index"):
        assert f'href="{reverse(name)}"' in page
