"""Middleware of the staff floor: impersonation sessions re-checked on every request."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from staff.views import check_impersonation


class ImpersonationStandingMiddleware:
    """Every request of a staff impersonation session re-checks the staff member's standing
    (``staff.views.check_impersonation``): losing it, by being made non-staff, deactivated or
    by removing the authenticator the session passed, ends the read-only view at once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Without a session cookie there is no impersonation, and no reason to load a session.
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            check_impersonation(request)
        return self.get_response(request)
