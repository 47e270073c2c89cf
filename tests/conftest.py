"""Personas (owner, admin, member, viewer, billing, outsider) and shared fixtures."""

from __future__ import annotations

import os
import uuid

import pytest
from django.core.cache import cache
from django.test import Client
from django.utils import translation

from portal.permissions import Role
from tests.factories import MembershipFactory, TenantFactory, UserFactory

# Playwright's sync API leaves an event loop in the main thread (browser tests only).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

pytest_plugins = ["tests.fixtures.simulator", "tests.fixtures.processes",
                  "tests.fixtures.redis_server"]


def pytest_sessionstart(session) -> None:
    """The suite runs against PostgreSQL and Redis, as production does (``make test`` sets
    them up): its database guards, metering function and Redis paths have no SQLite or
    in-process twin to test instead, so a run without them stops here rather than skipping."""
    from django.conf import settings

    missing = []
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        missing.append("DATABASE_URL=postgres://…")
    if not settings.REDIS_URL:
        missing.append("REDIS_URL=redis://…")
    if missing:
        pytest.exit("The test suite needs PostgreSQL and Redis: run `make test`, or set "
                    + " and ".join(missing) + ".", returncode=2)


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
    """A client signed in as ``user`` (see ``tests.staffing.sign_in``: a user with an
    authenticator app has passed it, unless ``second_factor=False``)."""
    from tests.staffing import sign_in

    def make(user, *, second_factor: bool | None = None) -> Client:
        client = Client()
        if user is not None:
            sign_in(client, user, second_factor=second_factor)
        return client

    return make


@pytest.fixture
def user(db):
    return UserFactory()


@pytest.fixture(autouse=True)
def default_language():
    """Each test starts and ends in the default language: a test (or a view it calls in this
    thread) that activates another one never leaves it to the next test."""
    translation.deactivate()
    yield
    translation.deactivate()


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """A cache namespace of this test's own, dropped afterwards.

    Rate-limit counters (allauth keeps them in the cache, which is Redis in CI) and used TOTP
    codes must not leak from one test into another. Only this test's keys are deleted: the
    Redis database may be shared with the Celery broker and with other test processes, so
    flushing it would be wrong.
    """
    prefix = f"test-{uuid.uuid4().hex}"
    caches = {name: {**config, "KEY_PREFIX": prefix} for name, config in settings.CACHES.items()}
    settings.CACHES = caches
    yield prefix
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:  # local memory: gone with the settings change
        cache.clear()
        return
    redis = client(write=True)
    keys = list(redis.scan_iter(match=f"{prefix}:*"))
    if keys:
        redis.delete(*keys)


@pytest.fixture
def refused(request, db):
    """Turned away from staff pages (see ``tests.staffing.REFUSED``): staff without
    two-factor authentication, or a signed-in user who is not staff."""
    from tests.factories import UserFactory

    if request.param == "staff_without_mfa":
        return UserFactory(is_staff=True, is_superuser=True)
    return UserFactory()
