"""Cursor pagination for every list: ``{"next", "previous", "results"}``.

Cursors are opaque; a list keeps its order while rows are added. Database lists use DRF's cursor
over a unique-enough ordering; fixed in-memory lists (the catalogue) use the same envelope with
a position cursor. A cursor that was tampered with is a 400, never a 404 or a 500.
"""

from __future__ import annotations

from base64 import b64decode, b64encode
from collections.abc import Sequence
from typing import Any
from urllib import parse

from django.core.exceptions import FieldDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from rest_framework.pagination import BasePagination, Cursor, CursorPagination
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param

from portal.api.problems import ApiProblem

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def _invalid_cursor() -> ApiProblem:
    return ApiProblem("invalid-cursor", _("The cursor is not valid; start again from the first "
                                          "page or use a link from a previous answer."))


def _page_envelope_schema(schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["next", "previous", "results"],
        "properties": {
            "next": {"type": ["string", "null"], "format": "uri",
                     "description": "Link to the next page; null on the last page."},
            "previous": {"type": ["string", "null"], "format": "uri",
                         "description": "Link to the previous page; null on the first page."},
            "results": schema,
        },
    }


class PageSizeMixin:
    # Typed as DRF's CursorPagination types them, so the two bases of CursorPage agree; the
    # page size itself comes from the constants above.
    page_size: int | None = DEFAULT_PAGE_SIZE
    page_size_query_param: str | None = "page_size"
    max_page_size: int | None = MAX_PAGE_SIZE
    page_size_query_description: str = gettext_lazy(  # type: ignore[assignment]  # DRF and drf-spectacular take lazy text; the stubs want str
        "How many items per page (1–200, default 50).")
    cursor_query_description: str = gettext_lazy(  # type: ignore[assignment]  # lazy text, as DRF takes it
        "Opaque position from the `next` or `previous` link of a previous page.")

    def get_page_size(self, request: Any) -> int:
        raw = request.query_params.get("page_size")
        if raw is None:
            return DEFAULT_PAGE_SIZE
        try:
            value = int(raw)
        except (TypeError, ValueError):
            value = 0
        if not 1 <= value <= MAX_PAGE_SIZE:
            raise ApiProblem("invalid-request", _("page_size must be a whole number from 1 to "
                                                  "%(max)d.") % {"max": MAX_PAGE_SIZE},
                             errors=[{"field": "page_size", "pointer": None, "code": "invalid",
                                      "detail": _("Use a whole number from 1 to %(max)d.")
                                      % {"max": MAX_PAGE_SIZE}}])
        return value


class CursorPage(PageSizeMixin, CursorPagination):
    """DRF's cursor over the view's ``cursor_ordering`` (e.g. ``("-created_at", "-id")``)."""

    ordering = "-id"

    def get_ordering(self, request: Any, queryset: Any, view: Any) -> tuple[str, ...]:
        ordering = getattr(view, "cursor_ordering", None) or self.ordering
        return (ordering,) if isinstance(ordering, str) else tuple(ordering)

    def paginate_queryset(self, queryset: Any, request: Any, view: Any = None) -> list[Any] | None:
        self._model = queryset.model
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Any) -> Cursor | None:
        encoded = request.query_params.get(self.cursor_query_param)
        if encoded is None:
            return None
        try:
            querystring = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(querystring, keep_blank_values=True, strict_parsing=False)
            offset = int(tokens.get("o", ["0"])[0])
            reverse = bool(int(tokens.get("r", ["0"])[0]))
            position = tokens.get("p", [None])[0]
        except (TypeError, ValueError, UnicodeError):
            raise _invalid_cursor()
        if not 0 <= offset <= self.offset_cutoff:
            raise _invalid_cursor()
        if position is not None:
            self._check_position(position)
        return Cursor(offset=offset, reverse=reverse,
                      position=position)  # type: ignore[arg-type]  # DRF's positions are text; its stubs say int

    def _check_position(self, position: str) -> None:
        if "\x00" in position or len(position) > 300:
            raise _invalid_cursor()
        field_name = self.ordering[0].lstrip("-")
        try:
            field = self._model._meta.get_field(field_name)
            field.to_python(position)
        except (FieldDoesNotExist, DjangoValidationError, ValueError, TypeError):
            raise _invalid_cursor()

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_envelope_schema(schema)


class SequencePage(PageSizeMixin, BasePagination):
    """The same envelope and parameters over a fixed, ordered in-memory sequence."""

    cursor_query_param = "cursor"

    def paginate_sequence(self, items: Sequence[Any], request: Any) -> list[Any]:
        self.request = request
        size = self.get_page_size(request)
        start = self._decode(request.query_params.get(self.cursor_query_param), len(items))
        self.base_url = request.build_absolute_uri()
        self._next = start + size if start + size < len(items) else None
        self._previous = max(0, start - size) if start > 0 else None
        return list(items[start:start + size])

    def _decode(self, encoded: str | None, length: int) -> int:
        if encoded is None:
            return 0
        try:
            text = b64decode(encoded.encode("ascii"), validate=True).decode("ascii")
            tokens = parse.parse_qs(text)
            start = int(tokens["i"][0])
        except (TypeError, ValueError, UnicodeError, KeyError, IndexError):
            raise _invalid_cursor()
        if not 0 <= start <= length:
            raise _invalid_cursor()
        return start

    def _link(self, start: int | None) -> str | None:
        if start is None:
            return None
        if start == 0:
            return remove_query_param(self.base_url, self.cursor_query_param)
        encoded = b64encode(parse.urlencode({"i": start}).encode("ascii")).decode("ascii")
        return replace_query_param(self.base_url, self.cursor_query_param, encoded)

    def get_paginated_response(self, data: Any) -> Response:
        return Response({"next": self._link(self._next), "previous": self._link(self._previous),
                         "results": data})

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        return _page_envelope_schema(schema)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return CursorPage().get_schema_operation_parameters(view)
