"""Kubernetes `Status` error bodies: clients see the same reason/code pairs as from an apiserver."""

from __future__ import annotations

from typing import Any

REASONS: dict[int, str] = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    406: "NotAcceptable",
    409: "Conflict",
    410: "Expired",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def status_body(
    code: int, message: str, reason: str | None = None, details: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Build a `Status` object exactly shaped like the apiserver's (the client parses `reason`)."""
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason or REASONS.get(code, "Unknown"),
        "code": code,
    }
    if details:
        body["details"] = details
    return body


def success_body(details: dict[str, Any] | None = None) -> dict[str, Any]:
    """The `Status` a delete answers with when the object is gone at once."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": details or {},
    }


class ApiError(Exception):
    """Raised anywhere in request handling; the server turns it into a `Status` response."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or REASONS.get(code, "Unknown")
        self.details = details

    def body(self) -> dict[str, Any]:
        return status_body(self.code, self.message, self.reason, self.details)


def _details(qualified: str, kind: str, name: str) -> dict[str, Any]:
    group = qualified.partition(".")[2]
    details: dict[str, Any] = {"name": name, "kind": kind}
    if group:
        details["group"] = group
    return details


def not_found(qualified: str, plural: str, name: str) -> ApiError:
    return ApiError(
        404, f'{qualified} "{name}" not found', details=_details(qualified, plural, name)
    )


def already_exists(qualified: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'{qualified} "{name}" already exists',
        "AlreadyExists",
        _details(qualified, plural, name),
    )


def conflict(qualified: str, plural: str, name: str) -> ApiError:
    return ApiError(
        409,
        f'Operation cannot be fulfilled on {qualified} "{name}": the object has been modified; '
        "please apply your changes to the latest version and try again",
        "Conflict",
        _details(qualified, plural, name),
    )


def invalid(
    kind_qualified: str, kind: str, name: str, field: str, value: Any, why: str
) -> ApiError:
    """422 with one cause, the way field validation failures are reported."""
    detail = f"Invalid value: {_quote(value)}: {why}"
    details = _details(kind_qualified, kind, name)
    details["causes"] = [{"reason": "FieldValueInvalid", "message": detail, "field": field}]
    return ApiError(
        422, f'{kind_qualified} "{name}" is invalid: {field}: {detail}', "Invalid", details
    )


def expired(requested: int, oldest: int) -> ApiError:
    return ApiError(410, f"too old resource version: {requested} ({oldest})", "Expired")


def _quote(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)
