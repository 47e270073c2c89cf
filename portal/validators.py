"""Rules for free text that the portal shows to other people (names, titles, notes).

A name is shown in lists, audit entries, emails and invoices, next to text written by someone
else. Characters that change how the text around them is displayed (bidirectional overrides and
isolates), invisible ones and control characters let a name disguise itself or the text beside
it: "gpj.exe" after a RIGHT-TO-LEFT OVERRIDE displays as "exe.jpg". None of them belongs in a
name, so every such field refuses them with the same message, whichever way the text arrives
(form, admin, API).
"""
from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext as _

# Joiners shape letters (Persian words, emoji sequences): visible in effect, so allowed.
_JOINERS = frozenset({"\u200c", "\u200d"})
# Categories with no visible glyph of their own: controls (C0, C1, DEL), format characters
# (bidi embeddings, overrides, isolates and marks, zero-width space, word joiner, BOM, tags…),
# lone surrogates (a JSON "\ud800" decodes to one; PostgreSQL cannot store it) and the line and
# paragraph separators.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def _is_noncharacter(char: str) -> bool:
    code = ord(char)
    return 0xFDD0 <= code <= 0xFDEF or code & 0xFFFE == 0xFFFE


def refused_characters(value: str) -> list[str]:
    """The characters of ``value`` a displayed name may not contain, each once, in order."""
    found: list[str] = []
    for char in value:
        if char in _JOINERS or char in found:
            continue
        if unicodedata.category(char) in _REFUSED_CATEGORIES or _is_noncharacter(char):
            found.append(char)
    return found


def describe(char: str) -> str:
    """``U+202E RIGHT-TO-LEFT OVERRIDE``: what a person can search for to find it."""
    name = unicodedata.name(char, "")
    if not name and unicodedata.category(char) == "Cc":
        name = _("control character")
    return f"U+{ord(char):04X} {name}".strip()


def validate_visible_text(value: Any) -> None:
    """Refuse bidi controls, invisible format characters and control characters (NUL, line
    breaks…) in a name or title shown to other people."""
    if not isinstance(value, str):
        return
    found = refused_characters(value)
    if found:
        raise ValidationError(
            _("Remove %(characters)s: invisible and control characters can make a name "
              "display differently from what it says.")
            % {"characters": ", ".join(describe(char) for char in found[:3])},
            code="invisible_character",
        )


def clean_text_fields(instance: models.Model, fields: Iterable[str]) -> None:
    """Run the model's own validators on ``fields`` only, for a write that does not run
    ``full_clean`` (a targeted update). Raises ``ValidationError`` keyed by field."""
    wanted = set(fields)
    instance.clean_fields(exclude=[f.name for f in instance._meta.fields if f.name not in wanted])


def check_visible_text(**values: str) -> None:
    """``validate_visible_text`` on named values that have no model field of the portal's own
    (a user's name), keyed by name like ``full_clean``."""
    errors: dict[str, list[ValidationError]] = {}
    for name, value in values.items():
        try:
            validate_visible_text(value)
        except ValidationError as exc:
            errors[name] = [exc]
    if errors:
        raise ValidationError(errors)
