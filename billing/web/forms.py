from __future__ import annotations

from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.models import DEFAULT_THRESHOLDS


class BudgetForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Monthly budget (CHF, before VAT)"), min_value=Decimal("0.01"),
        max_digits=12, decimal_places=2,
        widget=forms.NumberInput(attrs={"class": "form-control", "step": "0.01", "min": "0.01"}))
    thresholds = forms.CharField(
        label=_("Alert at (% of the budget)"), required=False,
        help_text=_("Comma-separated percentages; each one alerts once a month, by email to "
                    "owners and billing members and on the usage page. Default: 50, 80, 100."),
        widget=forms.TextInput(attrs={"class": "form-control", "placeholder": "50, 80, 100"}))

    def clean_thresholds(self) -> list[int]:
        raw = (self.cleaned_data.get("thresholds") or "").replace(";", ",")
        parts = [p.strip().rstrip("%").strip() for p in raw.split(",") if p.strip()]
        if not parts:
            return list(DEFAULT_THRESHOLDS)
        try:
            values = sorted({int(p) for p in parts})
        except ValueError:
            raise forms.ValidationError(_("Use whole percentages such as 50, 80, 100.")) from None
        if any(not 1 <= v <= 1000 for v in values):
            raise forms.ValidationError(_("Each threshold is between 1 and 1000 %."))
        if len(values) > 10:
            raise forms.ValidationError(_("At most 10 thresholds."))
        return values
