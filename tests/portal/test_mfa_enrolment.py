"""A staff account's first authenticator app is never set up with the password alone: it takes
a one-time link sent to the account's verified address, asked for by the staff member or sent
by another staff member from the admin. Everyone else sets the app up as before
(``tests/portal/test_accounts.py``)."""

from __future__ import annotations

import hashlib
import logging
import re

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from allauth.mfa.totp.internal.auth import SECRET_SESSION_KEY
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEntry, MfaEnrolmentLink
from tests.factories import PASSWORD, UserFactory
from tests.portal.pages import alerts, field_errors, visible_text
from tests.portal.test_accounts import current_code, log_in, tolerant_totp
from tests.staffing import audit

__all__ = ["tolerant_totp"]

ACTIVATE = reverse("mfa_activate_totp")
ENROL = reverse("mfa_enrolment")
ASK = reverse("mfa_enrolment_request")


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


def signed_in(client, user):
    """Signed in through the sign-in form with the password (all such a user has)."""
    assert log_in(client, user.email).status_code == 302
    assert client.get("/").status_code == 200
    return client


def confirm_password(client, url: str = ACTIVATE):
    """allauth asks for the password again before an authenticator is added."""
    asked = client.get(url)
    assert asked.status_code == 302
    assert asked["Location"].startswith(reverse("account_reauthenticate"))
    assert client.post(asked["Location"], {"password": PASSWORD})["Location"] == url


def emailed_token(message) -> str:
    match = re.search(r"/account/two-factor/enrol/#(\S+)", message.body)
    assert match, message.body
    return match.group(1)


def ask_for_link(client, django_capture_on_commit_callbacks) -> str:
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(ASK)
    assert response.status_code == 302 and response["Location"] == ENROL
    return emailed_token(mail.outbox[-1])


# --------------------------------------------------------------------------- without a link


def test_staff_without_an_app_cannot_set_one_up_with_the_password_alone(client, staff):
    signed_in(client, staff)

    page = client.get(ACTIVATE)

    assert page.status_code == 403
    assert "Email me an enrolment link" in visible_text(page)
    assert SECRET_SESSION_KEY not in client.session

    # Even after confirming the password again, nothing shows the secret or adds an app.
    client.post(reverse("account_reauthenticate"), {"password": PASSWORD})
    assert client.get(ACTIVATE).status_code == 403
    assert client.post(ACTIVATE, {"code": "123456"}).status_code == 403
    assert SECRET_SESSION_KEY not in client.session
    assert not Authenticator.objects.filter(user=staff).exists()
    assert client.get("/admin/", follow=True).status_code == 403


def test_non_staff_still_reach_the_set_up_page_with_their_password(client, user):
    signed_in(client, user)
    confirm_password(client)

    page = client.get(ACTIVATE)

    assert page.status_code == 200
    assert client.session[SECRET_SESSION_KEY] in page.content.decode()


# --------------------------------------------------------------------------- asking for a link


def test_staff_set_up_their_app_with_a_link_sent_to_their_verified_address(
        client, staff, tolerant_totp, django_capture_on_commit_callbacks):
    signed_in(client, staff)

    token = ask_for_link(client, django_capture_on_commit_callbacks)

    message = mail.outbox[-1]
    assert message.to == [staff.email]
    assert "works once" in message.body
    link = MfaEnrolmentLink.objects.get(user=staff)
    assert link.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in str(MfaEnrolmentLink.objects.filter(pk=link.pk).values().get())
    issued, = audit("account.mfa_enrolment_link.issue")
    assert (issued.actor, issued.changes) == (staff, {"email": [None, staff.email]})

    used = client.post(ENROL, {"token": token})
    assert used.status_code == 302 and used["Location"] == ACTIVATE
    confirm_password(client)
    page = client.get(ACTIVATE)
    secret = client.session[SECRET_SESSION_KEY]
    assert page.status_code == 200 and secret in page.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        activated = client.post(ACTIVATE, {"code": current_code(secret)})

    assert activated.status_code == 302
    assert Authenticator.objects.filter(user=staff, type=Authenticator.Type.TOTP).exists()
    spent, = audit("account.mfa_enrolment_link.use")
    assert spent.actor == staff
    for entry in AuditEntry.objects.all():
        assert token not in str(entry.changes) and token not in entry.object_repr

    # This session signed in with the password: the admin asks for the new app first.
    refused = client.get("/admin/", follow=True)
    assert refused.status_code == 403
    assert "Confirm with your authenticator app" in visible_text(refused)
    confirmed = client.post(reverse("mfa_reauthenticate"), {"code": current_code(secret)})
    assert confirmed.status_code == 302
    assert client.get("/admin/").status_code == 200


def test_the_link_and_its_code_are_never_logged(client, staff, caplog,
                                                 django_capture_on_commit_callbacks):
    signed_in(client, staff)
    caplog.set_level(logging.DEBUG)

    token = ask_for_link(client, django_capture_on_commit_callbacks)
    client.post(ENROL, {"token": token})

    assert caplog.records
    for record in caplog.records:
        assert token not in record.getMessage()
        assert token not in str(record.__dict__)


def test_a_link_works_once(client, staff, django_capture_on_commit_callbacks):
    signed_in(client, staff)
    token = ask_for_link(client, django_capture_on_commit_callbacks)
    assert client.post(ENROL, {"token": token}).status_code == 302

    again = client.post(ENROL, {"token": token})

    assert again.status_code == 422
    assert field_errors(again, "token") == ["This enrolment link has already been used."]
    assert len(audit("account.mfa_enrolment_link.use")) == 1


