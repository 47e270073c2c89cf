"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API answers has the same shape: ``type`` (a stable URN naming the kind of
problem), ``title``, ``status``, ``detail`` (a sentence for a person), ``instance`` (the request
path), ``code`` (a stable machine code) and, for input errors, ``errors``: one entry per field
with its path (``node_groups[1].max_replicas``), a JSON pointer into the request body and a
message. Statuses mean one thing each:

* 400: the request itself is malformed (not JSON, wrong types, unknown or missing fields);
* 401: no credentials, or a bad, expired or revoked token;
* 403: authenticated, but the role or the token's scope does not allow it;
* 404: nothing there, or nothing the caller may know about (other tenants look missing);
* 409: conflicts with the current state (another change in flight, already exists, an
  ``Idempotency-Key`` reused for a different request);
* 422: well-formed, but refused by the platform rules or the quota;
* 429: too many requests (``Retry-After`` says when to come back);
* 502/503: the management cluster refused or could not be reached (``Retry-After`` on 503);
  503 also while writes are paused because the platform runs a release the portal does not
  know yet, and while the portal's own database is out of reach (``service-unavailable``,
  with ``Retry-After``; see ``portal.outage``).

The foundation knows no domain: an app whose errors have an answer of their own registers a
mapper for them at start-up (``register_problem_type``), as the clusters web floor does for
the platform's errors.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import SuspiciousOperation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from django.utils.encoding import force_str
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import set_rollback

from portal.outage import DATABASE_ERRORS, RETRY_AFTER_SECONDS, unavailable_detail

logger = logging.getLogger("portal.api")

PROBLEM_CONTENT_TYPE = "application/problem+json"
TYPE_PREFIX = "urn:kube-portal:problem:"


@dataclass(frozen=True)
class ProblemType:
    slug: str
    status: int
    title: Any  # a lazy translation

    @property
    def uri(self) -> str:
        return TYPE_PREFIX + self.slug


PROBLEM_TYPES: dict[str, ProblemType] = {p.slug: p for p in (
    ProblemType("invalid-request", 400, gettext_lazy("The request is malformed")),
    ProblemType("invalid-cursor", 400, gettext_lazy("The pagination cursor is not valid")),
    ProblemType("invalid-idempotency-key", 400, gettext_lazy("The Idempotency-Key is not valid")),
    ProblemType("not-authenticated", 401, gettext_lazy("Authentication is required")),
    ProblemType("permission-denied", 403, gettext_lazy("This is not allowed")),
    ProblemType("read-only-token", 403, gettext_lazy("This token may only read")),
    ProblemType("not-found", 404, gettext_lazy("Not found")),
    ProblemType("method-not-allowed", 405, gettext_lazy("Method not allowed")),
    ProblemType("not-acceptable", 406, gettext_lazy("No acceptable representation")),
    ProblemType("conflict", 409, gettext_lazy("This conflicts with the current state")),
    ProblemType("idempotency-key-reused", 409,
                gettext_lazy("The Idempotency-Key was used for a different request")),
    ProblemType("unsupported-media-type", 415, gettext_lazy("Unsupported media type")),
    ProblemType("validation-failed", 422, gettext_lazy("The request cannot be carried out")),
    ProblemType("quota-exceeded", 422, gettext_lazy("The tenant quota would be exceeded")),
    ProblemType("throttled", 429, gettext_lazy("Too many requests")),
    ProblemType("server-error", 500, gettext_lazy("Internal error")),
    ProblemType("platform-error", 502, gettext_lazy("The platform refused the request")),
    ProblemType("platform-unavailable", 503, gettext_lazy("The platform is unreachable")),
    ProblemType("platform-release-unknown", 503,
                gettext_lazy("Changes are paused: the platform runs an unknown release")),
    ProblemType("service-unavailable", 503, gettext_lazy("The service is briefly unavailable")),
)}

_BY_STATUS = {
    400: "invalid-request", 401: "not-authenticated", 403: "permission-denied",
    404: "not-found", 405: "method-not-allowed", 406: "not-acceptable", 409: "conflict",
    415: "unsupported-media-type", 422: "validation-failed", 429: "throttled",
    502: "platform-error", 503: "platform-unavailable",
}

# Codes of the actions' ValidationErrors that describe the state of things, not the input.
CONFLICT_CODES = frozenset({
    "busy", "deleting", "deleted", "not_retryable", "not_cancellable", "superseded",
    "no_change", "already_exists", "kubeconfig_not_ready",
    "hibernating", "not_hibernating", "not_running",
})
# Error paths that are not places in the request body (no JSON pointer).
NON_BODY_ROOTS = frozenset({"quota", "node_group", "confirm", "__all__", "non_field_errors"})

