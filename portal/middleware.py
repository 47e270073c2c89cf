from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

logger = logging.getLogger("portal.request")


class RequestContextMiddleware:
    """Gives each request an id (echoed as X-Request-ID) and logs one structured line for it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = uuid.uuid4().hex[:16]  # type: ignore[attr-defined]
        started = time.monotonic()
        response = self.get_response(request)
        response["X-Request-ID"] = request.id  # type: ignore[attr-defined]
        if not request.path.startswith("/static/"):
            logger.info(
                "http.request",
                extra={
                    "request_id": request.id,  # type: ignore[attr-defined]
                    "method": request.method,
                    "path": request.path,  # never the query string: it may carry codes
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "user_id": getattr(getattr(request, "user", None), "pk", None),
                },
            )
        return response


class ImpersonationStandingMiddleware:
    """Every request of a staff impersonation session re-checks the staff member's standing
    (``portal.staff.check_impersonation``): losing it, by being made non-staff, deactivated or
    by removing the authenticator the session passed, ends the read-only view at once."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        # Without a session cookie there is no impersonation, and no reason to load a session.
        if settings.SESSION_COOKIE_NAME in request.COOKIES:
            from portal.staff import check_impersonation

            check_impersonation(request)
        return self.get_response(request)
