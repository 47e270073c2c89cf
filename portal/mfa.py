"""Staff and the second factor: what a session must have passed to open a staff page.

A password can be stolen; an authenticator app cannot be read off a page. So the admin, the
operations console, its WebSocket and impersonation all ask one question, ``staff_standing``:
is this an active staff member, do they have an authenticator app, and did *this session* pass
it? allauth records every authentication step of a session (``get_authentication_records``):
a sign-in with the second factor, or a later re-authentication with it, leaves a record with
``method == "mfa"`` and the authenticator's id. The record counts only while that
authenticator still exists, so removing it ends the standing of every session that used it.

A staff account's first authenticator is never set up on the strength of the password alone:
the session needs an enrolment grant (``grant_enrolment``), which only a one-time link sent to
the account's verified address gives (``portal.actions.do_use_mfa_enrolment_link``).
"""

from __future__ import annotations

import time
from enum import StrEnum
from types import SimpleNamespace
from typing import Any

from allauth.account.authentication import get_authentication_records
from allauth.mfa.models import Authenticator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

#: How long after a staff member opened their enrolment link they may set up the app.
ENROLMENT_WINDOW_SECONDS = 30 * 60
ENROLMENT_GRANT_SESSION_KEY = "portal_mfa_enrolment_grant"
REFUSAL_TEMPLATE = "portal/admin_mfa_required.html"


class Standing(StrEnum):
    """Where a session stands with respect to the staff pages."""

    TRUSTED = "trusted"
    NOT_STAFF = "not_staff"  # anonymous, inactive or not staff
    NO_AUTHENTICATOR = "no_authenticator"  # staff without an authenticator app
    PASSWORD_ONLY = "password_only"  # has one, but this session did not pass it


def user_has_mfa(user: Any) -> bool:
    """Whether ``user`` has an authenticator app (recovery codes alone are not one)."""
    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


def _passed_authenticator_ids(session: Any, user: Any) -> set[Any]:
    # allauth reads the records from ``request.session`` and checks they are this user's.
    records = get_authentication_records(SimpleNamespace(session=session), user)
    return {record.get("id") for record in records
            if isinstance(record, dict) and record.get("method") == "mfa"}


def staff_standing(user: Any, session: Any) -> Standing:
    """Where ``user``, signed in with ``session`` (a request's or a socket scope's), stands."""
    if not (user is not None and getattr(user, "is_authenticated", False)
            and user.is_active and user.is_staff):
        return Standing.NOT_STAFF
    authenticators = dict(Authenticator.objects.filter(user=user).values_list("pk", "type"))
    if Authenticator.Type.TOTP not in authenticators.values():
        return Standing.NO_AUTHENTICATOR
    if session is None or not _passed_authenticator_ids(session, user) & authenticators.keys():
        return Standing.PASSWORD_ONLY
    return Standing.TRUSTED


def is_trusted_staff(user: Any, session: Any) -> bool:
    """Active staff whose session passed their (still existing) second factor."""
    return staff_standing(user, session) is Standing.TRUSTED


def refuse(request: HttpRequest, standing: Standing, *, next_url: str | None = None
           ) -> HttpResponse:
    """The page that tells a staff member what their session lacks, and how to get it."""
    return render(request, REFUSAL_TEMPLATE, {
        "standing": standing, "next_url": next_url or request.get_full_path(),
    }, status=403)


# --------------------------------------------------------------------------- enrolment grants

def grant_enrolment(session: Any, user: Any) -> None:
    """Let this session set up ``user``'s first authenticator for a while (after a link)."""
    session[ENROLMENT_GRANT_SESSION_KEY] = {
        "user": str(user.pk), "until": time.time() + ENROLMENT_WINDOW_SECONDS}


def has_enrolment_grant(session: Any, user: Any) -> bool:
    grant = session.get(ENROLMENT_GRANT_SESSION_KEY)
    return (isinstance(grant, dict) and grant.get("user") == str(user.pk)
            and isinstance(grant.get("until"), int | float) and grant["until"] > time.time())


def drop_enrolment_grant(session: Any) -> None:
    session.pop(ENROLMENT_GRANT_SESSION_KEY, None)


def may_enrol(user: Any, session: Any) -> bool:
    """Whether this session may set up an authenticator app for ``user``: anyone but staff
    without one may; staff setting up their first need a grant from an enrolment link."""
    if not (getattr(user, "is_authenticated", False) and user.is_staff):
        return True
    return user_has_mfa(user) or has_enrolment_grant(session, user)
