"""``{% load billing_tags %}``: money and hours formatting, how budgets and invoices read
(styles and words, so the billing templates map no state themselves), and the budget notices
partial.

Other pages show budget notices with ``{% billing_notices current_tenant %}`` (renders
``billing/notices.html`` with this month's alerts; one query).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.template.defaultfilters import date as date_filter
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from billing.models import BudgetAlert
from billing.periods import Period
from portal.formatting import money
from portal.formatting import number as format_number

register = template.Library()


def _decimal(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        return None


@register.filter
def chf(value: Any) -> str:
    """An amount in the active language's Swiss convention (``portal.formatting.money``):
    ``Decimal("1234.5")`` → ``1'234.50`` in German, ``1 234.50`` in French. Only digits,
    separators and a sign: safe as it is, so the apostrophe is not escaped."""
    return mark_safe(money(value))  # noqa: S308 - digits, separators and a sign only


@register.filter
def hours(value: Any, places: int = 2) -> str:
    """Unit-seconds → hours in the active language: ``Decimal(5400)`` → ``1.50`` (``1,50`` in
    French)."""
    number = _decimal(value)
    if number is None:
        return ""
    return mark_safe(format_number(number / 3600, int(places)))  # noqa: S308 - digits only


@register.filter
def price(value: Any) -> str:
    """CHF per hour with the digits that matter: ``0.078000`` → ``0.078``."""
    number = _decimal(value)
    if number is None:
        return ""
    text = f"{number:.6f}".rstrip("0")
    whole, _dot, frac = text.partition(".")
    return f"{whole}.{frac.ljust(2, '0')}"


@register.filter
def vat_percent(value: Any) -> str:
    """``Decimal("0.0810")`` → ``8.1``."""
    number = _decimal(value)
    return "" if number is None else f"{number * 100:.1f}"


@register.filter
def percent(value: Any, of: Any) -> int:
    number, total = _decimal(value), _decimal(of)
    if number is None or not total:
        return 0
    return int(number * 100 / total)


@register.filter
def at_most(value: int, limit: int) -> int:
    """``{{ used|at_most:100 }}``: a progress bar's value never passes its end."""
    return min(int(value), int(limit))


@register.filter
def budget_bar_style(used_percent: int) -> str:
    """The budget bar's colour: red once the budget is spent, orange from 80 %."""
    if used_percent >= 100:
        return "progress-danger"
    return "progress-warning" if used_percent >= 80 else ""


@register.filter
def budget_alert_style(threshold: int) -> str:
    """A budget notice's alert style: an exceeded budget is an error, earlier thresholds warn."""
    return "danger" if threshold >= 100 else "warning"


@dataclass(frozen=True)
class Badge:
    label: str
    style: str


@register.filter
def invoice_status(invoice: Any) -> Badge:
    """``{% with status=inv|invoice_status %}``: a draft, a credit note (with the invoice it
    cancels), a voided invoice or a final one."""
    if invoice.is_draft:
        return Badge(_("Draft"), "bg-blue-lt")
    if invoice.is_credit_note:
        return Badge(_("Cancels %(n)s") % {"n": invoice.credits.number}, "bg-purple-lt")
    if invoice.credit_notes.all():
        return Badge(_("Void"), "bg-secondary-lt")
    return Badge(_("Final"), "bg-green-lt")


@register.simple_tag
def invoice_heading(invoice: Any, draft: Any) -> str:
    """The invoice page's heading: a draft names its month, a credit note and an invoice their
    number."""
    if invoice.is_draft:
        return _("Draft invoice, %(month)s") % {"month": date_filter(draft.period.start, "F Y")}
    if invoice.is_credit_note:
        return _("Credit note %(n)s") % {"n": invoice.number}
    return _("Invoice %(n)s") % {"n": invoice.number}


@register.simple_tag
def invoice_summary(invoice: Any, period: Any) -> str:
    """The first sentence of an invoice's email: what it is, and what a credit note cancels."""
    if invoice.is_credit_note:
        return _("Credit note %(number)s cancels invoice %(cancels)s. Reason: %(reason)s") % {
            "number": invoice.number, "cancels": invoice.credits.number, "reason": invoice.reason}
    return _("Invoice %(number)s for %(tenant)s, usage of %(month)s (UTC).") % {
        "number": invoice.number, "tenant": invoice.tenant_name, "month": period.key}


@register.inclusion_tag("billing/notices.html")
def billing_notices(tenant: Any) -> dict[str, Any]:
    alerts = list(BudgetAlert.objects.filter(tenant=tenant, period_start=Period.current().start)
                  .order_by("-threshold")[:1]) if tenant is not None else []
    return {"budget_alerts": alerts, "notice_tenant": tenant}
