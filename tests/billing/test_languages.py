"""Invoices and their PDFs in the tenant's invoice language; invoice and budget emails in each
recipient's language; amounts as the language writes them (``1'440.00`` in German)."""

from __future__ import annotations

import io
from datetime import timedelta
from decimal import Decimal

from django.core import mail
from django.urls import reverse
from django.utils import translation
from pypdf import PdfReader

from billing import budgets, exports, invoicing
from billing.models import Budget
from portal import languages
from portal.models import Tenant
from portal.permissions import Role
from tests.billing.conftest import T0, make_rig
from tests.billing.test_invoices import _final, _usage
from tests.factories import MembershipFactory


def _pdf_text(pdf: bytes) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)


def _german(tenant) -> None:
    Tenant.objects.filter(pk=tenant.pk).update(invoice_language="de")
    tenant.refresh_from_db()


def test_the_invoice_pdf_is_in_the_tenants_invoice_language(
        tenant, price_book, owner, client_for):
    _german(tenant)
    _usage(tenant, nodes=100, hours=40)  # 100 nodes × 40 h × 0.36 = 1'440.00
    invoice = _final(tenant)

    client = client_for(owner)
    response = client.get(reverse("billing:invoice_pdf", kwargs={
        "tenant_slug": tenant.slug, "invoice_id": invoice.pk}), HTTP_ACCEPT_LANGUAGE="en")

    assert response.status_code == 200
    text = _pdf_text(response.content)
    assert f"Rechnung {invoice.number}" in text
    for german in ("Zeitraum", "Zahlbar bis", "Zwischensumme", "MWST 8.1 %", "Seite 1"):
        assert german in text, german
    assert "1'440.00" in text  # Swiss grouping in German
    assert "Subtotal" not in text and "Invoice" not in text
    # The person who asked still reads English pages.
    page = client.get(reverse("billing:invoices", kwargs={"tenant_slug": tenant.slug}),
                      HTTP_ACCEPT_LANGUAGE="en")
    assert '<html lang="en">' in page.content.decode()


def test_the_pdf_follows_the_tenant_not_the_active_language(tenant, price_book):
    _usage(tenant)
    invoice = _final(tenant)
    draft = invoicing.stored_draft(invoice)

    with translation.override("de"):
        english = _pdf_text(exports.invoice_pdf(invoice, draft))
    Tenant.objects.filter(pk=tenant.pk).update(invoice_language="it")
    invoice.tenant.refresh_from_db()
    with translation.override("de"):
        italian = _pdf_text(exports.invoice_pdf(invoice, draft))

    assert f"Invoice {invoice.number}" in english and "Subtotal" in english
    assert f"Fattura {invoice.number}" in italian and "Subtotale" in italian


def test_the_invoice_email_speaks_each_recipients_language(
        tenant, price_book, owner, django_capture_on_commit_callbacks):
    billing_de = MembershipFactory(tenant=tenant, role=Role.BILLING).user
    languages.set_user_language(billing_de, "de")
    billing_fr = MembershipFactory(tenant=tenant, role=Role.BILLING).user
    languages.set_user_language(billing_fr, "fr")
    _usage(tenant, nodes=100, hours=40)

    with django_capture_on_commit_callbacks(execute=True):
        invoice = _final(tenant)

    by_recipient = {tuple(m.to): m for m in mail.outbox}
    assert set(by_recipient) == {(owner.email,), (billing_de.email,), (billing_fr.email,)}
    german = by_recipient[(billing_de.email,)]
    assert german.subject == f"Rechnung {invoice.number} für ACME"
    assert "Zwischensumme CHF 1'440.00, MWST CHF 116.64, Total CHF 1'556.64." in german.body
    french = by_recipient[(billing_fr.email,)]
    assert french.subject == f"Facture {invoice.number} pour ACME"
    assert "Sous-total CHF 1\u202f440.00" in french.body
    english = by_recipient[(owner.email,)]
    assert english.subject == f"Invoice {invoice.number} for ACME"
    assert "Subtotal CHF 1'440.00, VAT CHF 116.64, total CHF 1'556.64." in english.body
    # Every copy carries the same PDF, in the tenant's invoice language (English here).
    pdfs = {m.attachments[0][1] for m in mail.outbox}
    assert len(pdfs) == 1
    assert f"Invoice {invoice.number}" in _pdf_text(pdfs.pop())


def test_a_budget_alert_reaches_a_german_owner_in_german(
        tenant, price_book, owner, billing_user, django_capture_on_commit_callbacks):
    languages.set_user_language(owner, "de")
    Budget.objects.create(tenant=tenant, amount=Decimal("2000.00"), thresholds=[50])
    rig = make_rig(tenant, "web")
    rig.observe(T0, md0=100)  # CHF 36 per hour

    with django_capture_on_commit_callbacks(execute=True):
        [alert] = budgets.check_budgets(now=T0 + timedelta(hours=30))  # 1'080.00 = 54 %

    assert alert.threshold == 50
    by_recipient = {tuple(m.to): m for m in mail.outbox}
    german = by_recipient[(owner.email,)]
    assert german.subject == "ACME: 50 % des Monatsbudgets erreicht"
    assert "Bisher ausgegeben: CHF 1'080.00 von CHF 2'000.00 (exkl. MWST)." in german.body
    english = by_recipient[(billing_user.email,)]
    assert english.subject == "ACME: 50 % of the monthly budget reached"
    assert "Spent so far: CHF 1'080.00 of CHF 2'000.00 (before VAT)." in english.body