def test_an_expired_link_is_refused(client, staff, django_capture_on_commit_callbacks):
    signed_in(client, staff)
    token = ask_for_link(client, django_capture_on_commit_callbacks)
    MfaEnrolmentLink.objects.filter(user=staff).update(expires_at=timezone.now())

    expired = client.post(ENROL, {"token": token})

    assert expired.status_code == 422
    assert field_errors(expired, "token") == [
        "This enrolment link has expired; ask for a new one."]
    assert client.get(ACTIVATE).status_code == 403
    assert audit("account.mfa_enrolment_link.use") == []


def test_a_link_sent_to_another_account_is_refused(client, client_for, staff,
                                                   django_capture_on_commit_callbacks):
    token = ask_for_link(signed_in(client_for(None), staff), django_capture_on_commit_callbacks)
    colleague = UserFactory(is_staff=True)
    other = signed_in(client, colleague)

    response = other.post(ENROL, {"token": token})

    assert response.status_code == 422
    assert field_errors(response, "token") == [
        "This enrolment link was sent to another account. Sign in as that account to use it."]
    assert other.get(ACTIVATE).status_code == 403
    assert MfaEnrolmentLink.objects.get(user=staff).used_at is None


def test_a_made_up_code_is_refused(client, staff):
    signed_in(client, staff)

    response = client.post(ENROL, {"token": "not-a-code"})

    assert field_errors(response, "token") == ["This enrolment code is not valid."]
    assert client.get(ACTIVATE).status_code == 403


def test_a_new_link_replaces_the_unused_one(client, staff, django_capture_on_commit_callbacks):
    signed_in(client, staff)
    first = ask_for_link(client, django_capture_on_commit_callbacks)
    second = ask_for_link(client, django_capture_on_commit_callbacks)

    assert field_errors(client.post(ENROL, {"token": first}), "token") == [
        "This enrolment link has expired; ask for a new one."]
    assert client.post(ENROL, {"token": second}).status_code == 302


def test_a_link_goes_only_to_a_verified_address(client, staff):
    signed_in(client, staff)
    EmailAddress.objects.filter(user=staff).update(verified=False)

    response = client.post(ASK, follow=True)

    assert alerts(response) == [
        "This account has no verified email address to send the link to."]
    assert mail.outbox == [] and not MfaEnrolmentLink.objects.exists()


def test_people_who_are_not_staff_get_no_link(client, user):
    signed_in(client, user)

    response = client.post(ASK, follow=True)

    assert alerts(response) == ["Only active staff need an enrolment link."]
    assert mail.outbox == [] and not MfaEnrolmentLink.objects.exists()


# --------------------------------------------------------------------------- sent by a colleague


def send_from_admin(client, users, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return client.post(reverse("admin:auth_user_changelist"), {
            "action": "send_mfa_enrolment_link", "_selected_action": [u.pk for u in users]},
            follow=True)


def test_staff_with_mfa_send_a_colleague_a_link_from_the_admin(
        client, client_for, staff_with_mfa, staff, django_capture_on_commit_callbacks):
    response = send_from_admin(client_for(staff_with_mfa), [staff],
                               django_capture_on_commit_callbacks)

    assert "Sent 1 enrolment link." in visible_text(response)
    message, = mail.outbox
    assert message.to == [staff.email]
    assert f"{staff_with_mfa.email} asked you to set up two-factor authentication" in message.body
    issued, = audit("account.mfa_enrolment_link.issue")
    assert (issued.actor, issued.via, issued.object_id) == (staff_with_mfa, "admin",
                                                            str(staff.pk))
    token = emailed_token(message)
    assert token not in str(issued.changes)

    signed_in(client, staff)
    assert client.post(ENROL, {"token": token}).status_code == 302
    confirm_password(client)
    assert client.get(ACTIVATE).status_code == 200


def test_the_admin_sends_no_link_to_staff_with_an_app_or_to_non_staff(
        client_for, staff_with_mfa, user, django_capture_on_commit_callbacks):
    colleague = UserFactory(is_staff=True)
    from tests.portal.conftest import give_totp

    give_totp(colleague)

    response = send_from_admin(client_for(staff_with_mfa), [colleague, user],
                               django_capture_on_commit_callbacks)

    text = visible_text(response)
    assert "This account already has an authenticator app." in text
    assert "Only active staff need an enrolment link." in text
    assert mail.outbox == [] and audit("account.mfa_enrolment_link.issue") == []


def test_a_password_only_session_cannot_send_links_from_the_admin(
        client_for, staff_with_mfa, staff, django_capture_on_commit_callbacks):
    client = client_for(staff_with_mfa, second_factor=False)

    response = send_from_admin(client, [staff], django_capture_on_commit_callbacks)

    assert response.status_code == 403
    assert mail.outbox == [] and not MfaEnrolmentLink.objects.exists()


# --------------------------------------------------------------------------- the email address


def test_staff_change_their_address_only_from_a_session_that_passed_the_app(
        client, client_for, staff, staff_with_mfa):
    signed_in(client, staff)

    page = client.get(reverse("account_email"))
    posted = client.post(reverse("account_email"), {"action_add": "", "email": "new@evil.example"})

    assert page.status_code == 403 and posted.status_code == 403
    assert "Two-factor authentication required" in visible_text(page)
    assert not EmailAddress.objects.filter(email="new@evil.example").exists()
    assert mail.outbox == []
    assert client_for(staff_with_mfa).get(reverse("account_email")).status_code == 200
