"""Maintenance windows in their time zones, where a cluster's comes from, freeze periods and
staff's limits (``clusters.maintenance``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.models import (
    WEEKDAY_CHOICES,
    WINDOW_MAX_MINUTES,
    WINDOW_MIN_MINUTES,
    Cluster,
    FreezePeriod,
    MaintenanceWindow,
    UpgradeControl,
    UpgradePolicy,
)
from portal.audit import Actor

REASON = "window"
POSTPONE_MAX_DAYS = 14
# How far ahead a window is looked for (a weekly window always opens within a week; freeze
# periods may push it further).
SEARCH_DAYS = 120


def system() -> Actor:
    return Actor.system(REASON)


# --------------------------------------------------------------------------- windows


@dataclass(frozen=True)
class Window:
    """A weekly maintenance window in a time zone."""

    weekdays: tuple[int, ...]
    start: time
    minutes: int
    zone: str

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.zone)

    @property
    def duration(self) -> timedelta:
        return timedelta(minutes=self.minutes)

    def occurrences(self, after: datetime, until: datetime) -> Iterator[tuple[datetime, datetime]]:
        """Each opening (start, end, UTC) that is still open at ``after`` (its end is later)
        and starts before ``until``, in order. Local wall-clock time: a start that does not
        exist on a spring-forward day moves on by the gap, an ambiguous one on a fall-back
        day is its first occurrence."""
        tz = self.tz
        day = (after - self.duration).astimezone(tz).date()
        last = until.astimezone(tz).date()
        while day <= last:
            if day.weekday() in self.weekdays:
                local = datetime.combine(day, self.start, tzinfo=tz)
                start = local.astimezone(UTC)
                # A wall-clock time skipped by DST: fold=0 reads it with the offset before the
                # change, i.e. shifted forward by the gap, as the zone's clocks do.
                end = start + self.duration
                if end > after and start < until:
                    yield start, end
            day += timedelta(days=1)

    def describe(self) -> str:
        names = [str(label) for value, label in WEEKDAY_CHOICES if value in self.weekdays]
        hours, minutes = divmod(self.minutes, 60)
        length = f"{hours} h" + (f" {minutes:02d} min" if minutes else "")
        return _("%(days)s at %(start)s for %(length)s (%(zone)s)") % {
            "days": ", ".join(names), "start": self.start.strftime("%H:%M"), "length": length,
            "zone": self.zone}


def valid_zone(name: str) -> bool:
    if not name or len(name) > 64:
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in _zones()


_ZONES: frozenset[str] | None = None


def _zones() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def check_window(weekdays: Iterable[Any], start: time | None, minutes: Any, zone: str
                 ) -> Window:
    """A window from what a person sent, or a ``ValidationError`` per field."""
    errors: dict[str, list[ValidationError]] = {}
    days = sorted({d for d in weekdays if isinstance(d, int) and not isinstance(d, bool)
                   and 0 <= d <= 6})
    if not days or len(days) != len(list(weekdays)):
        errors["weekdays"] = [ValidationError(
            _("Choose one or more weekdays (0 Monday … 6 Sunday)."), code="invalid_weekdays")]
    if start is None:
        errors["start_time"] = [ValidationError(_("Give a start time (HH:MM)."),
                                                code="invalid_start")]
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not (
            WINDOW_MIN_MINUTES <= minutes <= WINDOW_MAX_MINUTES):
        errors["duration_minutes"] = [ValidationError(
            _("A window lasts from %(min)s to %(max)s minutes.")
            % {"min": WINDOW_MIN_MINUTES, "max": WINDOW_MAX_MINUTES}, code="invalid_duration")]
    if not valid_zone(zone):
        errors["time_zone"] = [ValidationError(
            _("Use an IANA time zone, such as Europe/Zurich."), code="invalid_time_zone")]
    if errors:
        raise ValidationError(errors)
    assert start is not None and isinstance(minutes, int)
    return Window(tuple(days), start.replace(second=0, microsecond=0), minutes, zone)


def platform_default() -> Window:
    """The platform's default window (settings), e.g. ``"6 02:00 240 Europe/Zurich"``."""
    days, start, minutes, zone = settings.MAINTENANCE_DEFAULT_WINDOW.split()
    hour, minute = (int(part) for part in start.split(":"))
    return Window(tuple(sorted(int(d) for d in days.split(","))), time(hour, minute),
                  int(minutes), zone)


