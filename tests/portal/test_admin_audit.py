"""Every change a staff member makes in the admin leaves an audit entry: their name, their IP
address, the tenant concerned and what changed (before and after), secrets hidden.

Forms are submitted the way a browser does: every field of the rendered page, with only the
fields under test changed.
"""

from __future__ import annotations

from datetime import timedelta
from html.parser import HTMLParser

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from portal.models import Announcement, AuditEntry, Invitation, Membership
from portal.permissions import Role
from staff.admin_site import AuditedAdminMixin
from tests.factories import MembershipFactory, UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import visible_text
from tests.staffing import REFUSED, audit


class _FormReader(HTMLParser):
    """The values a browser would submit from the page's main form."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.data: list[tuple[str, str]] = []
        self._select: str | None = None
        self._textarea: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        name = a.get("name", "")
        if tag == "input" and name and a.get("type") not in ("submit", "button", "file"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.data.append((name, a.get("value", "on" if a.get("type") == "checkbox"
                                          else "")))
        elif tag == "select" and name:
            self._select = name
        elif tag == "option" and self._select and "selected" in a:
            self.data.append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, []

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        elif tag == "textarea" and self._textarea:
            self.data.append((self._textarea, "".join(self._text).lstrip("\n")))
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._textarea:
            self._text.append(data)


def form_data(response, **changes: str | list[str] | None) -> dict[str, str | list[str]]:
    """The rendered form's values, with ``changes`` applied (None: the field is left empty or
    unticked)."""
    reader = _FormReader()
    reader.feed(response.content.decode())
    data: dict[str, str | list[str]] = {}
    for name, value in reader.data:
        if name == "csrfmiddlewaretoken":
            continue
        if name in data:
            previous = data[name]
            data[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            data[name] = value
    for name, value in changes.items():
        if value is None:
            data.pop(name, None)
        else:
            data[name] = value
    return data


def resubmit(client, url: str, **changes):
    return client.post(url, form_data(client.get(url), **changes))


# --------------------------------------------------------------------------- the mechanism


def test_every_model_admin_leaves_an_audit_trail():
    """Including those of installed apps (users, email addresses, authenticators, schedules):
    the site gives every registered admin the audit mixin."""
    unaudited = [model._meta.label for model, model_admin in admin.site._registry.items()
                 if not isinstance(model_admin, AuditedAdminMixin)]

    assert unaudited == []
    from django.contrib.auth import get_user_model
    from django.contrib.auth.admin import UserAdmin

    assert isinstance(admin.site.get_model_admin(get_user_model()), UserAdmin)


# --------------------------------------------------------------------------- users and access


def test_staff_give_someone_staff_rights_and_it_is_audited(client_for, staff_with_mfa, user):
    url = reverse("admin:auth_user_change", args=[user.pk])

    response = resubmit(client_for(staff_with_mfa), url, is_staff="on")

    assert response.status_code == 302, visible_text(response)[:2000]
    user.refresh_from_db()
    assert user.is_staff
    entry, = audit("user.update")
    assert (entry.actor_label, entry.via, entry.ip) == (staff_with_mfa.email, "admin",
                                                        "127.0.0.1")
    assert entry.changes == {"is_staff": [False, True]}


def test_a_password_set_by_staff_is_audited_without_the_password(client_for, staff_with_mfa,
                                                                 user):
    response = client_for(staff_with_mfa).post(
        reverse("admin:auth_user_password_change", args=[user.pk]),
        {"password1": "Another-long-passphrase-42", "password2": "Another-long-passphrase-42",
         "usable_password": "true"})

    assert response.status_code == 302, visible_text(response)[:2000]
    user.refresh_from_db()
    assert user.check_password("Another-long-passphrase-42")
    entry, = audit("user.update")
    assert entry.actor_label == staff_with_mfa.email
    assert entry.changes == {"fields": [None, ["password"]]}  # which field, never its value
    assert "Another-long-passphrase-42" not in str(entry.changes)
    assert user.password not in str(entry.changes)


def test_a_new_user_is_audited_without_the_password(client_for, staff_with_mfa):
    response = client_for(staff_with_mfa).post(reverse("admin:auth_user_add"), {
        "username": "newcomer", "password1": "Another-long-passphrase-42",
        "password2": "Another-long-passphrase-42", "usable_password": "true"})

    assert response.status_code == 302, visible_text(response)[:2000]
    entry, = audit("user.create")
    assert entry.changes["username"] == [None, "newcomer"]
    assert entry.changes["password1"] == [None, "[hidden]"]
    assert "Another-long-passphrase-42" not in str(entry.changes)


def test_removing_someones_authenticator_is_audited_without_its_secret(client_for,
                                                                       staff_with_mfa, user):
    secret = give_totp(user)
    authenticator = Authenticator.objects.get(user=user)

    response = client_for(staff_with_mfa).post(
        reverse("admin:mfa_authenticator_delete", args=[authenticator.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert not Authenticator.objects.filter(user=user).exists()
    entry, = audit("authenticator.delete")
    assert entry.actor_label == staff_with_mfa.email
    assert entry.changes["user"] == [str(user), None]
    assert entry.changes["data"] == ["[hidden]", None]
    assert secret not in str(entry.changes)


def test_list_actions_of_installed_apps_are_audited_per_object(client_for, staff_with_mfa):
    address = EmailAddress.objects.create(user=UserFactory(), email="unverified@example.org",
                                          verified=False)

    response = client_for(staff_with_mfa).post(
        reverse("admin:account_emailaddress_changelist"),
        {"action": "make_verified", "_selected_action": [address.pk]})

    assert response.status_code == 302
    address.refresh_from_db()
    assert address.verified
    entry, = audit("emailaddress.make_verified")
    assert (entry.actor_label, entry.object_repr) == (staff_with_mfa.email, str(address))


@REFUSED
def test_users_cannot_be_given_rights(client_for, refused, user):
    client_for(refused).post(reverse("admin:auth_user_change", args=[user.pk]),
                             {"username": user.username, "is_staff": "on",
                              "is_superuser": "on"})

    user.refresh_from_db()
    assert not (user.is_staff or user.is_superuser)
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- members


def test_a_member_removed_on_the_tenant_page_is_in_the_tenants_log(client_for, staff_with_mfa,
                                                                   tenant, owner, member):
    client = client_for(staff_with_mfa)
    url = reverse("admin:portal_tenant_change", args=[tenant.pk])
    data = form_data(client.get(url))
    row = next(key.split("-")[1] for key, value in data.items()
               if key.startswith("memberships-") and key.endswith("-user")
               and value == str(member.pk))
    data[f"memberships-{row}-DELETE"] = "on"

    response = client.post(url, data)

    assert response.status_code == 302, visible_text(response)[:3000]
    assert not Membership.objects.filter(tenant=tenant, user=member).exists()
    entry, = audit("membership.remove")
    assert (entry.actor_label, entry.tenant, entry.ip) == (staff_with_mfa.email, tenant,
                                                           "127.0.0.1")
    assert entry.changes["user"] == [str(member), None]
    assert entry.changes["role"] == [Role.MEMBER, None]
    assert audit("tenant.update") == []  # the tenant itself did not change


@REFUSED
def test_members_cannot_be_removed_or_promoted(client_for, refused, tenant, owner, member):
    rows = {m.user: m for m in Membership.objects.filter(tenant=tenant)}

    def row(i: int, user, role: str) -> dict:
        return {f"memberships-{i}-id": str(rows[user].pk),
                f"memberships-{i}-tenant": str(tenant.pk),
                f"memberships-{i}-user": str(user.pk), f"memberships-{i}-role": role}

    client_for(refused).post(reverse("admin:portal_tenant_change", args=[tenant.pk]), {
        "slug": "acme", "name": "ACME", "memberships-TOTAL_FORMS": "2",
        "memberships-INITIAL_FORMS": "2", **row(0, owner, Role.VIEWER),
        **row(1, member, Role.OWNER)})

    assert {m.user: m.role for m in Membership.objects.filter(tenant=tenant)} == {
        owner: Role.OWNER, member: Role.MEMBER}
    assert not AuditEntry.objects.exists()


def test_memberships_are_changed_only_on_the_tenant_page(client_for, staff_with_mfa, tenant,
                                                         owner):
    """Where the rule that a tenant with members keeps an owner holds."""
    membership = Membership.objects.get(tenant=tenant, user=owner)
    client = client_for(staff_with_mfa)

    assert client.get(reverse("admin:portal_membership_add")).status_code == 403
    client.post(reverse("admin:portal_membership_change", args=[membership.pk]),
                {"tenant": tenant.pk, "user": owner.pk, "role": Role.VIEWER})
    deleted = client.post(reverse("admin:portal_membership_delete", args=[membership.pk]),
                          {"post": "yes"})

    assert deleted.status_code == 403
    membership.refresh_from_db()
    assert membership.role == Role.OWNER
    assert client.get(reverse("admin:portal_membership_changelist")).status_code == 200


# --------------------------------------------------------------------------- invitations


@pytest.fixture
def invitation(tenant, owner) -> Invitation:
    _token, token_hash = Invitation.new_token()
    return Invitation.objects.create(tenant=tenant, email="late@example.org", role=Role.MEMBER,
                                     token_hash=token_hash, invited_by=owner,
                                     expires_at=timezone.now() + timedelta(days=3))


def revoke(client, invitations):
    return client.post(reverse("admin:portal_invitation_changelist"), {
        "action": "revoke", "_selected_action": [i.pk for i in invitations]}, follow=True)


def test_staff_revoke_an_invitation_and_the_tenants_log_shows_it(client_for, staff_with_mfa,
                                                                 tenant, invitation):
    response = revoke(client_for(staff_with_mfa), [invitation])

    assert "Revoked 1 invitation." in visible_text(response)
    invitation.refresh_from_db()
    assert invitation.state == "revoked"
    entry, = audit("invitation.revoke")
    assert (entry.actor_label, entry.via, entry.tenant) == (staff_with_mfa.email, "admin",
                                                            tenant)


def test_an_accepted_invitation_cannot_be_revoked(client_for, staff_with_mfa, invitation):
    invitation.accepted_at = timezone.now()
    invitation.save()

    response = revoke(client_for(staff_with_mfa), [invitation])

    assert "Only a pending invitation can be revoked." in visible_text(response)
    assert audit("invitation.revoke") == []


def test_invitations_are_revoked_never_deleted(client_for, staff_with_mfa, invitation):
    response = client_for(staff_with_mfa).post(
        reverse("admin:portal_invitation_delete", args=[invitation.pk]), {"post": "yes"})

    assert response.status_code == 403
    assert Invitation.objects.filter(pk=invitation.pk).exists()


@REFUSED
def test_invitations_cannot_be_revoked(client_for, refused, invitation):
    response = revoke(client_for(refused), [invitation])

    assert response.status_code == 403
    invitation.refresh_from_db()
    assert invitation.state == "pending"
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- announcements


@pytest.fixture
def announcement(db) -> Announcement:
    return Announcement.objects.create(message="Maintenance on Saturday",
                                       starts_at=timezone.now() - timedelta(hours=1))


def test_staff_edit_and_end_an_announcement_and_both_are_audited(client_for, staff_with_mfa,
                                                                  announcement, tenant):
    client = client_for(staff_with_mfa)
    url = reverse("admin:portal_announcement_change", args=[announcement.pk])

    edited = resubmit(client, url, message="Maintenance moved to Sunday",
                      tenants=[str(tenant.pk)])
    deleted = client.post(reverse("admin:portal_announcement_delete", args=[announcement.pk]),
                          {"post": "yes"})

    assert edited.status_code == deleted.status_code == 302, visible_text(edited)[:2000]
    assert not Announcement.objects.exists()
    update, = audit("announcement.update")
    delete, = audit("announcement.delete")
    assert update.changes == {"message": ["Maintenance on Saturday",
                                          "Maintenance moved to Sunday"],
                              "tenants": [[], ["ACME"]]}
    assert delete.changes["message"] == ["Maintenance moved to Sunday", None]
    assert {update.actor_label, delete.actor_label} == {staff_with_mfa.email}


def test_announcements_deleted_from_the_list_are_audited_one_by_one(client_for, staff_with_mfa,
                                                                    announcement):
    other = Announcement.objects.create(message="Second", starts_at=timezone.now())

    client_for(staff_with_mfa).post(reverse("admin:portal_announcement_changelist"), {
        "action": "delete_selected", "_selected_action": [announcement.pk, other.pk],
        "post": "yes"})

    assert not Announcement.objects.exists()
    assert sorted(e.object_repr for e in audit("announcement.delete")) == [
        "Maintenance on Saturday", "Second"]


@REFUSED
def test_announcements_cannot_be_edited_or_deleted(client_for, refused, announcement):
    client = client_for(refused)

    client.post(reverse("admin:portal_announcement_change", args=[announcement.pk]),
                {"message": "Free GPUs", "level": "info", "starts_at_0": "2020-01-01",
                 "starts_at_1": "00:00:00"})
    client.post(reverse("admin:portal_announcement_delete", args=[announcement.pk]),
                {"post": "yes"})

    announcement.refresh_from_db()
    assert announcement.message == "Maintenance on Saturday"
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- tenants


def test_a_quota_edit_names_the_old_and_new_limits(client_for, staff_with_mfa, tenant, owner):
    MembershipFactory(tenant=tenant, role=Role.MEMBER)
    url = reverse("admin:portal_tenant_change", args=[tenant.pk])

    response = resubmit(client_for(staff_with_mfa), url, quota_vcpu="64")

    assert response.status_code == 302, visible_text(response)[:3000]
    entry, = audit("tenant.update")
    assert entry.changes == {"quota_vcpu": [None, 64]}
    assert (entry.tenant, entry.ip) == (tenant, "127.0.0.1")
    assert not AuditEntry.objects.filter(verb__startswith="membership.").exists()
