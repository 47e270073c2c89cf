"""URL converters that only match what the database can look up (no NUL, no overflow)."""

from __future__ import annotations


class ObjectIdConverter:
    """A positive bigint: at most 18 digits, so a lookup never overflows the column."""

    regex = "[1-9][0-9]{0,17}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)
