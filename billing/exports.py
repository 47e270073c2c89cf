"""Exports: segments and invoices as CSV, invoices as PDF (reportlab).

The PDF carries the portal's branding (``portal.branding``: logo or product name, primary
colour, support contact, legal footer) and, on a finalized CHF invoice with an amount due,
the Swiss QR-bill payment part at the foot of its last page (``billing.payment_slip``).
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator
from datetime import timedelta
from decimal import Decimal
from typing import TypedDict
from xml.sax.saxutils import escape as _e

from django.conf import settings
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _
from qrbill import QRBill
from qrbill.bill import format_ref_number
from reportlab.graphics import renderPDF
from reportlab.graphics.shapes import Drawing
from reportlab.lib import colors
from reportlab.lib.enums import TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle, getSampleStyleSheet
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.platypus import (
    Flowable,
    Image,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    Table,
    TableStyle,
)
from svglib.svglib import svg2rlg

from billing import payment_slip
from billing.invoicing import InvoiceDraft
from billing.models import CURRENCY, Invoice, UsageSegment
from billing.periods import Period
from portal import branding, languages
from portal.formatting import money, number

logger = logging.getLogger("billing.exports")

HOURS_PLACES = Decimal("0.0001")


def hours(unit_seconds: Decimal) -> Decimal:
    return (Decimal(unit_seconds) / 3600).quantize(HOURS_PLACES)


def _iso(value) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


class _Echo:
    def write(self, value: str) -> str:
        return value


def segments_csv_rows(segments: Iterable[UsageSegment], period: Period) -> Iterator[str]:
    """CSV lines (streamed) of raw segments, with the seconds that fall inside ``period``."""
    writer = csv.writer(_Echo())
    yield writer.writerow(["segment_id", "cluster", "node_group", "sku", "quantity", "start",
                           "end", "seconds_in_period", "unit_hours_in_period"])
    lo, hi = period.start_at, period.end_at
    now = timezone.now()
    for seg in segments:
        start = max(seg.start, lo)
        end = min(seg.end or now, hi)
        seconds = max(int((end - start).total_seconds()), 0)
        yield writer.writerow([
            seg.pk, seg.cluster.name, seg.node_group.name if seg.node_group else "", seg.sku,
            seg.quantity, _iso(seg.start), _iso(seg.end), seconds,
            hours(seg.quantity * seconds)])


def invoice_csv(invoice: Invoice | None, draft: InvoiceDraft) -> str:
    """An invoice (or a live draft) as CSV: one row per line, then subtotal, VAT and total."""
    out = io.StringIO()
    writer = csv.writer(out)
    number = invoice.number if invoice and invoice.number else "DRAFT"
    writer.writerow(["invoice", "period", "cluster", "sku", "description", "unit",
                     "unit_seconds", "quantity_hours", "unit_price_chf_per_hour",
                     "amount_chf"])
    for line in draft.lines:
        writer.writerow([number, draft.period.key, line.cluster_name, line.sku,
                         line.description, line.unit, line.unit_seconds, hours(line.unit_seconds),
                         "" if line.unit_price is None else line.unit_price, line.amount])
    if invoice and not invoice.is_draft:
        subtotal, rate, vat, total = invoice.amounts
    else:
        subtotal, rate, vat, total = draft.subtotal, draft.vat_rate, draft.vat_amount, draft.total
    writer.writerow([number, draft.period.key, "", "", "subtotal", "", "", "", "", subtotal])
    writer.writerow([number, draft.period.key, "", "", f"VAT {rate * 100:.1f} %", "", "", "",
                     "", vat])
    writer.writerow([number, draft.period.key, "", "", f"total {CURRENCY}", "", "", "", "",
                     total])
    return out.getvalue()


class Issuer(TypedDict):
    """Who issues invoices, from the settings."""

    name: str
    address: list[str]
    vat_id: str
    iban: str
    email: str


def issuer() -> Issuer:
    return {
        "name": settings.BILLING_ISSUER_NAME,
        "address": [line for line in settings.BILLING_ISSUER_ADDRESS.split("|") if line.strip()],
        "vat_id": settings.BILLING_ISSUER_VAT_ID,
        "iban": settings.BILLING_ISSUER_IBAN,
        "email": branding.current().support_email or settings.DEFAULT_FROM_EMAIL,
    }


LOGO_HEIGHT = 14 * mm
LOGO_MAX_WIDTH = 70 * mm


def _logo(brand: branding.Brand) -> Flowable | None:
    """The brand's logo as a flowable at most ``LOGO_HEIGHT`` high, or None (no logo, or one
    the PDF cannot draw: the product name stands in)."""
    if not brand.logo_type:
        return None
    data, content_type = branding.image("logo")
    try:
        if content_type == branding.SVG:
            drawing = svg2rlg(io.BytesIO(data))
            if drawing is None or not drawing.width or not drawing.height:
                return None
            scale = min(LOGO_HEIGHT / drawing.height, LOGO_MAX_WIDTH / drawing.width)
            drawing.scale(scale, scale)
            drawing.width, drawing.height = drawing.width * scale, drawing.height * scale
            drawing.hAlign = "LEFT"
            return drawing
        width, height = ImageReader(io.BytesIO(data)).getSize()
        scale = min(LOGO_HEIGHT / height, LOGO_MAX_WIDTH / width)
        image = Image(io.BytesIO(data), width=width * scale, height=height * scale)
        image.hAlign = "LEFT"
        return image
    except Exception:  # a logo must never stop an invoice: the name stands in
        logger.warning("billing.pdf.logo_failed", exc_info=True)
        return None


class PaymentPart(Flowable):
    """The QR-bill payment part, drawn across the foot of the page (210 × 105 mm, from the
    paper's edge): it takes what is left of the page when that reaches down far enough, else
    it moves to the next page."""

    def __init__(self, drawing: Drawing, bottom_margin: float) -> None:
        super().__init__()
        self.drawing = drawing
        self.needed = drawing.height - bottom_margin + 4 * mm

    def wrap(self, avail_width: float, avail_height: float) -> tuple[float, float]:
        if avail_height >= self.needed:
            return avail_width, avail_height
        return avail_width, self.needed

    def drawOn(self, canvas, x: float, y: float, _sW: float = 0) -> None:  # noqa: N802,N803 - reportlab's names
        renderPDF.draw(self.drawing, canvas, 0, 0)


def _chf(value: Decimal | None) -> str:
    return money(value)  # in the invoice's language: 1'234.50 in German


def invoice_pdf(invoice: Invoice, draft: InvoiceDraft) -> bytes:
    """A printable A4 invoice: issuer, customer, number, period, lines, subtotal, VAT, total;
    written in the tenant's invoice language, whoever asks for it."""
    with translation.override(languages.invoice_language(invoice.tenant)):
        return _invoice_pdf(invoice, draft)


def _invoice_pdf(invoice: Invoice, draft: InvoiceDraft) -> bytes:
    styles = getSampleStyleSheet()
    small = ParagraphStyle("small", parent=styles["Normal"], fontSize=8.5, leading=11)
    right = ParagraphStyle("right", parent=small, alignment=TA_RIGHT)
    title_style = ParagraphStyle("title", parent=styles["Heading1"], fontSize=18, spaceAfter=4)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(buffer, pagesize=A4, leftMargin=18 * mm, rightMargin=18 * mm,
                            topMargin=16 * mm, bottomMargin=18 * mm,
                            title=f"{invoice.number or 'draft'}", author=str(issuer()["name"]))
    info = issuer()
    brand = branding.current()
    primary = colors.HexColor(brand.primary_colour)
    title_style.textColor = primary
    final = not invoice.is_draft
    kind = _("Credit note") if invoice.is_credit_note else _("Invoice")
    story: list = []
    logo = _logo(brand)
    story.append(logo if logo is not None else Paragraph(
        f"<font color='{brand.primary_colour}'><b>{_e(brand.name)}</b></font>",
        ParagraphStyle("brand", parent=styles["Normal"], fontSize=14, leading=17)))
    story.append(Spacer(1, 5 * mm))

    issuer_lines = [f"<b>{_e(str(info['name']))}</b>",
                    *[_e(line) for line in info["address"]]]
    if info["vat_id"]:
        issuer_lines.append(_e(_("VAT no. %(id)s") % {"id": info["vat_id"]}))
    if info["email"]:
        issuer_lines.append(_e(info["email"]))
    if brand.support_url:
        issuer_lines.append(_e(brand.support_url))
    customer_lines = [f"<b>{_e(_('Bill to'))}</b>", _e(invoice.tenant_name or invoice.tenant.name),
                      _e(_("Tenant: %(slug)s") % {"slug": invoice.tenant.slug})]
    story.append(Table(
        [[Paragraph("<br/>".join(issuer_lines), small),
          Paragraph("<br/>".join(customer_lines), small)]],
        colWidths=[95 * mm, 79 * mm], style=[("VALIGN", (0, 0), (-1, -1), "TOP")]))
    story.append(Spacer(1, 10 * mm))
    heading = f"{kind} {invoice.number}" if final else _("Draft invoice (not final)")
    story.append(Paragraph(heading, title_style))
    issued = invoice.issued_at or draft.as_of
    meta = [
        [_("Period"), f"{date_format(draft.period.start, 'F Y')} "
                      f"({draft.period.start:%Y-%m-%d} – {draft.period.last_day:%Y-%m-%d}, UTC)"],
        [_("Issued"), f"{issued:%Y-%m-%d}" if final else _("not yet")],
    ]
    if invoice.is_credit_note and invoice.credits_id:
        meta.append([_("Cancels invoice"), invoice.cancelled_invoice.number or ""])
        if invoice.reason:
            meta.append([_("Reason"), invoice.reason])
    elif final:
        due = issued + timedelta(days=settings.BILLING_PAYMENT_TERMS_DAYS)
        meta.append([_("Payable by"), f"{due:%Y-%m-%d}"])
    meta.append([_("Currency"), CURRENCY])
    story.append(Table([[Paragraph(_e(a), small), Paragraph(_e(str(b)), small)] for a, b in meta],
                       colWidths=[35 * mm, 139 * mm],
                       style=[("BOTTOMPADDING", (0, 0), (-1, -1), 1)]))
    story.append(Spacer(1, 6 * mm))

    header = [_("Cluster"), _("Description"), _("Quantity (h)"), _("Unit price (CHF/h)"),
              _("Amount (CHF)")]
    rows = [[Paragraph(f"<b>{h}</b>", small if i < 2 else right) for i, h in enumerate(header)]]
    for line in draft.lines:
        description = f"{_e(line.description)}<br/><font size=7 color='#666666'>" \
                      f"{_e(line.sku)} · {_e(line.unit)}</font>"
        rows.append([Paragraph(_e(line.cluster_name), small), Paragraph(description, small),
                     Paragraph(number(hours(line.unit_seconds), 4), right),
                     Paragraph("—" if line.unit_price is None else f"{line.unit_price:.6f}",
                               right),
                     Paragraph(_chf(line.amount), right)])
    if not draft.lines:
        rows.append([Paragraph(_("No usage in this period."), small), "", "", "", ""])
    subtotal = invoice.subtotal if final else draft.subtotal
    vat_amount = invoice.vat_amount if final else draft.vat_amount
    total = invoice.total if final else draft.total
    rate = invoice.vat_rate if final else draft.vat_rate
    totals_at = len(rows)
    rows.append(["", Paragraph(_("Subtotal"), small), "", "", Paragraph(_chf(subtotal), right)])
    rows.append(["", Paragraph(_("VAT %(rate)s %%") % {"rate": f"{(rate or 0) * 100:.1f}"},
                               small), "", "", Paragraph(_chf(vat_amount), right)])
    rows.append(["", Paragraph(f"<b>{_('Total')} {CURRENCY}</b>", small), "", "",
                 Paragraph(f"<b>{_chf(total)}</b>", right)])
    table = Table(rows, colWidths=[32 * mm, 64 * mm, 24 * mm, 28 * mm, 26 * mm], repeatRows=1)
    table.setStyle(TableStyle([
        ("LINEBELOW", (0, 0), (-1, 0), 0.8, primary),
        ("LINEBELOW", (0, 1), (-1, totals_at - 1), 0.25, colors.HexColor("#cccccc")),
        ("LINEABOVE", (1, totals_at), (-1, totals_at), 0.8, colors.black),
        ("LINEABOVE", (1, -1), (-1, -1), 0.8, colors.black),
        ("VALIGN", (0, 0), (-1, -1), "TOP"),
    ]))
    story.append(table)
    story.append(Spacer(1, 8 * mm))
    notes = [_("Usage is measured per second and priced per hour; each line is rounded to "
               "0.01 CHF, totals are sums of lines and VAT is computed on the subtotal.")]
    if invoice.has_unpriced or (not final and draft.has_unpriced):
        notes.append(_("Lines without a unit price had no price in force and are billed 0."))
    bill = payment_part_of(invoice)
    if bill is not None:
        notes.append(_("Please pay with the payment part below, quoting reference %(ref)s.")
                     % {"ref": format_ref_number(bill)})
    elif final and not invoice.is_credit_note and info["iban"]:
        notes.append(_("Please pay to IBAN %(iban)s, quoting %(number)s.")
                     % {"iban": info["iban"], "number": invoice.number})
    for note in notes:
        story.append(Paragraph(_e(note), small))
    if brand.legal_lines:
        legal = ParagraphStyle("legal", parent=small, fontSize=7.5, leading=9.5,
                               textColor=colors.HexColor("#666666"))
        story.append(Spacer(1, 4 * mm))
        story.extend(Paragraph(_e(line), legal) for line in brand.legal_lines)
    if bill is not None:
        story.append(PaymentPart(payment_slip.drawing(bill), doc.bottomMargin))

    def decorate(canvas, _doc) -> None:
        canvas.saveState()
        canvas.setFont("Helvetica", 7.5)
        canvas.setFillColor(colors.HexColor("#666666"))
        canvas.drawString(18 * mm, 10 * mm,
                          f"{brand.name} · {info['name']} · {invoice.number or _('draft')}")
        canvas.drawRightString(A4[0] - 18 * mm, 10 * mm,
                               _("Page %(n)s") % {"n": canvas.getPageNumber()})
        if not final:
            canvas.setFont("Helvetica-Bold", 60)
            canvas.setFillColor(colors.Color(0.85, 0.85, 0.85, alpha=0.5))
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, 0, _("DRAFT"))
        canvas.restoreState()

    doc.build(story, onFirstPage=decorate, onLaterPages=decorate)
    return buffer.getvalue()


def payment_part_of(invoice: Invoice) -> QRBill | None:
    """The invoice's QR-bill, or None (none due, or the settings make none: logged, and the
    system check billing.E001 says so at start-up)."""
    try:
        return payment_slip.payment_part(invoice)
    except ValueError:
        logger.exception("billing.pdf.payment_part_failed", extra={"invoice": invoice.pk})
        return None


def invoice_filename(invoice: Invoice, extension: str) -> str:
    number = invoice.number or f"draft-{invoice.period_start:%Y-%m}"
    return f"{invoice.tenant.slug}-{number}.{extension}"
