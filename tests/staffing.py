"""Shared pieces of the staff tests (admin, console, impersonation)."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import AuditEntry

# The two personas every staff page must turn away: staff without MFA, a non-staff user (the
# ``refused`` fixture in tests/conftest.py builds them).
REFUSED = pytest.mark.parametrize("refused", ["staff_without_mfa", "non_staff"], indirect=True)


def audit(verb: str) -> list[AuditEntry]:
    """The audit entries with this verb, oldest first."""
    return list(AuditEntry.objects.filter(verb=verb).order_by("at", "id"))


def sign_in(client: Any, user: Any, *, second_factor: bool | None = None) -> Any:
    """Sign ``client`` in as ``user``, as allauth's sign-in leaves the session.

    A user with an authenticator app signs in with the password and then the app: allauth
    always asks for it, and records both steps in the session (``record_authentication``,
    called here as its login and MFA stages call it). ``second_factor=False`` leaves only the
    password step: a session that set the app up after signing in. A user without an
    authenticator is signed in as ``force_login`` does, with no record (tests of the "recent
    sign-in" rules rely on that).
    """
    from allauth.account.internal.flows.login import record_authentication
    from allauth.mfa.models import Authenticator
    from django.http import HttpRequest

    client.force_login(user)
    authenticator = Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).first()
    if authenticator is None and not second_factor:
        return client
    assert authenticator is not None, "a second factor needs an authenticator app"
    request = HttpRequest()
    request.session = client.session
    request.user = user
    record_authentication(request, user, "password", email=user.email)
    if second_factor is not False:
        record_authentication(request, user, "mfa", id=authenticator.pk,
                              type=authenticator.type)
    request.session.save()
    return client


def session_cookie(user: Any, *, second_factor: bool | None = None) -> bytes:
    """The cookie header of a session signed in as ``sign_in`` does, for WebSocket tests."""
    from django.test import Client

    client = sign_in(Client(), user, second_factor=second_factor)
    return f"sessionid={client.cookies['sessionid'].value}".encode()
