"""Members: role changes, removal, leaving, ownership transfer; a tenant always keeps an owner."""

from __future__ import annotations

import pytest
from django.urls import reverse

from portal.models import AuditEntry, Membership
from portal.permissions import Role
from tests.factories import MembershipFactory
from tests.portal.pages import alerts, field_errors, table_rows


def membership(tenant, user) -> Membership:
    return Membership.objects.get(tenant=tenant, user=user)


def role_url(tenant, target) -> str:
    return reverse("member_role", kwargs={"tenant_slug": tenant.slug,
                                          "membership_id": membership(tenant, target).pk})


def remove_url(tenant, target) -> str:
    return reverse("member_remove", kwargs={"tenant_slug": tenant.slug,
                                            "membership_id": membership(tenant, target).pk})


def members_url(tenant) -> str:
    return reverse("members", kwargs={"tenant_slug": tenant.slug})


def transfer_url(tenant) -> str:
    return reverse("ownership_transfer", kwargs={"tenant_slug": tenant.slug})


def leave_url(tenant) -> str:
    return reverse("tenant_leave", kwargs={"tenant_slug": tenant.slug})


def test_the_members_page_lists_members_with_their_roles_and_the_permission_table(
        client_for, owner, member, viewer, tenant):
    page = client_for(viewer).get(members_url(tenant))

    assert page.status_code == 200
    rows = {cells[0].removesuffix(" you"): cells[1] for cells in table_rows(page, "members")}
    assert rows == {owner.email: "Owner", member.email: "Member", viewer.email: "Viewer"}
    permissions = {cells[0]: cells[1:] for cells in table_rows(page, "permission-table")}
    assert permissions["Transfer ownership"] == ["✓", "–", "–", "–", "–"]
    assert permissions["Read the audit log"] == ["✓", "✓", "–", "–", "–"]
    assert 'id="invite-form"' not in page.content.decode()  # a viewer cannot invite


def test_an_owner_demotes_an_admin(client_for, owner, tenant_admin, tenant):
    client = client_for(owner)

    response = client.post(role_url(tenant, tenant_admin), {"role": Role.MEMBER}, follow=True)

    assert "Role changed." in alerts(response)
    assert membership(tenant, tenant_admin).role == Role.MEMBER
    entry = AuditEntry.objects.get(verb="membership.role_change")
    assert entry.actor == owner and entry.tenant == tenant
    assert entry.changes == {"role": ["admin", "member"], "user": [None, tenant_admin.email]}


def test_an_admin_changes_a_member_to_viewer(client_for, tenant_admin, member, tenant):
    client_for(tenant_admin).post(role_url(tenant, member), {"role": Role.VIEWER})
    assert membership(tenant, member).role == Role.VIEWER


def test_an_admin_cannot_promote_anyone_to_owner(client_for, tenant_admin, member, tenant):
    response = client_for(tenant_admin).post(role_url(tenant, member), {"role": Role.OWNER},
                                             follow=True)
    assert "You cannot give a role above your own." in alerts(response)
    assert membership(tenant, member).role == Role.MEMBER
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("owners", [1, 2], ids=["last-owner", "one-of-two-owners"])
def test_an_admin_cannot_demote_an_owner(client_for, owner, tenant_admin, tenant, owners):
    if owners == 2:
        MembershipFactory(tenant=tenant, role=Role.OWNER)

    response = client_for(tenant_admin).post(role_url(tenant, owner), {"role": Role.ADMIN},
                                             follow=True)

    assert "Only an owner can change an owner's role." in alerts(response)
    assert membership(tenant, owner).role == Role.OWNER
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize("owners", [1, 2], ids=["last-owner", "one-of-two-owners"])
def test_an_admin_cannot_remove_an_owner(client_for, owner, tenant_admin, tenant, owners):
    if owners == 2:
        MembershipFactory(tenant=tenant, role=Role.OWNER)

    response = client_for(tenant_admin).post(remove_url(tenant, owner), follow=True)

    assert "Only an owner can remove an owner." in alerts(response)
    assert membership(tenant, owner).role == Role.OWNER


def test_the_last_owner_cannot_be_demoted(client_for, owner, tenant):
    response = client_for(owner).post(role_url(tenant, owner), {"role": Role.ADMIN}, follow=True)

    assert "This is the last owner. Transfer ownership to someone else first." in alerts(response)
    assert membership(tenant, owner).role == Role.OWNER
    assert not AuditEntry.objects.exists()


