"""Invitations: sending, accepting with the invited account, and every way a code can be wrong."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from portal.models import AuditEntry, Invitation, Membership
from portal.permissions import Role
from tests.factories import UserFactory
from tests.portal.pages import field_errors, visible_text

ACCEPT_URL = reverse("invitation_accept")


def invite_url(tenant) -> str:
    return reverse("member_invite", kwargs={"tenant_slug": tenant.slug})


def code_from(message) -> str:
    match = re.search(r"/invitations/accept/#(\S+)", message.body)
    assert match, message.body
    return match.group(1)


@pytest.fixture
def invite(client_for, owner, tenant, django_capture_on_commit_callbacks):
    """Invite ``email`` as ``role`` through the members page; returns the emailed code."""

    def send(email: str = "invitee@example.org", role: str = Role.MEMBER, by=None) -> str:
        with django_capture_on_commit_callbacks(execute=True):
            response = client_for(by or owner).post(invite_url(tenant),
                                                    {"email": email, "role": role})
        assert response.status_code == 302, response.content.decode()[:2000]
        return code_from(mail.outbox[-1])

    return send


@pytest.fixture
def invitee(db):
    return UserFactory(email="invitee@example.org")


def accept(client, code: str, **extra):
    return client.post(ACCEPT_URL, {"token": code}, **extra)


def test_inviting_emails_the_code_to_the_invited_address(
        client_for, owner, tenant, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(owner).post(invite_url(tenant),
                                          {"email": "Invitee@Example.org", "role": Role.VIEWER})

    assert response.status_code == 302
    assert response["Location"] == reverse("members", kwargs={"tenant_slug": tenant.slug})
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["invitee@example.org"]
    assert "ACME" in message.subject
    code = code_from(message)
    assert f"\n{code}\n" in message.body  # also spelled out for typing in by hand
    invitation = Invitation.objects.get(tenant=tenant)
    assert (invitation.email, invitation.role, invitation.state) == (
        "invitee@example.org", Role.VIEWER, "pending")
    assert invitation.token_hash == Invitation.hash_token(code)
    assert code not in invitation.token_hash  # only the hash is stored
    entry = AuditEntry.objects.get(verb="invitation.create")
    assert entry.tenant == tenant and entry.actor == owner
    assert entry.changes == {"email": [None, "invitee@example.org"], "role": [None, "viewer"]}


def test_the_pending_invitation_is_listed_on_the_members_page(client_for, owner, tenant, invite):
    invite("newcomer@example.org")
    page = client_for(owner).get(reverse("members", kwargs={"tenant_slug": tenant.slug}))
    assert "newcomer@example.org" in visible_text(page)


def test_no_email_leaves_before_the_invitation_is_committed(client_for, owner, tenant):
    response = client_for(owner).post(invite_url(tenant),
                                      {"email": "invitee@example.org", "role": Role.MEMBER})
    assert response.status_code == 302
    assert mail.outbox == []  # the on-commit callback has not run: nothing sent yet


def test_accepting_with_the_invited_account_joins_with_the_role(
        client_for, tenant, invite, invitee):
    code = invite(role=Role.BILLING)
    client = client_for(invitee)

    response = accept(client, code)

    assert response.status_code == 302
    assert response["Location"] == reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})
    membership = Membership.objects.get(tenant=tenant, user=invitee)
    assert membership.role == Role.BILLING
    invitation = Invitation.objects.get(tenant=tenant)
    assert invitation.state == "accepted" and invitation.accepted_by == invitee
    entry = AuditEntry.objects.get(verb="invitation.accept")
    assert entry.actor == invitee and entry.tenant == tenant
    assert entry.changes == {"role": [None, "billing"]}
    home = client.get(response["Location"])
    assert home.status_code == 200
    assert "Welcome to ACME." in visible_text(home)


def test_accepting_over_htmx_navigates_to_the_tenant(client_for, tenant, invite, invitee):
    code = invite()
    response = accept(client_for(invitee), code, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})


def test_an_expired_invitation_is_refused(client_for, tenant, invite, invitee):
    code = invite()
    Invitation.objects.filter(tenant=tenant).update(expires_at=timezone.now() - timedelta(1))

    response = accept(client_for(invitee), code)

    assert response.status_code == 422
    assert field_errors(response, "token") == ["This invitation has expired; ask for a new one."]
    assert not Membership.objects.filter(tenant=tenant, user=invitee).exists()


def test_an_invitation_works_only_once(client_for, tenant, invite, invitee):
    code = invite()
    client = client_for(invitee)
    assert accept(client, code).status_code == 302
    Membership.objects.filter(tenant=tenant, user=invitee).delete()  # left, tries to come back

    response = accept(client, code)

    assert response.status_code == 422
    assert field_errors(response, "token") == ["This invitation has already been used."]
    assert not Membership.objects.filter(tenant=tenant, user=invitee).exists()


def test_a_revoked_invitation_is_refused(client_for, owner, tenant, invite, invitee):
    code = invite()
    invitation = Invitation.objects.get(tenant=tenant)
    revoke = reverse("invitation_revoke",
                     kwargs={"tenant_slug": tenant.slug, "invitation_id": invitation.pk})
    response = client_for(owner).post(revoke, follow=True)
    assert "Invitation revoked." in visible_text(response)
    assert AuditEntry.objects.filter(verb="invitation.revoke", tenant=tenant).count() == 1

    response = accept(client_for(invitee), code)

    assert response.status_code == 422
    assert field_errors(response, "token") == ["This invitation was revoked."]
    assert not Membership.objects.filter(tenant=tenant, user=invitee).exists()


def test_revoking_an_invitation_twice_says_so(client_for, owner, tenant, invite):
    invite()
    invitation = Invitation.objects.get(tenant=tenant)
    revoke = reverse("invitation_revoke",
                     kwargs={"tenant_slug": tenant.slug, "invitation_id": invitation.pk})
    client = client_for(owner)
    client.post(revoke)
    response = client.post(revoke, follow=True)
    assert "Only a pending invitation can be revoked." in visible_text(response)
    assert AuditEntry.objects.filter(verb="invitation.revoke").count() == 1


def test_another_account_cannot_use_the_invitation(client_for, tenant, invite, invitee):
    code = invite()
    someone_else = UserFactory(email="someone.else@example.org")

    response = accept(client_for(someone_else), code)

    assert response.status_code == 422
    [error] = field_errors(response, "token")
    assert error.startswith("This invitation was sent to another email address.")
    assert not Membership.objects.filter(tenant=tenant, user=someone_else).exists()
    assert Invitation.objects.get(tenant=tenant).state == "pending"  # still usable by invitee
    assert accept(client_for(invitee), code).status_code == 302


def test_an_unverified_address_does_not_count_as_the_invited_one(client_for, tenant, invite):
    code = invite()
    user = UserFactory(email="other@example.org")
    user.emailaddress_set.create(email="invitee@example.org", verified=False)

    response = accept(client_for(user), code)

    assert response.status_code == 422
    assert not Membership.objects.filter(tenant=tenant, user=user).exists()


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda code: code[:-1] + ("A" if code[-1] != "A" else "B"),
         "This invitation code is not valid."),
        (lambda code: "not-a-code", "This invitation code is not valid."),
        (lambda code: code + "x" * 300, "Ensure this value has at most 200 characters (it has"),
        (lambda code: "", "This field is required."),
        (lambda code: "   ", "This field is required."),
        (lambda code: code[:10] + "\x00" + code[10:], "Null characters are not allowed."),
        (lambda code: "é' OR 1=1 --<script>", "This invitation code is not valid."),
    ],
    ids=["one-char-changed", "garbage", "oversized", "empty", "blank", "nul-byte", "injection"],
)
def test_a_bad_code_is_refused_beside_the_field_never_a_500(
        client_for, tenant, invite, invitee, mangle, message):
    code = invite()

    response = accept(client_for(invitee), mangle(code))

    assert response.status_code == 422
    [error] = field_errors(response, "token")
    assert error.startswith(message)
    assert not Membership.objects.filter(tenant=tenant, user=invitee).exists()


def test_an_admin_cannot_invite_an_owner(client_for, tenant_admin, tenant):
    response = client_for(tenant_admin).post(invite_url(tenant),
                                             {"email": "boss@example.org", "role": Role.OWNER})

    assert response.status_code == 422
    [error] = field_errors(response, "role")
    assert error.startswith("Select a valid choice.")
    assert not Invitation.objects.exists()
    assert mail.outbox == []


def test_an_admin_is_offered_only_roles_up_to_their_own(client_for, tenant_admin, tenant):
    page = client_for(tenant_admin).get(reverse("members", kwargs={"tenant_slug": tenant.slug}))
    form = page.content.decode().split('id="invite-form"', 1)[1].split("</form>", 1)[0]
    offered = re.findall(r'<option value="(\w+)"', form)
    assert offered == [Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.BILLING]


def test_an_admin_may_invite_another_admin(invite, tenant_admin, tenant):
    invite("deputy@example.org", Role.ADMIN, by=tenant_admin)
    assert Invitation.objects.get(tenant=tenant).role == Role.ADMIN


def test_a_second_pending_invitation_to_the_same_address_is_refused(
        client_for, owner, tenant, invite):
    invite("invitee@example.org")

    response = client_for(owner).post(invite_url(tenant),
                                      {"email": "INVITEE@example.org", "role": Role.ADMIN})

    assert response.status_code == 422
    assert field_errors(response, "email") == [
        "An invitation to this address is already pending."]
    assert Invitation.objects.filter(tenant=tenant).count() == 1


def test_an_expired_invitation_can_be_sent_again(client_for, owner, tenant, invite):
    invite("invitee@example.org")
    Invitation.objects.update(expires_at=timezone.now() - timedelta(hours=1))
    invite("invitee@example.org")
    assert Invitation.objects.pending().count() == 1


def test_inviting_an_existing_member_is_refused(client_for, owner, member, tenant):
    response = client_for(owner).post(invite_url(tenant),
                                      {"email": member.email.upper(), "role": Role.ADMIN})

    assert response.status_code == 422
    assert field_errors(response, "email") == ["This person is already a member."]
    assert not Invitation.objects.exists()


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"email": "not-an-address", "role": Role.MEMBER}, "email"),
        ({"email": "a" * 250 + "@example.org", "role": Role.MEMBER}, "email"),
        ({"email": "x@example.org", "role": "emperor"}, "role"),
    ],
    ids=["malformed-email", "oversized-email", "unknown-role"],
)
def test_invalid_invitation_input_is_refused_beside_the_field(
        client_for, owner, tenant, data, field):
    response = client_for(owner).post(invite_url(tenant), data)
    assert response.status_code == 422
    assert field_errors(response, field)
    assert not Invitation.objects.exists()


def test_an_invalid_htmx_invitation_returns_only_the_form_with_422(client_for, owner, tenant):
    response = client_for(owner).post(invite_url(tenant),
                                      {"email": "nope", "role": Role.MEMBER},
                                      HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    body = response.content.decode()
    assert body.lstrip().startswith('<form id="invite-form"')
    assert body.rstrip().endswith("</form>")
    assert "<html" not in body and "Who may do what" not in body
    assert field_errors(response, "email") == ["Enter a valid email address."]


def test_a_valid_htmx_invitation_navigates_back_to_the_members_page(client_for, owner, tenant):
    response = client_for(owner).post(invite_url(tenant),
                                      {"email": "ok@example.org", "role": Role.MEMBER},
                                      HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("members", kwargs={"tenant_slug": tenant.slug})


@pytest.mark.parametrize("persona", ["member", "viewer", "billing_user"])
def test_only_owners_and_admins_may_invite(client_for, tenant, persona, request):
    user = request.getfixturevalue(persona)
    response = client_for(user).post(invite_url(tenant),
                                     {"email": "x@example.org", "role": Role.VIEWER})
    assert response.status_code == 403
    assert not Invitation.objects.exists()
