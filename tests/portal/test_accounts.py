"""Accounts through allauth: sign-up with a verification code, sign-in, sign-out, password
reset by code, email change, the login rate limit and TOTP two-factor authentication."""

from __future__ import annotations

import re
import time

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY, format_hotp_value, hotp_value
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client
from django.urls import reverse

from portal.models import AuditEntry
from tests.factories import PASSWORD, UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import field_errors, form_errors, visible_text

LOGIN = reverse("account_login")
SIGNUP = reverse("account_signup")
LOGOUT = reverse("account_logout")
CONFIRM_EMAIL = reverse("account_email_verification_sent")
RESET = reverse("account_reset_password")
RESET_CONFIRM = reverse("account_confirm_password_reset_code")
RESET_COMPLETE = reverse("account_complete_password_reset")
MFA_AUTHENTICATE = reverse("mfa_authenticate")
NEW_PASSWORD = "a-long-new-pass-phrase"


def emailed_code(message) -> str:
    """The one-time code allauth puts on a line of its own (e.g. ``BNJM-VVSM``)."""
    match = re.search(r"(?m)^\s*([A-Z0-9]{3,}(?:-[A-Z0-9]{3,})*)\s*$", message.body)
    assert match, message.body
    return match.group(1)


def signed_in_user_id(client) -> str | None:
    return client.session.get("_auth_user_id")


def log_in(client, email: str, password: str = PASSWORD, **request_extra):
    return client.post(LOGIN, {"login": email, "password": password}, **request_extra)


# -- sign-up and verification ------------------------------------------------------------------

def test_sign_up_sends_a_code_and_the_code_verifies_and_signs_in(client, db):
    response = client.post(SIGNUP, {"email": "Newcomer@Example.org", "password1": NEW_PASSWORD,
                                    "password2": NEW_PASSWORD})

    assert response.status_code == 302 and response["Location"] == CONFIRM_EMAIL
    assert signed_in_user_id(client) is None
    [message] = mail.outbox
    assert message.to == ["newcomer@example.org"]
    address = EmailAddress.objects.get(email="newcomer@example.org")
    assert not address.verified

    response = client.post(CONFIRM_EMAIL, {"code": emailed_code(message)})

    assert response.status_code == 302
    address.refresh_from_db()
    assert address.verified
    assert signed_in_user_id(client) == str(address.user_id)
    assert client.get(reverse("home")).status_code == 200


def test_a_wrong_verification_code_is_refused(client, db):
    client.post(SIGNUP, {"email": "newcomer@example.org", "password1": NEW_PASSWORD,
                         "password2": NEW_PASSWORD})

    response = client.post(CONFIRM_EMAIL, {"code": "AAAA-AAAA"})

    assert response.status_code == 200
    assert field_errors(response, "code") == ["Incorrect code."]
    assert not EmailAddress.objects.get(email="newcomer@example.org").verified
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize(("data", "field"), [
    ({"email": "x@example.org", "password1": "short", "password2": "short"}, "password1"),
    ({"email": "x@example.org", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD + "x"},
     "password2"),
    ({"email": "not an address", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}, "email"),
])
def test_bad_sign_up_input_is_shown_beside_the_field(client, db, data, field):
    response = client.post(SIGNUP, data)
    assert response.status_code == 200
    assert field_errors(response, field)
    assert not get_user_model().objects.exists()


def test_an_unverified_user_cannot_sign_in_until_verified(client, db):
    user = UserFactory()
    EmailAddress.objects.filter(user=user).update(verified=False)

    response = log_in(client, user.email)

    assert response.status_code == 302 and response["Location"] == CONFIRM_EMAIL
    assert signed_in_user_id(client) is None
    assert client.get(reverse("home")).status_code == 302  # still sent to the login page
    [message] = mail.outbox

    client.post(CONFIRM_EMAIL, {"code": emailed_code(message)})

    assert signed_in_user_id(client) == str(user.pk)
    assert EmailAddress.objects.get(user=user).verified


# -- sign-in and sign-out ----------------------------------------------------------------------

def test_signing_in_with_email_and_password(client, user):
    response = log_in(client, user.email.upper())

    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert signed_in_user_id(client) == str(user.pk)


def test_a_wrong_password_is_refused_with_a_message(client, user):
    response = log_in(client, user.email, "not-the-password")

    assert response.status_code == 200
    assert form_errors(response) == [
        "The email address and/or password you specified are not correct."]
    assert signed_in_user_id(client) is None


def test_signing_in_returns_to_the_page_asked_for(client, user):
    response = client.post(LOGIN + "?next=/account/profile/",
                           {"login": user.email, "password": PASSWORD})
    assert response["Location"] == "/account/profile/"


