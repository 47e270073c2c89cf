"""Billing periods: calendar months in UTC, and the days inside them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.utils import timezone

from billing.models import as_instant, month_start, next_month

_MONTH_RE = re.compile(r"^(\d{4})-(\d{2})$")


@dataclass(frozen=True, order=True)
class Period:
    """A calendar month in UTC: ``[start, end)``."""

    start: date

    @classmethod
    def of(cls, value: date | datetime) -> Period:
        if isinstance(value, datetime):
            value = value.astimezone(UTC)
        return cls(month_start(value))

    @classmethod
    def current(cls, now: datetime | None = None) -> Period:
        return cls.of(now or timezone.now())

    @classmethod
    def parse(cls, text: str | None, default: Period | None = None) -> Period | None:
        """``"2026-03"`` → March 2026; anything else → ``default``."""
        match = _MONTH_RE.match((text or "").strip())
        if not match:
            return default
        year, month = int(match.group(1)), int(match.group(2))
        if not (2000 <= year <= 2999 and 1 <= month <= 12):
            return default
        return cls(date(year, month, 1))

    @property
    def end(self) -> date:
        return next_month(self.start)

    @property
    def start_at(self) -> datetime:
        return as_instant(self.start)

    @property
    def end_at(self) -> datetime:
        return as_instant(self.end)

    @property
    def last_day(self) -> date:
        return self.end - timedelta(days=1)

    @property
    def key(self) -> str:
        return f"{self.start:%Y-%m}"

    @property
    def previous(self) -> Period:
        return Period.of(self.start - timedelta(days=1))

    @property
    def next(self) -> Period:
        return Period(self.end)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days)]

    def day_buckets(self) -> list[tuple[datetime, datetime]]:
        return [(as_instant(d), as_instant(d + timedelta(days=1))) for d in self.days()]

    def contains(self, at: datetime) -> bool:
        return self.start_at <= at < self.end_at

    def __str__(self) -> str:
        return self.key
