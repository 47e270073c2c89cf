from __future__ import annotations

import json
import logging
import sys
import time
import uuid
from collections.abc import Callable

from django.conf import settings
from django.core.signals import got_request_exception
from django.http import HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.utils import translation

from portal.api.problems import PROBLEM_CONTENT_TYPE, problem_body
from portal.outage import DATABASE_ERRORS, RETRY_AFTER_SECONDS, unavailable_detail

logger = logging.getLogger("portal.request")


class RequestContextMiddleware:
    """Gives each request an id (echoed as X-Request-ID) and logs one structured line for it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.id = uuid.uuid4().hex[:16]  # type: ignore[attr-defined]  # the request's id, for logs and problems
        started = time.monotonic()
        response = self.get_response(request)
        response["X-Request-ID"] = request.id  # type: ignore[attr-defined]  # set above
        if not request.path.startswith("/static/"):
            logger.info(
                "http.request",
                extra={
                    "request_id": request.id,  # type: ignore[attr-defined]  # set above
                    "method": request.method,
                    "path": request.path,  # never the query string: it may carry codes
                    "status": response.status_code,
                    "duration_ms": round((time.monotonic() - started) * 1000, 1),
                    "user_id": _user_id(request),
                },
            )
        return response


def _user_id(request: HttpRequest) -> object:
    try:
        return getattr(getattr(request, "user", None), "pk", None)
    except DATABASE_ERRORS:  # the database is out of reach (the answer says so)
        return None


# --------------------------------------------------------------------------- database outage


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def database_unavailable(request: HttpRequest) -> HttpResponse:
    """The 503 answered while PostgreSQL is out of reach: a problem for the API, else a page
    that reloads itself. Rendered without a request context (no user, no database)."""
    if _is_api(request):
        body = problem_body(request, "service-unavailable", unavailable_detail())
        response = HttpResponse(json.dumps(body), status=503, content_type=PROBLEM_CONTENT_TYPE)
    else:
        with translation.override(translation.get_language_from_request(request)):
            html = render_to_string("503.html", {"retry_after": RETRY_AFTER_SECONDS,
                                                 "detail": unavailable_detail()})
        response = HttpResponse(html, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    response["Cache-Control"] = "no-store"
    return response


def _note_database_error(sender: object, request: HttpRequest | None = None,
                         **kwargs: object) -> None:
    """Django's ``got_request_exception``: a database error that escaped a middleware (Django
    turns it into a 500 right there) is marked, so ``DatabaseOutageMiddleware`` answers 503."""
    if request is not None and isinstance(sys.exc_info()[1], DATABASE_ERRORS):
        request._database_unavailable = True  # type: ignore[attr-defined]  # read below


got_request_exception.connect(_note_database_error, dispatch_uid="portal.database_outage")


class DatabaseOutageMiddleware:
    """503 instead of 500 while PostgreSQL is out of reach (``portal.outage``).

    Placed before the session middleware, so it also sees what fails in the middlewares
    within it (the session and user loaded on the way in). A database error raised by a view
    is answered here (``process_exception``); one raised by a middleware within has already
    become a 500 that ``_note_database_error`` marked, and is replaced. The session is not
    saved on a 5xx answer, so nothing else reaches the database on the way out.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if response.status_code >= 500 and getattr(request, "_database_unavailable", False):
            logger.warning("http.database_unavailable", extra={"path": request.path})
            return database_unavailable(request)
        return response

    def process_exception(self, request: HttpRequest,
                          exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_ERRORS):
            logger.warning("http.database_unavailable", extra={"path": request.path})
            return database_unavailable(request)
        return None


class SignedInDatabaseCheckMiddleware:
    """Right after the authentication middleware: a request with a session loads its session
    and user here, so that a database out of reach is answered 503 at once (instead of failing
    later in a middleware, as a 500 with a traceback, turned into the 503 above). Requests
    without a session cookie need no database here; ``/healthz`` and ``/readyz`` answer on
    their own."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if (settings.SESSION_COOKIE_NAME in request.COOKIES
                and request.path not in ("/healthz", "/readyz")):
            try:
                request.user.is_authenticated  # noqa: B018 - loads the session and the user
            except DATABASE_ERRORS:
                logger.warning("http.database_unavailable", extra={"path": request.path})
                return database_unavailable(request)
        return self.get_response(request)