def test_signing_in_never_redirects_off_site(client, user):
    response = client.post(LOGIN + "?next=https://evil.example/",
                           {"login": user.email, "password": PASSWORD})
    assert response.status_code == 302
    assert "evil.example" not in response["Location"]


def test_signing_out_needs_a_post_and_ends_the_session(client, user):
    log_in(client, user.email)

    assert client.get(LOGOUT).status_code == 200  # a confirmation page, still signed in
    assert signed_in_user_id(client) == str(user.pk)
    response = client.post(LOGOUT)

    assert response.status_code == 302 and response["Location"] == LOGIN
    assert signed_in_user_id(client) is None
    assert client.get(reverse("home")).status_code == 302


# -- password reset by code --------------------------------------------------------------------

def test_password_reset_by_code_reaches_the_change_step_and_sets_the_password(client, user):
    response = client.post(RESET, {"email": user.email})
    assert response.status_code == 302 and response["Location"] == RESET_CONFIRM
    [message] = mail.outbox
    assert message.to == [user.email]

    response = client.post(RESET_CONFIRM, {"code": emailed_code(message)})
    assert response.status_code == 302 and response["Location"] == RESET_COMPLETE

    change_step = client.get(RESET_COMPLETE)
    assert change_step.status_code == 200
    assert 'name="password1"' in change_step.content.decode()

    response = client.post(RESET_COMPLETE, {"password1": NEW_PASSWORD,
                                            "password2": NEW_PASSWORD})
    assert response.status_code == 302

    other = client.__class__()
    assert log_in(other, user.email, PASSWORD).status_code == 200  # old password refused
    assert log_in(other, user.email, NEW_PASSWORD).status_code == 302
    entry, = AuditEntry.objects.filter(verb="account.password_reset")
    assert (entry.actor_id, entry.object_id, entry.tenant_id) == (user.pk, str(user.pk), None)
    assert NEW_PASSWORD not in str(entry.changes)


