"""The Swiss QR-bill: a finalized CHF invoice's PDF carries the payment part with the
creditor's account, the total and a reference derived from the invoice number, which checks
out and leads back to the invoice; a credit note, a draft and a portal without an IBAN carry
none. The PDF also carries the branding."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core.checks import run_checks
from django.urls import reverse
from django.utils import translation
from hypothesis import given
from hypothesis import strategies as st
from pypdf import PdfReader
from stdnum import iso11649
from stdnum.ch import esr

from billing import actions, exports, invoicing, payment_slip
from billing.periods import Period
from portal import branding
from portal.audit import Actor
from portal.models import AuditEntry, Branding
from tests.billing.conftest import T0, make_rig
from tests.factories import UserFactory

QR_IBAN = "CH44 3199 9123 0008 8901 2"  # institution id 31999: a QR-IBAN
IBAN = "CH93 0076 2011 6238 5295 7"  # an ordinary IBAN (institution id 00762)
MARCH = Period(date(2026, 3, 1))
AFTER_MARCH = datetime(2026, 4, 5, tzinfo=UTC)


def pdf_text(data: bytes) -> list[str]:
    """The text of each page, whitespace collapsed."""
    return [" ".join((page.extract_text() or "").split()) for page in PdfReader(
        io.BytesIO(data)).pages]


@pytest.fixture
def invoice(tenant, price_book):
    rig = make_rig(tenant, "web")
    rig.observe(T0, md0=2)
    rig.observe(T0 + timedelta(hours=10), md0=0)
    return actions.do_finalize_period(Actor.system(), tenant.pk, MARCH, now=AFTER_MARCH)


@pytest.fixture
def qr_iban(settings):
    settings.BILLING_ISSUER_IBAN = QR_IBAN
    return settings


@pytest.fixture
def iban(settings):
    settings.BILLING_ISSUER_IBAN = IBAN
    return settings


# --------------------------------------------------------------------------- references


@pytest.mark.parametrize(("number", "reference"), [
    ("2026-000001", "000000000000000020260000018"),
    ("2026-000042", "000000000000000020260000425"),
    ("2031-123456", "000000000000000020311234565"),
])
def test_the_qr_reference_is_27_digits_with_its_check_digit(number, reference, settings):
    settings.BILLING_QRR_PREFIX = ""
    assert payment_slip.qr_reference(number) == reference
    assert esr.is_valid(reference)  # an independent implementation agrees
    assert payment_slip.number_from_reference(reference) == number


def test_the_check_digit_of_the_standards_example():
    # SIX, Swiss Implementation Guidelines for the QR-bill: 21 00000 00003 13947 14300 09017
    assert payment_slip.mod10_recursive("21000000000313947143000901") == 7


def test_a_bank_prefix_comes_first_in_the_qr_reference(settings):
    settings.BILLING_QRR_PREFIX = "210000"
    reference = payment_slip.qr_reference("2026-000007")
    assert reference.startswith("210000") and len(reference) == 27 and esr.is_valid(reference)
    assert payment_slip.number_from_reference(reference) == "2026-000007"


@pytest.mark.parametrize("number", ["2026-000001", "2026-000042", "2031-123456"])
def test_the_creditor_reference_is_iso_11649(number):
    reference = payment_slip.creditor_reference(number)
    assert reference.startswith("RF") and iso11649.is_valid(reference)
    assert payment_slip.is_valid_reference(reference)
    assert payment_slip.number_from_reference(reference) == number


@given(year=st.integers(2000, 9999), sequence=st.integers(1, 999_999))
def test_every_invoice_number_gives_valid_references_that_lead_back(year, sequence):
    number = f"{year}-{sequence:06d}"
    qrr = payment_slip.qr_reference(number, prefix="")
    scor = payment_slip.creditor_reference(number)
    assert esr.is_valid(qrr) and iso11649.is_valid(scor)
    assert payment_slip.is_valid_reference(qrr) and payment_slip.is_valid_reference(scor)
    assert payment_slip.creditor_reference(number)[4:] == f"{year}{sequence:06d}"


def test_a_mistyped_reference_is_not_taken_for_an_invoice(settings):
    settings.BILLING_QRR_PREFIX = ""
    reference = payment_slip.qr_reference("2026-000042")
    typo = reference[:10] + str((int(reference[10]) + 1) % 10) + reference[11:]
    assert payment_slip.number_from_reference(typo) is None
    scor = payment_slip.creditor_reference("2026-000042")
    assert payment_slip.number_from_reference(scor[:-1] + "3") is None


def test_the_kind_of_reference_follows_the_iban():
    assert payment_slip.is_qr_iban(QR_IBAN) and not payment_slip.is_qr_iban(IBAN)
    assert payment_slip.reference_for("2026-000001", QR_IBAN).isdigit()
    assert payment_slip.reference_for("2026-000001", IBAN).startswith("RF")


# --------------------------------------------------------------------------- the PDF


def test_a_finalized_invoice_carries_the_payment_part_with_a_qr_reference(invoice, qr_iban):
    bill = payment_slip.payment_part(invoice)
    assert bill is not None and bill.ref_type == "QRR" and bill.amount == "7.78"
    data = bill.qr_data()
    assert "CH4431999123000889012" in data and "\r\n7.78\r\nCHF\r\n" in data
    assert payment_slip.reference_for(invoice.number, QR_IBAN) in data
    pages = pdf_text(exports.invoice_pdf(invoice, invoicing.stored_draft(invoice)))
    last = pages[-1]
    for text in ("Receipt", "Payment part", "Account / Payable to", "CH44 3199 9123 0008 8901 2",
                 "Reference", "Example Cloud SA", "7.78", f"Invoice {invoice.number}"):
        assert text in last, text
    formatted = esr.format(payment_slip.qr_reference(invoice.number))
    assert formatted in last


def test_with_an_ordinary_iban_the_payment_part_quotes_a_creditor_reference(invoice, iban):
    bill = payment_slip.payment_part(invoice)
    assert bill is not None and bill.ref_type == "SCOR"
    reference = payment_slip.creditor_reference(invoice.number)
    assert bill.reference_number == reference
    text = " ".join(pdf_text(exports.invoice_pdf(invoice, invoicing.stored_draft(invoice))))
    assert "Payment part" in text and iso11649.format(reference) in text
    assert f"quoting reference {iso11649.format(reference)}" in text


def test_the_payment_part_speaks_the_invoice_language(invoice, qr_iban):
    invoice.tenant.invoice_language = "fr"
    invoice.tenant.save(update_fields=["invoice_language"])
    with translation.override("en"):  # the page's language does not matter
        text = " ".join(pdf_text(exports.invoice_pdf(invoice,
                                                     invoicing.stored_draft(invoice))))
    assert "Section paiement" in text and "Récépissé" in text


def test_the_tenant_downloads_the_pdf_with_the_payment_part(invoice, qr_iban, billing_user,
                                                           client_for, tenant):
    response = client_for(billing_user).get(reverse(
        "billing:invoice_pdf", kwargs={"tenant_slug": tenant.slug, "invoice_id": invoice.pk}))
    assert response.status_code == 200
    assert "Payment part" in pdf_text(response.content)[-1]


def test_a_credit_note_carries_no_payment_part(invoice, qr_iban):
    staff = Actor(user=UserFactory(is_staff=True), via=AuditEntry.Via.ADMIN)
    note = actions.do_void_invoice(staff, invoice.pk, reason="wrong price",
                                   now=AFTER_MARCH + timedelta(days=1))
    assert payment_slip.payment_part(note) is None
    text = " ".join(pdf_text(exports.invoice_pdf(note, invoicing.stored_draft(note))))
    assert "Credit note" in text
    assert "Payment part" not in text and "Receipt" not in text


def test_a_draft_carries_no_payment_part(tenant, price_book, qr_iban):
    draft = invoicing.ensure_draft(tenant.pk, MARCH)
    assert draft.is_draft and payment_slip.payment_part(draft) is None


def test_without_an_iban_there_is_no_payment_part(invoice, settings):
    settings.BILLING_ISSUER_IBAN = ""
    assert payment_slip.payment_part(invoice) is None
    text = " ".join(pdf_text(exports.invoice_pdf(invoice, invoicing.stored_draft(invoice))))
    assert "Payment part" not in text


def test_a_zero_invoice_carries_no_payment_part(invoice, qr_iban):
    invoice.total = Decimal("0.00")  # an in-memory copy: finalized rows never change
    assert payment_slip.payment_part(invoice) is None


def test_a_creditor_the_qr_bill_refuses_is_reported_at_start_up(settings):
    settings.BILLING_ISSUER_IBAN = "DE89 3704 0044 0532 0130 00"
    errors = [m for m in run_checks() if m.id == "billing.E001"]
    assert errors and "IBAN" in errors[0].msg
    settings.BILLING_ISSUER_IBAN = QR_IBAN
    assert not [m for m in run_checks() if m.id == "billing.E001"]


# --------------------------------------------------------------------------- branding


def test_the_invoice_pdf_carries_the_branding(invoice, django_capture_on_commit_callbacks):
    from portal.actions import do_save_branding

    with django_capture_on_commit_callbacks(execute=True):
        do_save_branding(Branding(product_name="Helvetia Kubernetes", primary_colour="#c8102e",
                                  support_email="billing@helvetia.example",
                                  legal_footer="Helvetia Cloud SA · CHE-123.456.789 MWST"))
    text = " ".join(pdf_text(exports.invoice_pdf(invoice, invoicing.stored_draft(invoice))))
    assert "Helvetia Kubernetes" in text
    assert "billing@helvetia.example" in text
    assert "Helvetia Cloud SA · CHE-123.456.789 MWST" in text
    assert "Kubernetes portal" not in text


def test_the_invoice_pdf_shows_an_uploaded_logo(invoice, django_capture_on_commit_callbacks):
    """The logo stands where the product name stood (the name stays in the page footer)."""
    from portal.actions import do_save_branding
    from tests.portal.test_branding import SVG_LOGO, png

    def first_page() -> tuple[str, int]:
        pdf = exports.invoice_pdf(invoice, invoicing.stored_draft(invoice))
        page = PdfReader(io.BytesIO(pdf)).pages[0]
        return page.extract_text() or "", len(page.images)

    with django_capture_on_commit_callbacks(execute=True):
        do_save_branding(Branding(product_name="Zephyr"))
    text, images = first_page()
    assert text.count("Zephyr") == 2 and images == 0
    with django_capture_on_commit_callbacks(execute=True):
        do_save_branding(Branding(product_name="Zephyr", logo=png(200, 60),
                                  logo_type=branding.PNG))
    text, images = first_page()
    assert text.count("Zephyr") == 1 and images == 1
    with django_capture_on_commit_callbacks(execute=True):
        do_save_branding(Branding(product_name="Zephyr", logo=branding.sanitize_svg(SVG_LOGO),
                                  logo_type=branding.SVG))
    text, _images = first_page()
    assert text.count("Zephyr") == 1
    assert exports._logo(branding.current()) is not None
