"""How the API reads request bodies: DRF's JSON parser, bounded in size and nesting depth.

Python's JSON decoder recurses once per nesting level, so a body nested 2,000 deep ended in a
``RecursionError`` (a 500) before any serializer saw it; and DRF reads the body straight from
the request stream, past Django's ``DATA_UPLOAD_MAX_MEMORY_SIZE``. This parser, the API's only
one (``REST_FRAMEWORK["DEFAULT_PARSER_CLASSES"]``), reads no more than that setting allows the
HTML forms and counts the nesting of the raw text before decoding it; either refusal is a 400
problem. The deepest
legitimate body is a cluster spec with add-on values, themselves bounded by
``cozystack.values``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.utils.translation import gettext as _
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser
from rest_framework.utils import json

# The deepest legitimate body: a cluster spec (a few levels) around an add-on values document,
# itself at most 32 deep (``cozystack.values.MAX_DEPTH``; a test keeps the two in step).
MAX_BODY_DEPTH = 40

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")


def nesting_depth(text: str, *, stop_above: int) -> int:
    """How deep ``text``'s arrays and objects nest (brackets inside strings do not count),
    counting no further than ``stop_above + 1``."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub('""', text)):
        if match.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > stop_above:
                break
        else:
            depth -= 1
    return deepest


class BoundedJSONParser(JSONParser):
    """JSON bodies of at most ``DATA_UPLOAD_MAX_MEMORY_SIZE`` bytes, nested at most
    ``MAX_BODY_DEPTH`` deep."""

    def parse(self, stream: Any, media_type: str | None = None,
              parser_context: Mapping[str, Any] | None = None) -> Any:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise ParseError(_("The request body may be at most %(kb)s KB of JSON.")
                             % {"kb": limit // 1024})
        encoding = (parser_context or {}).get("encoding") or "utf-8"
        try:
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError(_("The request body is not valid %(encoding)s text.")
                             % {"encoding": encoding}) from None
        if nesting_depth(text, stop_above=MAX_BODY_DEPTH) > MAX_BODY_DEPTH:
            raise ParseError(_("The JSON body may be nested at most %(depth)s levels deep.")
                             % {"depth": MAX_BODY_DEPTH})
        try:
            return json.loads(text, parse_constant=json.strict_constant if self.strict else None)
        except ValueError as exc:
            raise ParseError(f"JSON parse error - {exc}") from None