def test_changing_the_password_is_recorded_without_the_password(client_for, user):
    client = client_for(user)
    response = client.post(reverse("account_change_password"), {
        "oldpassword": PASSWORD, "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302
    entry, = AuditEntry.objects.filter(verb="account.password_change")
    assert (entry.actor_id, entry.ip, entry.via) == (user.pk, "127.0.0.1", "web")
    assert entry.changes == {}


def test_a_wrong_reset_code_does_not_reach_the_change_step(client, user):
    client.post(RESET, {"email": user.email})

    response = client.post(RESET_CONFIRM, {"code": "AAAA-AAAA"})

    assert response.status_code == 200
    assert field_errors(response, "code") == ["Incorrect code."]
    assert client.get(RESET_COMPLETE).status_code != 200


def test_a_reset_for_an_unknown_address_looks_the_same(client, db):
    response = client.post(RESET, {"email": "nobody@example.org"})
    assert response.status_code == 302 and response["Location"] == RESET_CONFIRM


# -- email addresses ---------------------------------------------------------------------------

def test_the_change_email_page_is_reachable_from_the_profile(client_for, user):
    client = client_for(user)
    profile = client.get(reverse("profile")).content.decode()
    assert reverse("account_email") in profile

    page = client.get(reverse("account_email"))

    assert page.status_code == 200
    assert user.email in visible_text(page)


def test_changing_the_email_sends_a_verification_code_to_the_new_address(client_for, user):
    client = client_for(user)

    client.post(reverse("account_email"), {"email": "moved@example.org", "action_add": ""})

    assert [m.to for m in mail.outbox] == [["moved@example.org"]]
    assert not EmailAddress.objects.filter(email="moved@example.org", verified=True).exists()


def test_the_change_email_page_needs_a_signed_in_user(client, db):
    response = client.get(reverse("account_email"))
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)


# -- rate limit --------------------------------------------------------------------------------

def test_repeated_failed_logins_for_one_address_end_in_429(client, user):
    statuses = [log_in(client, user.email, f"wrong-{n}").status_code for n in range(5)]
    assert statuses == [200] * 5

    refused = log_in(client, user.email, "wrong-again")
    with_the_right_password = log_in(client, user.email, PASSWORD)

    assert refused.status_code == 429
    assert form_errors(refused) == ["Too many failed login attempts. Try again later."]
    assert with_the_right_password.status_code == 429
    assert signed_in_user_id(client) is None


def test_the_limit_for_one_address_does_not_lock_out_another(client, user):
    victim = UserFactory()
    for n in range(6):
        log_in(client, victim.email, f"wrong-{n}")

    assert log_in(client, user.email).status_code == 302


def test_failures_from_one_address_do_not_lock_the_owner_out_from_another(client, user):
    attacker, owner_address = "203.0.113.66", "198.51.100.7"
    statuses = [log_in(client, user.email, f"wrong-{n}", REMOTE_ADDR=attacker).status_code
                for n in range(7)]
    assert statuses == [200] * 5 + [429] * 2

    owner = Client()
    assert log_in(owner, user.email, REMOTE_ADDR=owner_address).status_code == 302
    assert signed_in_user_id(owner) == str(user.pk)

    from_the_attackers_address = log_in(client, user.email, REMOTE_ADDR=attacker)
    assert from_the_attackers_address.status_code == 429
    assert signed_in_user_id(client) is None


def test_failed_logins_from_one_address_across_accounts_end_in_429(client, db):
    statuses = [log_in(client, f"guess{n}@example.org", "wrong").status_code for n in range(11)]
    assert statuses[:10] == [200] * 10
    assert statuses[10] == 429


def test_a_successful_login_does_not_count_against_the_limit(client, user):
    for _ in range(6):
        assert log_in(client, user.email).status_code == 302
        client.post(LOGOUT)


# -- two-factor authentication -----------------------------------------------------------------

def current_code(secret: str) -> str:
    return format_hotp_value(hotp_value(secret, int(time.time()) // 30))


@pytest.fixture
def tolerant_totp(settings):
    """Accept the neighbouring 30-second window, so a test crossing a boundary cannot flake."""
    settings.MFA_TOTP_TOLERANCE = 1


def open_totp_activation(client, user):
    """Sign in, then confirm the password again: allauth asks for it before adding MFA."""
    log_in(client, user.email)
    asked = client.get(reverse("mfa_activate_totp"))
    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    confirmed = client.post(asked["Location"], {"password": PASSWORD})
    assert confirmed["Location"] == reverse("mfa_activate_totp")
    page = client.get(reverse("mfa_activate_totp"))
    assert page.status_code == 200
    return page


def test_activating_totp_creates_recovery_codes(client, user, tolerant_totp,
                                               django_capture_on_commit_callbacks):
    open_totp_activation(client, user)
    secret = client.session[SECRET_SESSION_KEY]

    with django_capture_on_commit_callbacks(execute=True):  # allauth signals on commit
        response = client.post(reverse("mfa_activate_totp"), {"code": current_code(secret)})

    assert response.status_code == 302
    types = set(Authenticator.objects.filter(user=user).values_list("type", flat=True))
    assert types == {Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES}
    added = AuditEntry.objects.filter(verb="account.mfa_add", actor=user)
    assert sorted(e.changes["authenticator"][1] for e in added) == ["recovery_codes", "totp"]
    assert not any(secret in str(e.changes) for e in added)
    codes = client.get(reverse("mfa_view_recovery_codes"))
    assert codes.status_code == 200
    shown = re.findall(r"\b[0-9a-f]{8}\b", codes.content.decode())
    assert len(set(shown)) >= 10
    profile = client.get(reverse("profile"))
    assert "Two-factor authentication on" in visible_text(profile)


def test_a_wrong_activation_code_activates_nothing(client, user):
    open_totp_activation(client, user)

    response = client.post(reverse("mfa_activate_totp"), {"code": "000000"})

    assert response.status_code == 200
    assert field_errors(response, "code") == ["Incorrect code."]
    assert not Authenticator.objects.filter(user=user).exists()


def test_with_totp_the_password_alone_does_not_sign_in(client, user, tolerant_totp):
    secret = give_totp(user)

    response = log_in(client, user.email)

    assert response.status_code == 302 and response["Location"] == MFA_AUTHENTICATE
    assert signed_in_user_id(client) is None
    assert client.get(reverse("home")).status_code == 302

    wrong = client.post(MFA_AUTHENTICATE, {"code": "000000"})
    assert wrong.status_code == 200 and field_errors(wrong, "code") == ["Incorrect code."]
    assert signed_in_user_id(client) is None

    response = client.post(MFA_AUTHENTICATE, {"code": current_code(secret)})

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(user.pk)


def test_a_recovery_code_signs_in_once(client, user):
    from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes

    give_totp(user)
    codes = RecoveryCodes.activate(user).get_unused_codes()

    log_in(client, user.email)
    assert client.post(MFA_AUTHENTICATE, {"code": codes[0]}).status_code == 302
    assert signed_in_user_id(client) == str(user.pk)

    client.post(LOGOUT)
    log_in(client, user.email)
    reused = client.post(MFA_AUTHENTICATE, {"code": codes[0]})
    assert reused.status_code == 200
    assert signed_in_user_id(client) is None