def test_an_owner_may_demote_another_owner(client_for, owner, tenant):
    co_owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    client_for(owner).post(role_url(tenant, co_owner), {"role": Role.ADMIN})
    assert membership(tenant, co_owner).role == Role.ADMIN
    assert AuditEntry.objects.get().changes["role"] == ["owner", "admin"]


def test_the_last_owner_cannot_be_removed(client_for, owner, tenant):
    response = client_for(owner).post(remove_url(tenant, owner), follow=True)

    assert "The last owner cannot be removed." in alerts(response)
    assert Membership.objects.filter(tenant=tenant, user=owner).exists()


def test_the_last_owner_cannot_leave(client_for, owner, member, tenant):
    response = client_for(owner).post(leave_url(tenant), follow=True)

    assert "You are the last owner. Transfer ownership before leaving." in alerts(response)
    assert response.redirect_chain[-1][0] == members_url(tenant)
    assert membership(tenant, owner).role == Role.OWNER
    assert not AuditEntry.objects.exists()


def test_an_owner_with_a_co_owner_may_leave(client_for, owner, tenant):
    MembershipFactory(tenant=tenant, role=Role.OWNER)
    client_for(owner).post(leave_url(tenant))
    assert not Membership.objects.filter(tenant=tenant, user=owner).exists()


@pytest.mark.parametrize("actor", ["owner", "tenant_admin"])
def test_removing_a_member_takes_away_access(client_for, member, tenant, actor, request):
    user = request.getfixturevalue(actor)

    response = client_for(user).post(remove_url(tenant, member), follow=True)

    assert "Member removed." in alerts(response)
    assert not Membership.objects.filter(tenant=tenant, user=member).exists()
    entry = AuditEntry.objects.get(verb="membership.remove")
    assert entry.actor == user and entry.tenant == tenant
    assert entry.changes == {"user": [member.email, None], "role": ["member", None]}
    home = reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})
    assert client_for(member).get(home).status_code == 404


def test_a_member_leaves_the_tenant(client_for, member, tenant):
    client = client_for(member)

    response = client.post(leave_url(tenant), follow=True)

    assert response.redirect_chain[-1][0] == reverse("home")
    assert "You left ACME." in alerts(response)
    assert not Membership.objects.filter(tenant=tenant, user=member).exists()
    entry = AuditEntry.objects.get(verb="membership.leave")
    assert entry.actor == member and entry.changes == {"role": ["member", None]}
    assert client.get(members_url(tenant)).status_code == 404


def test_leaving_is_refused_by_get(client_for, member, tenant):
    assert client_for(member).get(leave_url(tenant)).status_code == 405
    assert Membership.objects.filter(tenant=tenant, user=member).exists()


def test_ownership_transfer_makes_the_old_owner_an_admin(client_for, owner, member, tenant):
    target = membership(tenant, member)

    response = client_for(owner).post(transfer_url(tenant),
                                      {"member": target.pk, "confirm": "acme"}, follow=True)

    assert f"{member.email} now owns this tenant." in alerts(response)
    assert membership(tenant, member).role == Role.OWNER
    assert membership(tenant, owner).role == Role.ADMIN
    entry = AuditEntry.objects.get(verb="tenant.transfer_ownership")
    assert entry.actor == owner and entry.tenant == tenant
    assert entry.changes == {"owner": [owner.email, member.email],
                             "new_owner_previous_role": ["member", "owner"]}
    # The old owner, now admin, can no longer transfer ownership.
    page = client_for(owner).get(members_url(tenant))
    assert 'id="transfer-form"' not in page.content.decode()


@pytest.mark.parametrize("confirm", ["", "ACME", "globex", "acm"])
def test_ownership_transfer_needs_the_slug_typed_exactly(
        client_for, owner, member, tenant, confirm):
    response = client_for(owner).post(
        transfer_url(tenant), {"member": membership(tenant, member).pk, "confirm": confirm})

    assert response.status_code == 422
    assert field_errors(response, "confirm")
    assert membership(tenant, owner).role == Role.OWNER
    assert membership(tenant, member).role == Role.MEMBER
    assert not AuditEntry.objects.exists()


def test_ownership_cannot_go_to_someone_outside_the_tenant(client_for, owner, outsider, tenant):
    stranger = Membership.objects.get(user=outsider)

    response = client_for(owner).post(transfer_url(tenant),
                                      {"member": stranger.pk, "confirm": "acme"})

    assert response.status_code == 422
    assert field_errors(response, "member")
    assert membership(tenant, owner).role == Role.OWNER
    assert Membership.objects.get(pk=stranger.pk).tenant != tenant


