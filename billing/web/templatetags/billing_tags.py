"""``{% load billing_tags %}``: money and hours formatting, and the budget notices partial.

Other pages show budget notices with ``{% billing_notices current_tenant %}`` (renders
``billing/notices.html`` with this month's alerts; one query).
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from django import template

from billing.models import BudgetAlert
from billing.periods import Period

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
    """``Decimal("1234.5")`` → ``1’234.50`` (Swiss grouping, two decimals)."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number:,.2f}".replace(",", "\u2019")


@register.filter
def hours(value: Any, places: int = 2) -> str:
    """Unit-seconds → hours: ``Decimal(5400)`` → ``1.50``."""
    number = _decimal(value)
    if number is None:
        return ""
    return f"{number / 3600:,.{int(places)}f}".replace(",", "\u2019")


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


@register.inclusion_tag("billing/notices.html")
def billing_notices(tenant: Any) -> dict[str, Any]:
    alerts = list(BudgetAlert.objects.filter(tenant=tenant, period_start=Period.current().start)
                  .order_by("-threshold")[:1]) if tenant is not None else []
    return {"budget_alerts": alerts, "notice_tenant": tenant}
