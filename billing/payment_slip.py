"""The Swiss QR-bill payment part of an invoice (``qrbill``), and its structured reference.

A finalized CHF invoice with an amount due carries the payment part on its PDF: the creditor's
account (``BILLING_ISSUER_IBAN``) and address (``BILLING_ISSUER_NAME`` and the
``BILLING_CREDITOR_*`` settings), the invoice's total and a reference derived from its number,
so that a payment can be matched to its invoice (``number_from_reference``):

* with a **QR-IBAN** (institution id 30000–31999) a **QR reference** (QRR): 27 digits, the
  optional bank prefix ``BILLING_QRR_PREFIX``, the invoice number's digits, zeros between, and
  a check digit (modulo 10, recursive);
* with an ordinary IBAN a **creditor reference** (SCOR, ISO 11649): ``RF``, two check digits
  (modulo 97) and the invoice number's letters and digits.

A credit note, a draft, a total of zero and a portal without an IBAN carry no payment part.
"""

from __future__ import annotations

import io
import logging
import re

from django.conf import settings
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from qrbill import QRBill
from reportlab.graphics.shapes import Drawing
from svglib.svglib import svg2rlg

from billing.models import CURRENCY, Invoice

logger = logging.getLogger("billing.payment_slip")

QR_IID_RANGE = range(30000, 32000)
QRR_LENGTH = 27
SCOR_MAX_BODY = 21
_MOD10_TABLE = (0, 9, 4, 6, 8, 2, 7, 1, 3, 5)
LANGUAGES = ("en", "de", "fr", "it")


def compact_iban(iban: str) -> str:
    return re.sub(r"\s+", "", iban or "").upper()


def is_qr_iban(iban: str) -> bool:
    """A Swiss or Liechtenstein IBAN whose institution id (IID) marks a QR-IBAN."""
    value = compact_iban(iban)
    return (len(value) == 21 and value[:2] in ("CH", "LI") and value[4:9].isdigit()
            and int(value[4:9]) in QR_IID_RANGE)


def mod10_recursive(digits: str) -> int:
    """The check digit of Swiss QR references (and the former orange slips)."""
    carry = 0
    for digit in digits:
        carry = _MOD10_TABLE[(carry + int(digit)) % 10]
    return (10 - carry) % 10


def _iso7064_mod97(text: str) -> int:
    return int("".join(str(int(char, 36)) for char in text)) % 97


def _number_digits(number: str) -> str:
    digits = re.sub(r"\D", "", number)
    if not digits:
        raise ValueError(f"invoice number {number!r} has no digits")
    return digits


def qr_reference(number: str, prefix: str | None = None) -> str:
    """The 27-digit QR reference (QRR) of an invoice number."""
    prefix = re.sub(r"\D", "", settings.BILLING_QRR_PREFIX if prefix is None else prefix)
    digits = _number_digits(number)
    width = QRR_LENGTH - 1 - len(prefix)
    if len(digits) > width:
        raise ValueError(f"invoice number {number!r} is too long for a QR reference")
    body = prefix + digits.rjust(width, "0")
    return body + str(mod10_recursive(body))


def creditor_reference(number: str) -> str:
    """The ISO 11649 creditor reference (``RF…``) of an invoice number."""
    body = re.sub(r"[^0-9A-Za-z]", "", number).upper()
    if not body or len(body) > SCOR_MAX_BODY:
        raise ValueError(f"invoice number {number!r} does not fit a creditor reference")
    check = 98 - _iso7064_mod97(body + "RF00")
    return f"RF{check:02d}{body}"


def reference_for(number: str, iban: str) -> str:
    """The reference a payment to ``iban`` quotes for invoice ``number``: QRR with a QR-IBAN,
    SCOR otherwise (a QR-IBAN accepts only QRR, an ordinary IBAN never does)."""
    return qr_reference(number) if is_qr_iban(iban) else creditor_reference(number)


def is_valid_reference(reference: str) -> bool:
    value = re.sub(r"\s+", "", reference).upper()
    if value.startswith("RF"):
        return (4 < len(value) <= 4 + SCOR_MAX_BODY and value[2:4].isdigit()
                and value[4:].isalnum() and _iso7064_mod97(value[4:] + value[:4]) == 1)
    return (len(value) == QRR_LENGTH and value.isdigit()
            and mod10_recursive(value[:-1]) == int(value[-1]))


def number_from_reference(reference: str) -> str | None:
    """The invoice number a payment's reference names (``2026-000042``), or None when the
    reference is not one the portal made."""
    value = re.sub(r"\s+", "", reference).upper()
    if not is_valid_reference(value):
        return None
    if value.startswith("RF"):
        digits = value[4:]
    else:
        prefix = re.sub(r"\D", "", settings.BILLING_QRR_PREFIX)
        if not value.startswith(prefix):
            return None
        digits = value[len(prefix):-1].lstrip("0")
    if not digits.isdigit() or len(digits) < 5:
        return None
    return f"{digits[:4]}-{digits[4:]}"


def creditor() -> dict[str, str]:
    """The creditor's structured address, from the settings."""
    return {"name": settings.BILLING_ISSUER_NAME,
            "street": settings.BILLING_CREDITOR_STREET,
            "house_num": settings.BILLING_CREDITOR_HOUSE_NUMBER,
            "pcode": settings.BILLING_CREDITOR_POSTCODE,
            "city": settings.BILLING_CREDITOR_CITY,
            "country": settings.BILLING_CREDITOR_COUNTRY}


def payable(invoice: Invoice) -> bool:
    """Does this invoice carry a payment part?"""
    return (not invoice.is_draft and not invoice.is_credit_note and invoice.currency == CURRENCY
            and invoice.total is not None and invoice.total > 0 and bool(invoice.number)
            and bool(compact_iban(settings.BILLING_ISSUER_IBAN)))


def payment_part(invoice: Invoice) -> QRBill | None:
    """The QR-bill of ``invoice``, or None when it carries none (see ``payable``)."""
    if not payable(invoice):
        return None
    iban = compact_iban(settings.BILLING_ISSUER_IBAN)
    number = str(invoice.number)
    language = (get_language() or "en")[:2]
    return QRBill(
        account=iban, creditor=creditor(), amount=f"{invoice.total:.2f}", currency=CURRENCY,
        reference_number=reference_for(number, iban),
        additional_information=(_("Invoice %(number)s") % {"number": number})[:140],
        language=language if language in LANGUAGES else "en")


def drawing(bill: QRBill) -> Drawing:
    """The payment part as a reportlab drawing, 210 × 105 mm, to place at a page's foot."""
    svg = io.StringIO()
    bill.as_svg(svg)
    rendered = svg2rlg(io.BytesIO(svg.getvalue().encode("utf-8")))
    if rendered is None:
        raise ValueError("the payment part could not be drawn")
    return rendered
