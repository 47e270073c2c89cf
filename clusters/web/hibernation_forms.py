"""The hibernation schedule form of the cluster page: a preset, or one range per weekday, in a
time zone. The API takes any list of ranges (``clusters.hibernation_schedule``)."""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clusters import hibernation_schedule as schedules
from clusters.models import HibernationSchedule

DAYS = range(7)


def _time_field(label: str) -> forms.CharField:
    return forms.CharField(label=label, required=False, max_length=5, widget=forms.TextInput(
        attrs={"placeholder": "HH:MM", "size": 5, "inputmode": "numeric",
               "pattern": r"([01]\d|2[0-3]):[0-5]\d"}))


class HibernationScheduleForm(forms.Form):
    enabled = forms.BooleanField(label=gettext_lazy("Follow this schedule"), required=False,
                                 initial=True)
    preset = forms.ChoiceField(label=gettext_lazy("Preset"), required=False)
    time_zone = forms.CharField(label=gettext_lazy("Time zone"), max_length=64,
                                initial="Europe/Zurich",
                                widget=forms.TextInput(attrs={"list": "time-zones"}))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        preset = cast(forms.ChoiceField, self.fields["preset"])
        preset.choices = [("", _("My own ranges below"))] + [
            (p.key, str(p.label)) for p in schedules.PRESETS]
        for day in DAYS:
            name = str(schedules.DAY_NAMES[day])
            self.fields[f"day{day}_start"] = _time_field(_("%(day)s: sleep from") % {"day": name})
            self.fields[f"day{day}_end"] = _time_field(_("%(day)s: until") % {"day": name})

    @property
    def days(self) -> list[tuple[str, Any, Any]]:
        return [(str(schedules.DAY_NAMES[d]), self[f"day{d}_start"], self[f"day{d}_end"])
                for d in DAYS]

    def clean_time_zone(self) -> str:
        value = self.cleaned_data["time_zone"].strip()
        try:
            schedules.zone(value)
        except schedules.ScheduleError as exc:
            raise forms.ValidationError(exc.message) from None
        return value

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        ranges = []
        for day in DAYS:
            start = (data.get(f"day{day}_start") or "").strip()
            end = (data.get(f"day{day}_end") or "").strip()
            if not start and not end:
                continue
            good = True
            for key, value in ((f"day{day}_start", start), (f"day{day}_end", end)):
                if not value:
                    self.add_error(key, _("Give both times, or neither."))
                    good = False
                elif not _is_hhmm(value):
                    self.add_error(key, _("Times are HH:MM, from 00:00 to 23:59."))
                    good = False
            if good:
                ranges.append({"day": day, "start": start, "end": end})
        if not data.get("preset") and data.get("enabled") and not ranges and not self.errors:
            self.add_error("preset", _("Choose a preset or give at least one range."))
        data["ranges"] = ranges
        return data


def _is_hhmm(value: str) -> bool:
    try:
        schedules.clean_ranges([{"day": 0, "start": value, "end": value}])
    except schedules.ScheduleError:
        return False
    return True


def schedule_initial(row: HibernationSchedule | None) -> dict[str, Any]:
    if row is None:
        return {"enabled": True, "preset": "nights_weekends", "time_zone": "Europe/Zurich"}
    initial: dict[str, Any] = {"enabled": row.enabled, "preset": row.preset,
                               "time_zone": row.time_zone}
    if not row.preset:
        for item in row.ranges or []:
            initial.setdefault(f"day{item['day']}_start", item["start"])
            initial.setdefault(f"day{item['day']}_end", item["end"])
    return initial
