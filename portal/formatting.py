"""Amounts and numbers as the active language writes them in Switzerland.

Every amount of money the portal shows (pages, emails, invoice PDFs) goes through ``money``:

=======  ================  ==========================================
de, it   ``1'234.50``      CLDR de-CH / it-CH: apostrophe, decimal point
en       ``1'234.50``      CLDR en-CH
fr       ``1 234.50``      CLDR fr-CH: narrow no-break space, and the
                           decimal point of amounts (other numbers: comma)
=======  ================  ==========================================

Other numbers (hours, quantities) go through ``number``, which uses the date-and-number formats
of ``portal.formats`` (Django's ``number_format``).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.utils import translation
from django.utils.formats import number_format

APOSTROPHE = "'"
NARROW_NBSP = "\u202f"
# (thousands separator, decimal separator) of amounts, per language.
MONEY_SEPARATORS: dict[str, tuple[str, str]] = {
    "de": (APOSTROPHE, "."),
    "it": (APOSTROPHE, "."),
    "en": (APOSTROPHE, "."),
    "fr": (NARROW_NBSP, "."),
}


def as_decimal(value: Any) -> Decimal | None:
    """``value`` as a finite Decimal, or None for nothing, text that is no number, NaN or ∞."""
    if value is None or value == "" or isinstance(value, bool):
        return None
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, TypeError, ValueError):
        return None
    return number if number.is_finite() else None


def base_language(language: str | None = None) -> str:
    """``de-ch`` → ``de``; the active language when none is given."""
    code = language or translation.get_language() or "en"
    return code.split("-")[0].split("_")[0].lower()


def _grouped(number: Decimal, places: int, group: str, decimal: str) -> str:
    quantum = Decimal(1).scaleb(-places)
    rounded = number.quantize(quantum, rounding=ROUND_HALF_UP)
    sign = "-" if rounded < 0 else ""
    whole, _dot, fraction = f"{abs(rounded):f}".partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        whole, tail = whole[:-3], whole[-3:]
        groups.insert(0, tail)
    text = group.join([whole, *groups])
    return f"{sign}{text}{decimal}{fraction}" if places > 0 else f"{sign}{text}"


def money(value: Any, places: int = 2, language: str | None = None) -> str:
    """An amount (CHF) in the active language's Swiss convention; "" for no number.

    ``money(Decimal("1234.5"))`` → ``1'234.50`` in German, ``1 234.50`` in French.
    """
    number = as_decimal(value)
    if number is None:
        return ""
    group, decimal = MONEY_SEPARATORS.get(base_language(language), MONEY_SEPARATORS["en"])
    return _grouped(number, places, group, decimal)


def number(value: Any, places: int = 2) -> str:
    """A number that is no amount (hours, quantities), grouped, in the active language's format:
    ``1'234.50`` in German and English, ``1 234,50`` in French."""
    amount = as_decimal(value)
    if amount is None:
        return ""
    rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    return number_format(rounded, decimal_pos=places, force_grouping=True)
