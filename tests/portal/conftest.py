"""Fixtures for the portal tests."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from tests.factories import UserFactory


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


def give_totp(user, secret: str | None = None) -> str:
    """Activate TOTP for ``user`` the way allauth stores it; returns the secret."""
    from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret

    secret = secret or generate_totp_secret()
    TOTP.activate(user, secret)
    return secret


@pytest.fixture
def staff_without_mfa(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def staff_with_mfa(db):
    user = UserFactory(is_staff=True, is_superuser=True)
    give_totp(user)
    return user
