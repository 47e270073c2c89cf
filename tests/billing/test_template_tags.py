"""How budgets and invoices read on the pages and in emails (billing_tags)."""

from __future__ import annotations

from datetime import date
from types import SimpleNamespace

import pytest
from django.utils import translation

from billing.periods import Period
from billing.web.templatetags import billing_tags


@pytest.mark.parametrize(("used", "style", "bar"), [
    (0, "", 0), (79, "", 79), (80, "progress-warning", 80), (99, "progress-warning", 99),
    (100, "progress-danger", 100), (250, "progress-danger", 100)])
def test_the_budget_bar_turns_orange_at_80_and_red_when_spent(used, style, bar):
    assert billing_tags.budget_bar_style(used) == style
    assert billing_tags.at_most(used, 100) == bar


@pytest.mark.parametrize(("threshold", "style"), [(50, "warning"), (90, "warning"),
                                                   (100, "danger"), (120, "danger")])
def test_a_budget_notice_is_an_error_once_the_budget_is_spent(threshold, style):
    assert billing_tags.budget_alert_style(threshold) == style


class Notes:
    def __init__(self, *notes: object) -> None:
        self.notes = list(notes)

    def all(self) -> list[object]:
        return self.notes


def invoice(**values: object) -> SimpleNamespace:
    return SimpleNamespace(**{"is_draft": False, "is_credit_note": False, "number": "2026-000007",
                              "credits": None, "credit_notes": Notes(), "reason": "",
                              "tenant_name": "ACME", **values})


@pytest.mark.parametrize(("values", "label", "style"), [
    ({"is_draft": True, "number": ""}, "Draft", "bg-blue-lt"),
    ({"is_credit_note": True, "number": "CN-2026-000001",
      "credits": SimpleNamespace(number="2026-000003")}, "Cancels 2026-000003", "bg-purple-lt"),
    ({"credit_notes": Notes("CN-2026-000001")}, "Void", "bg-secondary-lt"),
    ({}, "Final", "bg-green-lt")])
def test_an_invoice_states_what_it_is(values, label, style):
    status = billing_tags.invoice_status(invoice(**values))
    assert (status.label, status.style) == (label, style)


def test_the_invoice_page_heading_names_the_month_of_a_draft_and_the_number_otherwise():
    draft = SimpleNamespace(period=Period(date(2026, 3, 1)))
    assert billing_tags.invoice_heading(invoice(is_draft=True), draft) == \
        "Draft invoice, March 2026"
    assert billing_tags.invoice_heading(invoice(is_credit_note=True, number="CN-1"), draft) == \
        "Credit note CN-1"
    assert billing_tags.invoice_heading(invoice(), draft) == "Invoice 2026-000007"
    with translation.override("fr"):
        assert billing_tags.invoice_heading(invoice(is_draft=True), draft) == \
            "Brouillon de facture, mars 2026"


def test_an_invoice_email_opens_with_what_it_is():
    period = Period(date(2026, 3, 1))
    assert billing_tags.invoice_summary(invoice(), period) == \
        "Invoice 2026-000007 for ACME, usage of 2026-03 (UTC)."
    note = invoice(is_credit_note=True, number="CN-1", reason="wrong price",
                   credits=SimpleNamespace(number="2026-000003"))
    assert billing_tags.invoice_summary(note, period) == \
        "Credit note CN-1 cancels invoice 2026-000003. Reason: wrong price"
