"""The profile page's form for a new API token."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from portal.api.tokens import EXPIRY_CHOICES_DAYS
from portal.forms import declared_field
from portal.models import ApiToken, Tenant


class ApiTokenForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=100,
        help_text=_("What uses it, e.g. “CI deploy” or “Terraform”."),
        widget=forms.TextInput(attrs={"class": "form-control", "autocomplete": "off"}))
    scope = forms.ChoiceField(
        label=_("Scope"), choices=ApiToken.Scope.choices, initial=ApiToken.Scope.READ,
        help_text=_("Read-only tokens cannot change anything nor fetch kubeconfigs."),
        widget=forms.Select(attrs={"class": "form-select"}))
    expires_in_days = forms.TypedChoiceField(
        label=_("Expires in"), coerce=int, initial=90,
        choices=[(days, _("%(days)d days") % {"days": days}) for days in EXPIRY_CHOICES_DAYS],
        widget=forms.Select(attrs={"class": "form-select"}))
    tenant = forms.ModelChoiceField(
        label=_("Tenant"), queryset=Tenant.objects.none(), required=False,
        empty_label=_("All my tenants"),
        help_text=_("Limit the token to one tenant. Your role there still applies."),
        widget=forms.Select(attrs={"class": "form-select"}))

    def __init__(self, user: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        declared_field(self, "tenant", forms.ModelChoiceField).queryset = (
            Tenant.objects.for_user(user).order_by("name"))
