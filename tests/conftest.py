"""Personas (owner, admin, member, viewer, billing, outsider) and shared fixtures."""

from __future__ import annotations

import os

import pytest
from django.test import Client

from portal.permissions import Role
from tests.factories import MembershipFactory, TenantFactory, UserFactory

# Playwright's sync API leaves an event loop in the main thread (browser tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.fixtures.simulator", "tests.fixtures.processes"]


@pytest.fixture
def tenant(db):
    return TenantFactory(slug="acme", name="ACME")


def _persona(tenant, role):
    return MembershipFactory(tenant=tenant, role=role).user


@pytest.fixture
def owner(tenant):
    return _persona(tenant, Role.OWNER)


@pytest.fixture
def tenant_admin(tenant, owner):
    return _persona(tenant, Role.ADMIN)


@pytest.fixture
def member(tenant, owner):
    return _persona(tenant, Role.MEMBER)


@pytest.fixture
def viewer(tenant, owner):
    return _persona(tenant, Role.VIEWER)


@pytest.fixture
def billing_user(tenant, owner):
    return _persona(tenant, Role.BILLING)


@pytest.fixture
def other_tenant(db):
    return TenantFactory(slug="globex", name="Globex")


@pytest.fixture
def outsider(other_tenant):
    """Owner of another tenant: authenticated, powerful elsewhere, nobody here."""
    return _persona(other_tenant, Role.OWNER)


@pytest.fixture
def client_for():
    def make(user) -> Client:
        client = Client()
        if user is not None:
            client.force_login(user)
        return client

    return make


@pytest.fixture
def user(db):
    return UserFactory()
