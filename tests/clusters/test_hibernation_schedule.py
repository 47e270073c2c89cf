"""Hibernation schedules as time (pure): ranges over midnight and weekends, time zones, DST."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from clusters import hibernation_schedule as schedules

ZURICH = "Europe/Zurich"
NIGHTS_WEEKENDS = schedules.PRESETS_BY_KEY["nights_weekends"].as_ranges()


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_nights_and_weekends_sleep_over_midnight_and_from_friday_evening_to_monday_morning():
    # Week of Monday 2026-12-07 (winter: Zurich is UTC+1).
    intervals = schedules.sleep_intervals(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 7, 12),
                                          utc(2026, 12, 14, 12))
    assert intervals == [
        (utc(2026, 12, 7, 19), utc(2026, 12, 8, 7)),   # Monday 20:00 → Tuesday 08:00
        (utc(2026, 12, 8, 19), utc(2026, 12, 9, 7)),
        (utc(2026, 12, 9, 19), utc(2026, 12, 10, 7)),
        (utc(2026, 12, 10, 19), utc(2026, 12, 11, 7)),
        (utc(2026, 12, 11, 19), utc(2026, 12, 14, 7)),  # Friday 20:00 → Monday 08:00
    ]
    assert schedules.asleep(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 12, 12))  # Saturday noon
    assert schedules.asleep(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 8, 0))  # Tuesday 01:00
    assert not schedules.asleep(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 8, 7))  # 08:00: awake
    assert not schedules.asleep(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 11, 18, 59))


def test_boundaries_come_in_order_and_a_weekend_has_no_boundary_inside_it():
    found = schedules.boundaries(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 11, 12),
                                 utc(2026, 12, 15, 12))
    assert [(b.at, b.kind) for b in found] == [
        (utc(2026, 12, 11, 19), "hibernate"), (utc(2026, 12, 14, 7), "wake"),
        (utc(2026, 12, 14, 19), "hibernate"), (utc(2026, 12, 15, 7), "wake")]
    assert schedules.last_boundary(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 13, 9)) == \
        schedules.Boundary(utc(2026, 12, 11, 19), "hibernate")
    assert schedules.next_boundary(NIGHTS_WEEKENDS, ZURICH, utc(2026, 12, 13, 9), "wake") == \
        schedules.Boundary(utc(2026, 12, 14, 7), "wake")


def test_the_night_of_the_spring_change_is_eleven_hours_at_the_same_local_times():
    # Europe/Zurich moves from UTC+1 to UTC+2 on Sunday 2027-03-28 at 02:00.
    nights = schedules.PRESETS_BY_KEY["nights"].as_ranges()
    intervals = schedules.sleep_intervals(nights, ZURICH, utc(2027, 3, 27, 12),
                                          utc(2027, 3, 28, 12))
    start, end = intervals[0]
    assert (start, end) == (utc(2027, 3, 27, 19), utc(2027, 3, 28, 6))  # 20:00 → 08:00 local
    assert end - start == timedelta(hours=11)
    following = schedules.sleep_intervals(nights, ZURICH, utc(2027, 3, 28, 12),
                                          utc(2027, 3, 29, 12))[0]
    assert following == (utc(2027, 3, 28, 18), utc(2027, 3, 29, 6))  # 20:00 CEST


def test_the_night_of_the_autumn_change_is_thirteen_hours():
    # Back from UTC+2 to UTC+1 on Sunday 2026-10-25 at 03:00.
    nights = schedules.PRESETS_BY_KEY["nights"].as_ranges()
    start, end = schedules.sleep_intervals(nights, ZURICH, utc(2026, 10, 24, 12),
                                           utc(2026, 10, 25, 6))[0]
    assert (start, end) == (utc(2026, 10, 24, 18), utc(2026, 10, 25, 7))
    assert end - start == timedelta(hours=13)


def test_a_range_in_the_hour_skipped_in_spring_starts_an_hour_later():
    ranges = [{"day": 6, "start": "02:30", "end": "05:00"}]
    assert schedules.sleep_intervals(ranges, ZURICH, utc(2027, 3, 27), utc(2027, 3, 29)) == \
        [(utc(2027, 3, 28, 1, 30), utc(2027, 3, 28, 3))]  # 03:30 → 05:00 CEST


def test_the_same_ranges_in_other_time_zones_are_other_instants():
    ranges = [{"day": 0, "start": "20:00", "end": "08:00"}]
    at = utc(2026, 12, 7)
    tokyo = schedules.sleep_intervals(ranges, "Asia/Tokyo", at, at + timedelta(days=2))
    new_york = schedules.sleep_intervals(ranges, "America/New_York", at, at + timedelta(days=2))
    assert tokyo == [(utc(2026, 12, 7, 11), utc(2026, 12, 7, 23))]
    assert new_york == [(utc(2026, 12, 8, 1), utc(2026, 12, 8, 13))]


@pytest.mark.parametrize(("raw", "field"), [
    ("nights", "ranges"),
    ([{"day": 7, "start": "20:00", "end": "08:00"}], "ranges"),
    ([{"day": 1, "start": "24:00", "end": "08:00"}], "ranges"),
    ([{"day": 1, "start": "8:00", "end": "08:00"}], "ranges"),
    ([{"day": True, "start": "20:00", "end": "08:00"}], "ranges"),
    ([{"day": 1, "start": "20:00", "end": "08:00", "x": 1}], "ranges"),
    ([{"day": 1, "start": "20:00", "end": "08:00"}] * 15, "ranges"),
])
def test_ranges_that_are_not_a_schedule_are_refused_in_words(raw, field):
    with pytest.raises(schedules.ScheduleError) as refused:
        schedules.clean_ranges(raw)
    assert refused.value.field == field and refused.value.message


@pytest.mark.parametrize("name", ["", "Mars/Olympus", "x" * 80, "../etc/passwd"])
def test_a_time_zone_must_be_an_iana_name(name):
    with pytest.raises(schedules.ScheduleError) as refused:
        schedules.zone(name)
    assert refused.value.field == "time_zone"
