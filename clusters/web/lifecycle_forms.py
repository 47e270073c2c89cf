"""Forms of expiry and templates (issue 16, part C): bounded inputs, errors beside fields."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from clusters import expiry
from clusters.models import (
    EXPIRY_MAX_HOURS,
    EXPIRY_MIN_HOURS,
    TEMPLATE_DESCRIPTION_MAX,
    TEMPLATE_NAME_MAX,
)
from portal.validators import validate_visible_text


def by_field(exc: ValidationError) -> dict[str, list[ValidationError]]:
    """A ``ValidationError``'s errors by field (``__all__`` for those of no field)."""
    if hasattr(exc, "error_dict"):
        return dict(exc.error_dict)
    return {"__all__": list(exc.error_list)}


def _after_choices(limit: int | None, *, blank: str) -> list[tuple[str, str]]:
    hours = [h for h in expiry.AFTER_CHOICES if limit is None or h <= limit]
    if limit is not None and limit not in hours:
        hours.append(limit)
    return [("", blank)] + [(str(h), expiry.hours_label(h)) for h in hours]


class ExpiryForm(forms.Form):
    """"Delete after" a duration, or at a date (in the portal's time zone)."""

    after_hours = forms.TypedChoiceField(label=_("Delete after"), required=False, coerce=int,
                                         empty_value=None)
    expires_at = forms.DateTimeField(
        label=_("or on"), required=False,
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"])

    def __init__(self, *args: Any, limit: int | None = None, optional: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.optional = optional
        field = self.fields["after_hours"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = _after_choices(limit, blank=str(_("Never") if optional else "—"))
        if limit is not None:
            field.help_text = _("This tenant allows at most %(limit)s.") % {
                "limit": expiry.hours_label(limit)}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("after_hours") is not None and data.get("expires_at") is not None:
            raise ValidationError(_("Choose a duration or a date, not both."))
        if not self.optional and data.get("after_hours") is None and \
                data.get("expires_at") is None:
            self.add_error("after_hours", _("Choose how long the cluster lives, or the date "
                                            "it is deleted."))
        return data

    def chosen_expiry(self) -> datetime | None:
        """The expiry asked for (the form is valid), or None; refusals beside their field."""
        data = self.cleaned_data
        if data.get("after_hours") is None and data.get("expires_at") is None:
            return None
        try:
            return expiry.resolve(after_hours=data.get("after_hours"),
                                  at=data.get("expires_at"))
        except ValidationError as exc:
            self.place(exc)
            return None

    def place(self, exc: ValidationError) -> None:
        for field, errors in by_field(exc).items():
            own = field if field in self.fields else ("after_hours" if field == "hours"
                                                      else None)
            for error in errors:
                self.add_error(own, error)


class ExtendForm(forms.Form):
    hours = forms.TypedChoiceField(label=_("Extend by"), coerce=int)

    def __init__(self, *args: Any, limit: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["hours"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = _after_choices(limit, blank="—")[1:]
        hours = [int(value) for value, _label in field.choices]
        field.initial = 24 if 24 in hours else hours[-1]


class ExpiryPolicyForm(forms.Form):
    max_hours = forms.IntegerField(
        label=_("Maximum expiry (hours)"), required=False, min_value=EXPIRY_MIN_HOURS,
        max_value=EXPIRY_MAX_HOURS,
        help_text=_("Empty: no maximum. Otherwise members must give every cluster they create "
                    "an expiry within this many hours (at most 2160, 90 days)."))


class TemplateForm(forms.Form):
    name = forms.CharField(label=_("Template name"), max_length=TEMPLATE_NAME_MAX,
                           validators=[validate_visible_text])
    description = forms.CharField(label=_("Description"), required=False,
                                  max_length=TEMPLATE_DESCRIPTION_MAX,
                                  validators=[validate_visible_text],
                                  widget=forms.Textarea(attrs={"rows": 2}))