def test_an_invalid_htmx_transfer_returns_only_the_form(client_for, owner, member, tenant):
    response = client_for(owner).post(
        transfer_url(tenant), {"member": membership(tenant, member).pk, "confirm": "no"},
        HTTP_HX_REQUEST="true")
    assert response.status_code == 422
    body = response.content.decode().strip()
    assert body.startswith('<form id="transfer-form"') and body.endswith("</form>")
    assert field_errors(response, "confirm") == ["Type the slug exactly to confirm."]


def test_an_admin_cannot_transfer_ownership(client_for, owner, tenant_admin, member, tenant):
    response = client_for(tenant_admin).post(
        transfer_url(tenant), {"member": membership(tenant, member).pk, "confirm": "acme"})
    assert response.status_code == 403
    assert membership(tenant, owner).role == Role.OWNER


@pytest.mark.parametrize("role", ["emperor", "", "OWNER", "x" * 500])
def test_an_unknown_role_is_a_clear_error(client_for, owner, member, tenant, role):
    response = client_for(owner).post(role_url(tenant, member), {"role": role}, follow=True)

    assert response.status_code == 200
    assert "Unknown role." in alerts(response)
    assert membership(tenant, member).role == Role.MEMBER
    assert not AuditEntry.objects.exists()


def test_a_member_of_another_tenant_cannot_be_changed_from_here(
        client_for, owner, outsider, tenant):
    stranger = Membership.objects.get(user=outsider)
    url = reverse("member_role", kwargs={"tenant_slug": tenant.slug, "membership_id": stranger.pk})

    response = client_for(owner).post(url, {"role": Role.VIEWER}, follow=True)

    assert "This member does not exist." in alerts(response)
    assert Membership.objects.get(pk=stranger.pk).role == Role.OWNER


def test_a_member_of_another_tenant_cannot_be_removed_from_here(
        client_for, owner, outsider, tenant):
    stranger = Membership.objects.get(user=outsider)
    url = reverse("member_remove",
                  kwargs={"tenant_slug": tenant.slug, "membership_id": stranger.pk})

    response = client_for(owner).post(url, follow=True)

    assert "This member does not exist." in alerts(response)
    assert Membership.objects.filter(pk=stranger.pk).exists()


@pytest.mark.parametrize("persona", ["member", "viewer", "billing_user"])
def test_only_owners_and_admins_change_members(client_for, owner, tenant, persona, request):
    user = request.getfixturevalue(persona)
    client = client_for(user)
    assert client.post(role_url(tenant, owner), {"role": Role.VIEWER}).status_code == 403
    assert client.post(remove_url(tenant, owner)).status_code == 403
    assert membership(tenant, owner).role == Role.OWNER


def test_every_membership_change_leaves_an_audit_entry_with_before_and_after(
        client_for, owner, tenant_admin, member, viewer, tenant):
    client = client_for(owner)
    client.post(role_url(tenant, viewer), {"role": Role.MEMBER})
    client.post(remove_url(tenant, member))
    client_for(tenant_admin).post(leave_url(tenant))
    client.post(transfer_url(tenant), {"member": membership(tenant, viewer).pk, "confirm": "acme"})

    entries = list(AuditEntry.objects.filter(tenant=tenant).order_by("id"))

    assert [e.verb for e in entries] == ["membership.role_change", "membership.remove",
                                         "membership.leave", "tenant.transfer_ownership"]
    for entry in entries:
        assert entry.changes and all(len(pair) == 2 for pair in entry.changes.values())
        assert entry.ip == "127.0.0.1" and entry.via == "web"


@pytest.mark.parametrize("name", ["member_role", "member_remove", "invitation_revoke"])
@pytest.mark.parametrize("object_id", [0, 987654321, 2**63, 10**30])
def test_ids_that_match_nothing_are_refused_without_a_500(client_for, owner, tenant, name,
                                                          object_id):
    key = "invitation_id" if name == "invitation_revoke" else "membership_id"
    url = reverse(name, kwargs={"tenant_slug": tenant.slug, key: object_id})

    response = client_for(owner).post(url, {"role": Role.VIEWER}, follow=True)

    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert {"This member does not exist.", "This invitation does not exist."} & set(
            alerts(response))
    assert membership(tenant, owner).role == Role.OWNER
