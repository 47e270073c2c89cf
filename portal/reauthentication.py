"""Whether this browser session signed in recently enough to be handed a credential.

A sign-in and a password confirmation count alike: a person who typed their password a minute
ago need not type it again. allauth's own check (what ``@reauthentication_required`` asks) only
counts confirmations, and where it keeps its records is internal to it. So the portal notes
the time of every authentication step itself, from allauth's public, documented
``authentication_step_completed`` signal (a password, a code, a second factor, a confirmation),
in the session and for the user who authenticated. ``require_recent_sign_in`` raises allauth's
``ReauthenticationRequired``, which allauth's middleware turns into its password page, replaying
the suspended POST afterwards. Connected in ``PortalConfig.ready``.
"""

from __future__ import annotations

import time
from typing import Any

from allauth.account.signals import authentication_step_completed
from allauth.core.exceptions import ReauthenticationRequired
from django.conf import settings
from django.http import HttpRequest

SESSION_KEY = "portal_authenticated_at"


def _note_authentication(sender: Any, request: HttpRequest | None = None, user: Any = None,
                         **kwargs: Any) -> None:
    session = getattr(request, "session", None)
    if session is None or user is None or user.pk is None:
        return
    session[SESSION_KEY] = {"user": str(user.pk), "at": time.time()}


def signed_in_recently(request: HttpRequest) -> bool:
    """A sign-in or password confirmation by this user, in this session, within
    ``ACCOUNT_REAUTHENTICATION_TIMEOUT``."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return False
    noted = request.session.get(SESSION_KEY)
    if not isinstance(noted, dict) or noted.get("user") != str(user.pk):
        return False
    at = noted.get("at")
    if not isinstance(at, (int, float)):
        return False
    return time.time() - at < settings.ACCOUNT_REAUTHENTICATION_TIMEOUT


def require_recent_sign_in(request: HttpRequest) -> None:
    """Raise ``ReauthenticationRequired`` unless ``signed_in_recently``."""
    if not signed_in_recently(request):
        raise ReauthenticationRequired


def connect() -> None:
    authentication_step_completed.connect(_note_authentication,
                                          dispatch_uid="portal.authenticated_at")
