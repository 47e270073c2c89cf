"""Fixtures for the portal tests."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


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
