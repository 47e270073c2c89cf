from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from billing.models import DEFAULT_THRESHOLDS
from cozystack import limits

AMOUNT = limits.BUDGET_CHF
PERCENT = limits.BUDGET_THRESHOLD_PERCENT


class BudgetForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Monthly budget (CHF, before VAT)"), min_value=AMOUNT.lo, max_value=AMOUNT.hi,
        max_digits=12, decimal_places=AMOUNT.places,
        widget=forms.NumberInput(attrs={"class": "form-control", "step": "0.01",
                                        "min": str(AMOUNT.lo), "max": str(AMOUNT.hi)}))
    thresholds = forms.CharField(
        label=_("Alert at (% of the budget)"), required=False, max_length=200,
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
        if any(not PERCENT.allows(v) for v in values):
            raise forms.ValidationError(_("Each threshold is between %(lo)s and %(hi)s %%.")
                                        % {"lo": PERCENT.lo, "hi": PERCENT.hi})
        if len(values) > limits.BUDGET_THRESHOLDS:
            raise forms.ValidationError(_("At most %(count)s thresholds.")
                                        % {"count": limits.BUDGET_THRESHOLDS})
        return values
