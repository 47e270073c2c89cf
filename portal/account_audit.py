"""Account security changes in the audit log: passwords, email addresses, second factors.

They belong to no tenant (``tenant`` is empty); the user sees them on no tenant page, staff in
the admin's audit log. Connected in ``PortalConfig.ready``.
"""

from __future__ import annotations

from typing import Any

from allauth.account import signals as account_signals
from allauth.mfa import signals as mfa_signals
from django.http import HttpRequest

from portal.audit import Actor, actor_from_request, client_ip, record


def _actor(request: HttpRequest | None, user: Any) -> Actor:
    if request is not None and getattr(request, "user", None) is not None \
            and request.user.is_authenticated:
        return actor_from_request(request)
    # A password reset is made by someone not signed in: the account is theirs.
    return Actor(user=user, ip=client_ip(request) if request is not None else None)


def _password_changed(sender: Any, request: HttpRequest | None = None, user: Any = None,
                      **kwargs: Any) -> None:
    record(_actor(request, user), "account.password_change", user)


def _password_set(sender: Any, request: HttpRequest | None = None, user: Any = None,
                  **kwargs: Any) -> None:
    record(_actor(request, user), "account.password_set", user)


def _password_reset(sender: Any, request: HttpRequest | None = None, user: Any = None,
                    **kwargs: Any) -> None:
    record(_actor(request, user), "account.password_reset", user)


def _email_changed(sender: Any, request: HttpRequest | None = None, user: Any = None,
                   from_email_address: Any = None, to_email_address: Any = None,
                   **kwargs: Any) -> None:
    record(_actor(request, user), "account.email_change", user, changes={"email": [
        getattr(from_email_address, "email", None), getattr(to_email_address, "email", None)]})


def _authenticator(verb: str):
    def receiver(sender: Any, request: HttpRequest | None = None, user: Any = None,
                 authenticator: Any = None, **kwargs: Any) -> None:
        kind = getattr(authenticator, "type", "") if authenticator is not None else ""
        record(_actor(request, user), verb, user, changes={"authenticator": [None, kind]}
               if verb.endswith("add") else {"authenticator": [kind, None]})
    return receiver


_mfa_added = _authenticator("account.mfa_add")
_mfa_removed = _authenticator("account.mfa_remove")


def connect() -> None:
    account_signals.password_changed.connect(_password_changed, dispatch_uid="audit.pw_change")
    account_signals.password_set.connect(_password_set, dispatch_uid="audit.pw_set")
    account_signals.password_reset.connect(_password_reset, dispatch_uid="audit.pw_reset")
    account_signals.email_changed.connect(_email_changed, dispatch_uid="audit.email_change")
    mfa_signals.authenticator_added.connect(_mfa_added, dispatch_uid="audit.mfa_add")
    mfa_signals.authenticator_removed.connect(_mfa_removed, dispatch_uid="audit.mfa_remove")
