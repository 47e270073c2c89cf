"""Amounts, numbers and dates as each language writes them in Switzerland."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.utils import formats, translation

from portal.formatting import money, number


def test_german_swiss_amounts_use_the_apostrophe():
    # de-CH: 1'234.50, as CLDR writes it (and as Swiss invoices and banks do).
    with translation.override("de"):
        assert money(Decimal("1234.5")) == "1'234.50"
        assert money(Decimal("1234567.891")) == "1'234'567.89"


@pytest.mark.parametrize(("lang", "expected"), [
    ("de", "1'234.50"),
    ("it", "1'234.50"),
    ("en", "1'234.50"),
    ("fr", "1\u202f234.50"),  # fr-CH: narrow no-break space, decimal point for amounts
])
def test_each_language_writes_amounts_its_swiss_way(lang, expected):
    with translation.override(lang):
        assert money("1234.50") == expected


@pytest.mark.parametrize(("value", "expected"), [
    (Decimal("0"), "0.00"), (Decimal("0.005"), "0.01"), (Decimal("-1234.5"), "-1'234.50"),
    (Decimal("999.999"), "1'000.00"), (12, "12.00"), ("7.1", "7.10"),
])
def test_amounts_round_half_up_to_centimes(value, expected):
    assert money(value, language="de") == expected


@pytest.mark.parametrize("nothing", [None, "", "abc", "NaN", "Infinity", True])
def test_no_number_is_no_amount(nothing):
    assert money(nothing) == ""


def test_the_billing_filter_is_the_same_function():
    template = Template("{% load billing_tags %}CHF {{ amount|chf }} · {{ seconds|hours }} h")
    with translation.override("de"):
        text = template.render(Context({"amount": Decimal("1234.5"), "seconds": 5400}))
    assert text == "CHF 1'234.50 · 1.50 h"
    with translation.override("fr"):
        text = template.render(Context({"amount": Decimal("1234.5"), "seconds": 5400}))
    assert text == "CHF 1\u202f234.50 · 1,50 h"


@pytest.mark.parametrize(("lang", "expected"), [
    ("de", "1'234.5678"), ("it", "1'234.5678"), ("en", "1'234.5678"), ("fr", "1\u202f234,5678"),
])
def test_other_numbers_follow_the_swiss_formats(lang, expected):
    with translation.override(lang):
        assert number(Decimal("1234.5678"), 4) == expected


@pytest.mark.parametrize(("lang", "short", "long"), [
    ("de", "05.01.2026", "5. Januar 2026"),
    ("fr", "05.01.2026", "5 janvier 2026"),
    ("it", "05.01.2026", "5 Gennaio 2026"),
    ("en", "01/05/2026", "Jan. 5, 2026"),
])
def test_dates_are_written_the_swiss_way(lang, short, long):
    day = date(2026, 1, 5)
    with translation.override(lang):
        assert formats.date_format(day, "SHORT_DATE_FORMAT") == short
        assert formats.date_format(day) == long
