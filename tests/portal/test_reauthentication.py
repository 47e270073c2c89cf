"""A recent sign-in: any authentication step of this user in this session, within
ACCOUNT_REAUTHENTICATION_TIMEOUT, noted from allauth's public signal."""

from __future__ import annotations

import ast
import time
from pathlib import Path

import pytest
from allauth.account.signals import authentication_step_completed
from django.contrib.sessions.backends.db import SessionStore
from django.test import Client, RequestFactory

from portal.reauthentication import SESSION_KEY, signed_in_recently
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

PRODUCT = ("cozystack", "portal", "clusters", "billing", "staff")
ROOT = Path(__file__).resolve().parents[2]


def request_of(user):
    request = RequestFactory().post("/")
    request.session = SessionStore()
    request.user = user
    return request


def test_an_authentication_step_makes_the_session_recently_signed_in(user):
    request = request_of(user)
    assert not signed_in_recently(request)

    authentication_step_completed.send(sender=type(user), request=request, user=user,
                                       method="password")

    assert signed_in_recently(request)


def test_a_sign_in_through_the_form_counts_and_a_session_without_one_does_not(user):
    fresh = Client()
    assert fresh.post("/accounts/login/", {"login": user.email,
                                           "password": PASSWORD}).status_code == 302
    noted = fresh.session[SESSION_KEY]
    assert noted["user"] == str(user.pk) and time.time() - noted["at"] < 60

    forced = Client()
    forced.force_login(user)
    assert SESSION_KEY not in forced.session


def test_a_sign_in_older_than_the_timeout_does_not_count(user, settings):
    request = request_of(user)
    request.session[SESSION_KEY] = {
        "user": str(user.pk), "at": time.time() - settings.ACCOUNT_REAUTHENTICATION_TIMEOUT - 1}
    assert not signed_in_recently(request)


def test_another_users_sign_in_in_the_same_session_does_not_count(user):
    other = UserFactory()
    request = request_of(user)
    request.session[SESSION_KEY] = {"user": str(other.pk), "at": time.time()}
    assert not signed_in_recently(request)


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_no_product_module_reaches_into_allauths_internal_modules():
    offenders = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for package in PRODUCT for path in (ROOT / package).rglob("*.py")
        for name in _imported_modules(path)
        if name.startswith("allauth.") and ".internal" in name)
    assert offenders == []
