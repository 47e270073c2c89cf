"""Hibernation schedules as time: ranges per weekday in an IANA time zone → UTC intervals.

Pure functions (no database). A range is ``{"day": 0..6 (Monday..Sunday), "start": "HH:MM",
"end": "HH:MM"}`` in the schedule's local time; an end that is not after its start ends the
next day ("20:00–08:00" sleeps over midnight, "08:00–08:00" a whole day). Local times become
instants with ``zoneinfo``, each on its own date, so a night across a DST change lasts 11 or
13 hours and a range still starts at its local time. Ranges that touch or overlap merge into
one sleep ("Friday 20:00 to Monday 08:00"). A local time that does not exist (the hour skipped
in spring) comes an hour later.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.utils.translation import gettext_lazy as _

MAX_RANGES = 14
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
DAY_NAMES = (_("Monday"), _("Tuesday"), _("Wednesday"), _("Thursday"), _("Friday"),
             _("Saturday"), _("Sunday"))


@dataclass(frozen=True)
class Preset:
    key: str
    label: Any  # lazy translation
    ranges: tuple[tuple[int, str, str], ...]

    def as_ranges(self) -> list[dict[str, Any]]:
        return [{"day": d, "start": s, "end": e} for d, s, e in self.ranges]


PRESETS: tuple[Preset, ...] = (
    # Monday–Thursday nights, and from Friday 20:00 to Monday 08:00.
    Preset("nights_weekends", _("Nights 20:00–08:00 on weekdays and all weekend"),
           ((0, "20:00", "08:00"), (1, "20:00", "08:00"), (2, "20:00", "08:00"),
            (3, "20:00", "08:00"), (4, "20:00", "08:00"), (5, "08:00", "08:00"),
            (6, "08:00", "08:00"))),
    Preset("nights", _("Every night 20:00–08:00"),
           tuple((day, "20:00", "08:00") for day in range(7))),
    Preset("weekends", _("Weekends, Friday 20:00 to Monday 08:00"),
           ((4, "20:00", "20:00"), (5, "20:00", "20:00"), (6, "20:00", "08:00"))),
    Preset("office_hours", _("Outside office hours: awake 07:00–19:00 Monday to Friday"),
           ((0, "19:00", "07:00"), (1, "19:00", "07:00"), (2, "19:00", "07:00"),
            (3, "19:00", "07:00"), (4, "19:00", "19:00"), (5, "19:00", "19:00"),
            (6, "19:00", "07:00"))),
)
PRESETS_BY_KEY = {preset.key: preset for preset in PRESETS}


class ScheduleError(ValueError):
    """Input that is not a schedule; ``field`` names what is wrong ("time_zone", "ranges")."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field, self.message = field, message


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; ``ScheduleError`` for anything else."""
    if not name or len(name) > 64 or name not in _zones():
        raise ScheduleError("time_zone", str(_("Choose a time zone such as Europe/Zurich.")))
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("time_zone",
                            str(_("Choose a time zone such as Europe/Zurich."))) from None


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def zone_choices() -> list[str]:
    return sorted(_zones())


def clean_ranges(raw: Any) -> list[dict[str, Any]]:
    """``raw`` as a sorted list of valid ranges; ``ScheduleError`` naming the first problem."""
    if not isinstance(raw, list):
        raise ScheduleError("ranges", str(_("Give a list of ranges.")))
    if len(raw) > MAX_RANGES:
        raise ScheduleError("ranges", str(_("At most %(n)s ranges.") % {"n": MAX_RANGES}))
    cleaned = []
    for item in raw:
        if not isinstance(item, dict) or set(item) - {"day", "start", "end"}:
            raise ScheduleError("ranges", str(_("Each range has a day, a start and an end.")))
        day, start, end = item.get("day"), item.get("start"), item.get("end")
        if not isinstance(day, int) or isinstance(day, bool) or not 0 <= day <= 6:
            raise ScheduleError("ranges", str(_("A day is 0 (Monday) to 6 (Sunday).")))
        for value in (start, end):
            if not isinstance(value, str) or not _HHMM.match(value):
                raise ScheduleError("ranges", str(_("Times are HH:MM, from 00:00 to 23:59.")))
        cleaned.append({"day": day, "start": start, "end": end})
    return sorted(cleaned, key=lambda r: (r["day"], r["start"], r["end"]))


def _hhmm(value: str) -> time:
    hours, minutes = value.split(":")
    return time(int(hours), int(minutes))


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """The UTC instant of local ``day`` ``at`` in ``tz`` (PEP 495, ``fold=0``): a repeated local
    time (autumn) is its first occurrence; a skipped one (spring) comes as late as the gap is
    long (02:30 on the spring day is 03:30)."""
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def sleep_intervals(ranges: Sequence[dict[str, Any]], time_zone: str, start: datetime,
                    end: datetime) -> list[tuple[datetime, datetime]]:
    """The merged UTC intervals during which the schedule sleeps that meet ``[start, end]``."""
    tz = zone(time_zone)
    first = start.astimezone(tz).date() - timedelta(days=2)
    last = end.astimezone(tz).date() + timedelta(days=1)
    found: list[tuple[datetime, datetime]] = []
    day = first
    while day <= last:
        for item in ranges:
            if item["day"] != day.weekday():
                continue
            begin_at, end_at = _hhmm(item["start"]), _hhmm(item["end"])
            end_day = day if end_at > begin_at else day + timedelta(days=1)
            found.append((_instant(day, begin_at, tz), _instant(end_day, end_at, tz)))
        day += timedelta(days=1)
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted(found):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return [(lo, hi) for lo, hi in merged if hi > start and lo <= end]


def asleep(ranges: Sequence[dict[str, Any]], time_zone: str, at: datetime) -> bool:
    """Does the schedule sleep at ``at``?"""
    return any(lo <= at < hi for lo, hi in sleep_intervals(ranges, time_zone, at, at))


@dataclass(frozen=True)
class Boundary:
    at: datetime
    kind: str  # "hibernate" or "wake"


def boundaries(ranges: Sequence[dict[str, Any]], time_zone: str, start: datetime,
               end: datetime) -> list[Boundary]:
    """Every moment in ``(start, end]`` at which the schedule falls asleep or wakes, in order."""
    found = []
    for lo, hi in sleep_intervals(ranges, time_zone, start, end):
        if start < lo <= end:
            found.append(Boundary(lo, "hibernate"))
        if start < hi <= end:
            found.append(Boundary(hi, "wake"))
    return sorted(found, key=lambda b: b.at)


def last_boundary(ranges: Sequence[dict[str, Any]], time_zone: str,
                  at: datetime) -> Boundary | None:
    """The latest boundary at or before ``at`` (looking back a week and a day)."""
    found = boundaries(ranges, time_zone, at - timedelta(days=8), at)
    return found[-1] if found else None


def next_boundary(ranges: Sequence[dict[str, Any]], time_zone: str, at: datetime,
                  kind: str | None = None) -> Boundary | None:
    """The first boundary after ``at`` (of ``kind`` if given), within eight days."""
    for boundary in boundaries(ranges, time_zone, at, at + timedelta(days=8)):
        if kind is None or boundary.kind == kind:
            return boundary
    return None


def describe(ranges: Iterable[dict[str, Any]]) -> list[str]:
    """The ranges in words, one per range ("Monday 20:00–08:00")."""
    return [f"{DAY_NAMES[r['day']]} {r['start']}–{r['end']}" for r in ranges]
