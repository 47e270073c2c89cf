"""``manage.py seed_demo``: a demo tenant and owner to sign in with; a rerun changes nothing."""

from __future__ import annotations

from io import StringIO

import pytest
from allauth.account.models import EmailAddress
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.urls import reverse

from portal.models import AuditEntry, Membership, Tenant
from portal.permissions import Role


def seed(**options) -> str:
    out = StringIO()
    call_command("seed_demo", stdout=out, stderr=StringIO(), **options)
    return out.getvalue()


def snapshot() -> dict:
    user = get_user_model().objects.get(email="demo@example.org")
    return {
        "users": list(get_user_model().objects.values_list("pk", "username", "password")),
        "tenants": list(Tenant.objects.values_list("pk", "slug", "name")),
        "memberships": list(Membership.objects.values_list("pk", "tenant_id", "user_id", "role")),
        "emails": list(EmailAddress.objects.values_list("pk", "email", "verified", "primary")),
        "audit": AuditEntry.objects.count(),
        "password": user.password,
    }


@pytest.fixture
def debug(settings):
    settings.DEBUG = True
    settings.SITE_URL = "http://portal.test:8000"


def test_seed_creates_the_demo_tenant_and_its_verified_owner(db, debug):
    output = seed()

    tenant = Tenant.objects.get(slug="demo")
    assert tenant.name == "Demo"
    user = get_user_model().objects.get(email="demo@example.org")
    assert user.check_password("demo-portal-2026")
    assert EmailAddress.objects.get(user=user).verified
    assert Membership.objects.get(tenant=tenant, user=user).role == Role.OWNER
    assert AuditEntry.objects.get(verb="tenant.create").tenant == tenant
    assert "http://portal.test:8000" in output
    assert "demo@example.org" in output and "demo-portal-2026" in output


def test_seeding_twice_changes_nothing(db, debug):
    seed()
    before = snapshot()

    output = seed()

    assert snapshot() == before
    assert "nothing changed" in output
    assert "demo@example.org" in output  # the login is printed every time


def test_a_changed_demo_password_survives_a_second_seed(db, debug):
    seed()
    user = get_user_model().objects.get(email="demo@example.org")
    user.set_password("changed-by-the-owner")
    user.save()

    seed()

    user.refresh_from_db()
    assert user.check_password("changed-by-the-owner")


def test_the_demo_owner_signs_in_and_sees_the_demo_tenant(client, db, debug):
    seed()

    response = client.post(reverse("account_login"),
                           {"login": "demo@example.org", "password": "demo-portal-2026"})
    assert response.status_code == 302
    home = client.get(reverse("tenant_home", kwargs={"tenant_slug": "demo"}))
    assert home.status_code == 200
    assert "Demo" in home.content.decode()


def test_seed_refuses_to_run_with_debug_off(db, settings):
    settings.DEBUG = False
    with pytest.raises(CommandError, match="DEBUG"):
        seed()
    assert not Tenant.objects.exists()
    assert not get_user_model().objects.exists()


def test_seed_runs_with_debug_off_when_forced(db, settings):
    settings.DEBUG = False
    seed(force=True)
    assert Tenant.objects.filter(slug="demo").exists()
