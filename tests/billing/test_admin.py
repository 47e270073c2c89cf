"""The staff admin for billing: invoice actions, the price book (add-only for the future)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing import invoicing
from billing.models import Invoice, Price, Sku
from billing.periods import Period
from portal.models import AuditEntry
from tests.billing.conftest import make_rig
from tests.factories import UserFactory
from tests.portal.conftest import give_totp


@pytest.fixture
def staff(db):
    user = UserFactory(is_staff=True, is_superuser=True, email="ops@example.org")
    give_totp(user)
    return user


@pytest.fixture
def last_month_draft(tenant, owner, price_book):
    period = Period.current().previous
    rig = make_rig(tenant, "old")
    rig.observe(period.start_at, md0=1)
    rig.observe(period.start_at + timedelta(hours=10), md0=0)
    return invoicing.ensure_draft(tenant.pk, period)


def act(client, action: str, invoice: Invoice, **extra):
    return client.post(reverse("admin:billing_invoice_changelist"),
                       {"action": action, "_selected_action": [invoice.pk], **extra},
                       follow=True)


def test_staff_finalize_void_and_resend_from_the_admin(staff, last_month_draft, client_for,
                                                       django_capture_on_commit_callbacks):
    client = client_for(staff)
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "finalize_now", last_month_draft)
    invoice = Invoice.objects.get(pk=last_month_draft.pk)
    assert invoice.number and invoice.total == Decimal("3.89")  # 3.60 + 0.29 VAT
    with django_capture_on_commit_callbacks(execute=True):
        act(client, "void_with_credit_note", invoice, reason="duplicate")
        act(client, "resend", invoice)
    note = Invoice.objects.get(kind=Invoice.Kind.CREDIT_NOTE)
    assert (note.credits_id, note.reason, note.total) == (invoice.pk, "duplicate",
                                                          Decimal("-3.89"))
    verbs = set(AuditEntry.objects.filter(actor_label="ops@example.org", via="admin")
                .values_list("verb", flat=True))
    assert verbs == {"invoice.finalize", "invoice.void", "invoice.resend"}
    assert len(mail.outbox) == 3  # the invoice, the credit note, the resend


def test_invoice_pages_are_read_only(staff, last_month_draft, client_for):
    client = client_for(staff)
    change = client.get(reverse("admin:billing_invoice_change", args=[last_month_draft.pk]))
    assert change.status_code == 200 and b'name="_save"' not in change.content
    assert client.get(reverse("admin:billing_invoice_add")).status_code == 403
    assert client.post(reverse("admin:billing_invoice_delete",
                               args=[last_month_draft.pk])).status_code == 403


def test_prices_in_force_are_read_only_and_new_ones_start_in_the_future(staff, client_for,
                                                                         price_book):
    client = client_for(staff)
    sku = Sku.objects.get(code="node.t1.test")
    past = Price.objects.get(sku=sku)
    assert client.post(reverse("admin:billing_price_change", args=[past.pk]),
                       {"per_hour": "9"}).status_code == 403
    assert client.post(reverse("admin:billing_price_delete", args=[past.pk])).status_code == 403
    add = reverse("admin:billing_price_add")
    yesterday = timezone.now() - timedelta(days=1)
    refused = client.post(add, {"sku": sku.pk, "per_hour": "0.50", "note": "",
                                "effective_from_0": f"{yesterday:%Y-%m-%d}",
                                "effective_from_1": "00:00:00"})
    assert refused.status_code == 200 and Price.objects.filter(sku=sku).count() == 1
    tomorrow = timezone.now() + timedelta(days=1)
    client.post(add, {"sku": sku.pk, "per_hour": "0.50", "note": "",
                      "effective_from_0": f"{tomorrow:%Y-%m-%d}",
                      "effective_from_1": "00:00:00"})
    assert Price.objects.filter(sku=sku).count() == 2
    assert AuditEntry.objects.filter(verb="price.add").count() == 1


def test_non_staff_cannot_reach_the_billing_admin(owner, client_for, last_month_draft):
    response = client_for(owner).get(reverse("admin:billing_invoice_changelist"))
    assert response.status_code == 302