Path = list[str | int]
PathRewriter = Callable[[Path, "str | None"], Path]
E = TypeVar("E", bound=Exception)


class ApiProblem(exceptions.APIException):
    """Raise to answer with a specific problem type."""

    def __init__(self, slug: str, detail: str | None = None, *, code: str | None = None,
                 errors: list[dict[str, Any]] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        problem = PROBLEM_TYPES[slug]
        self.slug = slug
        self.status_code = problem.status
        self.problem_code = code or slug.replace("-", "_")
        self.errors = errors
        self.headers = headers or {}
        super().__init__(detail or force_str(problem.title), self.problem_code)


# --------------------------------------------------------------------------- domain errors

# Each mapper takes the exception type it was registered for, hence Any for the argument.
_MAPPERS: dict[type[Exception], Callable[[Any], ApiProblem]] = {}


def register_problem_type(exc_type: type[E], mapper: Callable[[E], ApiProblem]) -> None:
    """Answer ``exc_type``, and its subclasses without a mapper of their own, with the problem
    ``mapper`` makes of it. Apps register their own errors at start-up (``AppConfig.ready``)."""
    _MAPPERS[exc_type] = mapper


def registered_problem(exc: Exception) -> ApiProblem | None:
    """The problem the closest registered type of ``exc`` maps it to, if any."""
    for klass in type(exc).__mro__:
        mapper = _MAPPERS.get(klass)
        if mapper is not None:
            return mapper(exc)
    return None


# --------------------------------------------------------------------------- field paths

_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def parse_path(field: str) -> Path:
    """``node_groups[1].max_replicas`` → ``["node_groups", 1, "max_replicas"]``."""
    tokens: Path = []
    for name, index in _PATH_TOKEN.findall(field):
        tokens.append(int(index) if index else name)
    return tokens


def format_path(tokens: Path) -> str:
    text = ""
    for token in tokens:
        if isinstance(token, int):
            text += f"[{token}]"
        else:
            text += ("." if text else "") + token
    return text


def json_pointer(tokens: Path) -> str:
    escaped = (str(t).replace("~", "~0").replace("/", "~1") for t in tokens)
    return "#/" + "/".join(escaped)


def field_error(tokens: Path, message: str, code: str | None,
                body_roots: frozenset[str] | None = None) -> dict[str, Any]:
    """One entry of ``errors``; ``body_roots`` are the request body's top-level fields."""
    root = tokens[0] if tokens else "__all__"
    in_body = bool(tokens) and root not in NON_BODY_ROOTS and (
        body_roots is None or root in body_roots)
    return {
        "field": format_path(tokens) if tokens and root not in ("__all__", "non_field_errors")
        else None,
        "pointer": json_pointer(tokens) if in_body else None,
        "code": code or "invalid",
        "detail": message,
    }


def _flatten_drf(detail: Any, prefix: Path) -> Iterator[tuple[Path, str, str]]:
    if isinstance(detail, dict):
        for key, value in detail.items():
            token: str | int = int(key) if isinstance(key, int) or (
                isinstance(key, str) and key.isdigit() and prefix) else str(key)
            yield from _flatten_drf(value, [*prefix, token])
    elif isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            for item in detail:
                yield prefix, force_str(item), getattr(item, "code", None) or "invalid"
        else:
            for index, item in enumerate(detail):
                yield from _flatten_drf(item, [*prefix, index])
    elif detail:
        yield prefix, force_str(detail), getattr(detail, "code", None) or "invalid"


def _flatten_django(exc: DjangoValidationError) -> Iterator[tuple[Path, str, str | None]]:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            for error in errors:
                message = error.message % error.params if error.params else error.message
                yield parse_path(field), force_str(message), error.code
    else:
        for error in exc.error_list:
            message = error.message % error.params if error.params else error.message
            yield [], force_str(message), error.code


# --------------------------------------------------------------------------- responses


def problem_body(request: Any, slug: str, detail: str | None = None, *,
                 code: str | None = None,
                 errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The problem document (without the response around it)."""
    problem = PROBLEM_TYPES[slug]
    data: dict[str, Any] = {
        "type": problem.uri,
        "title": force_str(problem.title),
        "status": problem.status,
        "detail": detail or force_str(problem.title),
        "instance": getattr(request, "path", None) or "",
        "code": code or slug.replace("-", "_"),
    }
    if errors is not None:
        data["errors"] = errors
    request_id = getattr(getattr(request, "_request", request), "id", None)
    if request_id:
        data["request_id"] = request_id
    return data


def problem_response(request: Any, slug: str, detail: str | None = None, *,
                     code: str | None = None, errors: list[dict[str, Any]] | None = None,
                     headers: dict[str, str] | None = None) -> Response:
    data = problem_body(request, slug, detail, code=code, errors=errors)
    return Response(data, status=data["status"], headers=headers,
                    content_type=PROBLEM_CONTENT_TYPE)


def _rewriter(context: dict[str, Any]) -> PathRewriter:
    view = context.get("view")
    rewrite = getattr(view, "rewrite_error_path", None)
    return rewrite if callable(rewrite) else (lambda tokens, code: tokens)


def _body_roots(context: dict[str, Any]) -> frozenset[str] | None:
    view = context.get("view")
    roots = getattr(view, "error_body_roots", None)
    return roots() if callable(roots) else None


def _summary(errors: list[dict[str, Any]]) -> str:
    if len(errors) == 1:
        return errors[0]["detail"]
    return _("%(count)d problems with the request; see errors.") % {"count": len(errors)}


def from_django_validation_error(request: Any, exc: DjangoValidationError,
                                 rewrite: PathRewriter,
                                 body_roots: frozenset[str] | None = None) -> Response:
    flat = [(rewrite(tokens, code), message, code)
            for tokens, message, code in _flatten_django(exc)]
    codes = {code for _tokens, _message, code in flat}
    conflict = next((c for c in codes if c in CONFLICT_CODES), None)
    errors = [field_error(tokens, message, code, body_roots) for tokens, message, code in flat]
    if conflict:
        return problem_response(request, "conflict", _summary(errors), code=conflict,
                                errors=errors)
    slug = "quota-exceeded" if "quota_exceeded" in codes else "validation-failed"
    return problem_response(request, slug, _summary(errors), errors=errors)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's ``EXCEPTION_HANDLER``: any exception → a problem-details response."""
    request = context.get("request")
    set_rollback()
    problem = exc if isinstance(exc, ApiProblem) else registered_problem(exc)
    if problem is not None:
        return problem_response(request, problem.slug, force_str(problem.detail),
                                code=problem.problem_code, errors=problem.errors,
                                headers=problem.headers)
    if isinstance(exc, DATABASE_ERRORS):  # PostgreSQL is out of reach: come back shortly
        logger.warning("api.database_unavailable", extra={"error": type(exc).__name__})
        return problem_response(request, "service-unavailable", unavailable_detail(),
                                headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if isinstance(exc, Http404):
        return problem_response(request, "not-found")
    if isinstance(exc, SuspiciousOperation):  # e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE
        return problem_response(request, "invalid-request",
                                _("The request was refused as malformed or too large."))
    if isinstance(exc, DjangoPermissionDenied):
        return problem_response(request, "permission-denied",
                                force_str(exc) or _("Your role does not allow this."))
    if isinstance(exc, DjangoValidationError):
        return from_django_validation_error(request, exc, _rewriter(context),
                                            _body_roots(context))
    if isinstance(exc, exceptions.ValidationError):
        # Input errors are about the body, except on reads (query parameters).
        safe = getattr(request, "method", "GET") in ("GET", "HEAD", "OPTIONS")
        roots: frozenset[str] | None = frozenset() if safe else None
        errors = [field_error(tokens, message, code, roots)
                  for tokens, message, code in _flatten_drf(exc.detail, [])]
        return problem_response(request, "invalid-request", _summary(errors) if errors
                                else None, errors=errors)
    if isinstance(exc, exceptions.Throttled):
        wait = max(1, math.ceil(exc.wait or 1))  # type: ignore[attr-defined]  # DRF sets it; the stubs omit it
        return problem_response(request, "throttled", force_str(exc.detail),
                                headers={"Retry-After": str(wait)})
    if isinstance(exc, (exceptions.NotAuthenticated, exceptions.AuthenticationFailed)):
        headers = {}
        auth_header = getattr(exc, "auth_header", None)
        if auth_header:
            headers["WWW-Authenticate"] = auth_header
        # Without an authenticate header DRF answers 403 (e.g. a session-only view).
        if exc.status_code == 403:
            return problem_response(request, "permission-denied", force_str(exc.detail),
                                    code=exc.default_code)
        return problem_response(request, "not-authenticated", force_str(exc.detail),
                                code=exc.default_code, headers=headers)
    if isinstance(exc, exceptions.APIException):
        slug = _BY_STATUS.get(exc.status_code)
        if slug is None:
            return None
        headers = {}
        if isinstance(exc, exceptions.MethodNotAllowed):
            view = context.get("view")
            allowed = getattr(view, "allowed_methods", None)
            if allowed:
                headers["Allow"] = ", ".join(allowed)
        detail = exc.detail if not isinstance(exc.detail, (list, dict)) else None
        return problem_response(request, slug, force_str(detail) if detail else None,
                                headers=headers)
    if settings.DEBUG:
        return None  # let Django show the traceback
    logger.exception("api.unhandled_error")
    return problem_response(request, "server-error",
                            _("Something went wrong on our side; it has been logged."))