def window_of(row: MaintenanceWindow) -> Window:
    return Window(tuple(sorted(row.weekdays)), row.start_time, row.duration_minutes,
                  row.time_zone)


@dataclass(frozen=True)
class Setting:
    """A cluster's window and upgrade policy, and where they come from."""

    window: Window
    policy: str
    source: str  # "cluster", "tenant", "platform"


def tenant_default(tenant_id: int) -> MaintenanceWindow | None:
    return MaintenanceWindow.objects.filter(tenant_id=tenant_id, cluster__isnull=True).first()


def setting_of(cluster: Cluster) -> Setting:
    row = MaintenanceWindow.objects.filter(cluster=cluster).first()
    if row is not None:
        return Setting(window_of(row), row.upgrade_policy, "cluster")
    default = tenant_default(cluster.tenant_id)
    if default is not None:
        return Setting(window_of(default), default.upgrade_policy, "tenant")
    return Setting(platform_default(), UpgradePolicy.MANUAL, "platform")


def settings_of(clusters: Iterable[Cluster]) -> dict[int, Setting]:
    """``setting_of`` for many clusters in two queries (the planner's pass over the fleet)."""
    clusters = list(clusters)
    own = {row.cluster_id: row for row in MaintenanceWindow.objects.filter(
        cluster_id__in=[c.pk for c in clusters])}
    defaults = {row.tenant_id: row for row in MaintenanceWindow.objects.filter(
        cluster__isnull=True, tenant_id__in={c.tenant_id for c in clusters})}
    found = {}
    for cluster in clusters:
        row = own.get(cluster.pk)
        if row is not None:
            found[cluster.pk] = Setting(window_of(row), row.upgrade_policy, "cluster")
        elif (default := defaults.get(cluster.tenant_id)) is not None:
            found[cluster.pk] = Setting(window_of(default), default.upgrade_policy, "tenant")
        else:
            found[cluster.pk] = Setting(platform_default(), UpgradePolicy.MANUAL, "platform")
    return found


# --------------------------------------------------------------------------- staff's settings


@dataclass(frozen=True)
class Limits:
    max_concurrent: int
    end_of_life_lead_days: int
    announce_days: int


def limits() -> Limits:
    row = UpgradeControl.objects.filter(pk=1).first()
    if row is None:
        return Limits(settings.MAINTENANCE_MAX_CONCURRENT_UPGRADES,
                      settings.MAINTENANCE_END_OF_LIFE_LEAD_DAYS,
                      settings.MAINTENANCE_ANNOUNCE_DAYS)
    return Limits(row.max_concurrent_upgrades, row.end_of_life_lead_days, row.announce_days)


def frozen_at(at: datetime, freezes: list[FreezePeriod] | None = None) -> FreezePeriod | None:
    periods = freezes if freezes is not None else list(
        FreezePeriod.objects.filter(starts_at__lte=at, ends_at__gt=at))
    return next((f for f in periods if f.starts_at <= at < f.ends_at), None)


def freezes_between(after: datetime, until: datetime) -> list[FreezePeriod]:
    return list(FreezePeriod.objects.filter(ends_at__gt=after, starts_at__lt=until))


def next_window(window: Window, after: datetime, *, before: datetime | None = None,
                freezes: list[FreezePeriod] | None = None) -> tuple[datetime, datetime] | None:
    """The first opening that starts at or after ``after`` (and before ``before``) whose start
    no freeze period covers."""
    until = before or after + timedelta(days=SEARCH_DAYS)
    periods = freezes if freezes is not None else freezes_between(after, until)
    for start, end in window.occurrences(after, until):
        if start >= after and frozen_at(start, periods) is None:
            return start, end
    return None

