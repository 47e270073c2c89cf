"""The webhook pages' forms: what an endpoint receives, and a rotation's overlap."""

from __future__ import annotations

from django import forms
from django.utils.functional import lazy
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from notifications.actions import DEFAULT_OVERLAP_HOURS, OVERLAP_HOURS
from notifications.models import DESCRIPTION_MAX, URL_MAX
from portal.notifications import CATALOGUE


class WebhookForm(forms.Form):
    url = forms.CharField(
        label=_("URL"), max_length=URL_MAX,
        help_text=_("An https:// address on the public internet that accepts POST requests."))
    description = forms.CharField(label=_("Description"), max_length=DESCRIPTION_MAX,
                                  required=False)
    event_types = forms.MultipleChoiceField(
        label=_("Events"), widget=forms.CheckboxSelectMultiple,
        choices=[(t, kind.label) for t, kind in CATALOGUE.items()],
        error_messages={"required": _("Choose at least one event.")})
    enabled = forms.BooleanField(label=_("Send events to this URL"), required=False,
                                 initial=True)


def overlap_label(hours: int) -> str:
    if hours == 0:
        return str(_("None: the old secret stops at once"))
    if hours % 24 == 0:
        days = hours // 24
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    return ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}


class RotateForm(forms.Form):
    overlap_hours = forms.TypedChoiceField(
        label=_("The old secret keeps signing for"), coerce=int,
        choices=[(h, lazy(overlap_label, str)(h)) for h in OVERLAP_HOURS],
        initial=DEFAULT_OVERLAP_HOURS)
