"""Tenants: creating one (slug rules), renaming, the tenant home and the tenant switcher."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied
from django.urls import reverse

from portal.actions import do_create_tenant
from portal.audit import Actor
from portal.models import AuditEntry, Membership, Tenant
from portal.permissions import Role
from tests.factories import MembershipFactory, TenantFactory
from tests.portal.pages import alerts, by_testid, field_errors, visible_text

CREATE_URL = reverse("tenant_create")


def settings_url(tenant) -> str:
    return reverse("tenant_settings", kwargs={"tenant_slug": tenant.slug})


def home_url(tenant) -> str:
    return reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})


def test_creating_a_tenant_makes_the_creator_its_owner(client_for, user):
    client = client_for(user)

    response = client.post(CREATE_URL, {"name": "Initech Research", "slug": "initech"})

    tenant = Tenant.objects.get(slug="initech")
    assert response.status_code == 302
    assert response["Location"] == home_url(tenant)
    assert tenant.name == "Initech Research" and tenant.namespace == "tenant-initech"
    assert Membership.objects.get(tenant=tenant).user == user
    assert Membership.objects.get(tenant=tenant).role == Role.OWNER
    entry = AuditEntry.objects.get(verb="tenant.create")
    assert entry.actor == user and entry.tenant == tenant and entry.tenant_slug == "initech"
    assert entry.changes == {"slug": [None, "initech"], "name": [None, "Initech Research"]}
    home = client.get(response["Location"])
    assert "Tenant Initech Research created." in alerts(home)


def test_a_slug_of_46_characters_is_accepted(client_for, user):
    slug = "a" + "b1" * 22 + "c"
    assert len(slug) == 46
    response = client_for(user).post(CREATE_URL, {"name": "Long", "slug": slug})
    assert response.status_code == 302
    assert Tenant.objects.filter(slug=slug).exists()


SLUG_RULE = "Use lowercase letters and digits only, starting with a letter (no dashes)."


@pytest.mark.parametrize(
    ("slug", "message"),
    [
        ("Acme", SLUG_RULE),
        ("acme-corp", SLUG_RULE),
        ("acme_corp", SLUG_RULE),
        ("1acme", SLUG_RULE),
        ("acmé", SLUG_RULE),
        ("ac me", SLUG_RULE),
        ("a" * 47, "Ensure this value has at most 46 characters (it has 47)."),
        ("a" * 5000, "Ensure this value has at most 46 characters (it has 5000)."),
        ("", "This field is required."),
        ("acme", "This slug is already taken."),
        ("root", "“root” is reserved: the platform's own tenant lives in tenant-root."),
    ],
    ids=["uppercase", "dash", "underscore", "leading-digit", "accent", "space", "47-chars",
         "huge", "empty", "collision", "platform-root"],
)
def test_a_bad_slug_is_refused_beside_the_field_and_nothing_is_written(
        client_for, user, tenant, slug, message):
    before = (Tenant.objects.count(), Membership.objects.count(), AuditEntry.objects.count())

    response = client_for(user).post(CREATE_URL, {"name": "Another", "slug": slug})

    assert response.status_code == 422
    assert message in field_errors(response, "slug")
    after = (Tenant.objects.count(), Membership.objects.count(), AuditEntry.objects.count())
    assert after == before


def test_an_oversized_name_is_refused_beside_the_field(client_for, user):
    response = client_for(user).post(CREATE_URL, {"name": "N" * 101, "slug": "fine"})

    assert response.status_code == 422
    assert field_errors(response, "name") == [
        "Ensure this value has at most 100 characters (it has 101)."]
    assert not Tenant.objects.exists()


def test_an_invalid_htmx_tenant_form_returns_only_the_form(client_for, user):
    response = client_for(user).post(CREATE_URL, {"name": "X", "slug": "Bad-Slug"},
                                     HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    body = response.content.decode().strip()
    assert body.startswith('<form id="tenant-create-form"') and body.endswith("</form>")
    assert field_errors(response, "slug") == [SLUG_RULE]


def test_the_form_keeps_what_was_typed_after_an_error(client_for, user):
    response = client_for(user).post(CREATE_URL, {"name": "Keep me", "slug": "Bad"})
    assert 'value="Keep me"' in response.content.decode()


def test_the_home_page_offers_the_create_form(client_for, user):
    page = client_for(user).get(reverse("home"))
    assert page.status_code == 200
    assert 'id="tenant-create-form"' in page.content.decode()
    assert "You are not a member of any tenant yet." in visible_text(page)


@pytest.mark.parametrize("persona", ["owner", "tenant_admin"])
def test_owners_and_admins_rename_the_tenant(client_for, tenant, persona, request):
    user = request.getfixturevalue(persona)
    client = client_for(user)

    response = client.post(settings_url(tenant), {"name": "ACME Worldwide"}, follow=True)

    assert "Tenant renamed." in alerts(response)
    tenant.refresh_from_db()
    assert tenant.name == "ACME Worldwide" and tenant.slug == "acme"
    entry = AuditEntry.objects.get(verb="tenant.rename")
    assert entry.actor == user and entry.changes == {"name": ["ACME", "ACME Worldwide"]}


@pytest.mark.parametrize("persona", ["member", "viewer", "billing_user"])
def test_other_roles_cannot_rename_the_tenant(client_for, tenant, persona, request):
    client = client_for(request.getfixturevalue(persona))

    assert client.get(settings_url(tenant)).status_code == 403
    assert client.post(settings_url(tenant), {"name": "Hijacked"}).status_code == 403
    tenant.refresh_from_db()
    assert tenant.name == "ACME"
    assert not AuditEntry.objects.exists()


@pytest.mark.parametrize(("name", "message"), [
    ("", "This field is required."),
    ("N" * 101, "Ensure this value has at most 100 characters (it has 101)."),
])
def test_a_bad_new_name_is_refused_beside_the_field(client_for, owner, tenant, name, message):
    response = client_for(owner).post(settings_url(tenant), {"name": name})

    assert response.status_code == 422
    assert field_errors(response, "name") == [message]
    tenant.refresh_from_db()
    assert tenant.name == "ACME"


def test_the_slug_cannot_be_changed_by_renaming(client_for, owner, tenant):
    client_for(owner).post(settings_url(tenant), {"name": "New", "slug": "hijack"})
    tenant.refresh_from_db()
    assert tenant.slug == "acme"


@pytest.mark.parametrize(("persona", "label"), [
    ("owner", "Owner"), ("tenant_admin", "Admin"), ("member", "Member"), ("viewer", "Viewer"),
    ("billing_user", "Billing"),
])
def test_the_tenant_home_shows_the_callers_role(client_for, tenant, persona, label, request):
    page = client_for(request.getfixturevalue(persona)).get(home_url(tenant))

    assert page.status_code == 200
    text = visible_text(page)
    assert f"Your role: {label}" in text
    assert "tenant-acme" in text


def test_the_tenant_navigation_follows_the_role(client_for, owner, viewer, tenant):
    owner_page = visible_text(client_for(owner).get(home_url(tenant)))
    viewer_page = visible_text(client_for(viewer).get(home_url(tenant)))
    assert "Audit log" in owner_page and "Settings" in owner_page
    assert "Audit log" not in viewer_page and "Settings" not in viewer_page


def test_the_switcher_lists_only_the_users_tenants(client_for, owner, tenant, other_tenant):
    MembershipFactory(tenant=TenantFactory(slug="umbrella", name="Umbrella"), user=owner,
                      role=Role.VIEWER)
    TenantFactory(slug="hooli", name="Hooli")

    page = client_for(owner).get(home_url(tenant))

    [switcher] = by_testid(page, "tenant-switcher")
    assert "ACME" in switcher and "Umbrella" in switcher
    assert "Globex" not in switcher and "Hooli" not in switcher
    home = visible_text(client_for(owner).get(reverse("home")))
    assert "ACME" in home and "Umbrella" in home
    assert "Globex" not in home and "Hooli" not in home


def test_the_switcher_shows_the_role_label(client_for, owner, tenant):
    [switcher] = by_testid(client_for(owner).get(home_url(tenant)), "tenant-switcher")
    assert "ACME Owner" in switcher


def test_a_tenant_that_does_not_exist_and_one_that_is_not_yours_look_the_same(
        client_for, owner, other_tenant):
    client = client_for(owner)
    missing = client.get("/t/doesnotexist/")
    foreign = client.get(home_url(other_tenant))
    assert missing.status_code == foreign.status_code == 404


@pytest.mark.django_db
def test_the_system_cannot_own_a_tenant():
    with pytest.raises(PermissionDenied):
        do_create_tenant(Actor.system(), slug="nobody", name="Nobody's")
    assert not Tenant.objects.filter(slug="nobody").exists()
