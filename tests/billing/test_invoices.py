"""Invoices: finalization, gapless numbers, immutability, credit notes, the beat task."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import DatabaseError, connection, transaction

from billing import actions, invoicing
from billing.models import (
    ImmutableRecord,
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    VatRate,
)
from billing.periods import Period
from portal.audit import Actor
from portal.models import AuditEntry
from tests.billing.conftest import T0, add_price, make_rig
from tests.factories import TenantFactory, UserFactory

MARCH = Period(date(2026, 3, 1))
AFTER_MARCH = datetime(2026, 4, 5, tzinfo=UTC)
SYSTEM = Actor.system()


def _usage(tenant, name: str = "web", nodes: int = 2, hours: int = 10):
    rig = make_rig(tenant, name)
    rig.observe(T0, md0=nodes)
    rig.observe(T0 + timedelta(hours=hours), md0=0)
    return rig


def _final(tenant, now: datetime = AFTER_MARCH) -> Invoice:
    return actions.do_finalize_period(SYSTEM, tenant.pk, MARCH, now=now)


@pytest.fixture
def staff():
    return Actor(user=UserFactory(is_staff=True), via=AuditEntry.Via.ADMIN)


def test_finalizing_numbers_and_freezes_the_invoice(tenant, price_book, owner,
                                                    django_capture_on_commit_callbacks):
    _usage(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _final(tenant)
    # 2 nodes × 10 h × 0.36 = 7.20; VAT 0.5832 → 0.58; total 7.78
    assert invoice.number == "2026-000001"
    assert (invoice.subtotal, invoice.vat_amount, invoice.total) == (
        Decimal("7.20"), Decimal("0.58"), Decimal("7.78"))
    assert list(invoice.lines.values_list("amount", flat=True)) == [Decimal("7.20")]
    assert AuditEntry.objects.filter(verb="invoice.finalize", tenant=tenant).count() == 1
    assert len(mail.outbox) == 1 and mail.outbox[0].to == [owner.email]
    assert mail.outbox[0].attachments[0][2] == "application/pdf"
    assert InvoiceDelivery.objects.filter(invoice=invoice).count() == 1


def test_finalizing_twice_changes_nothing(tenant, price_book):
    _usage(tenant)
    first = _final(tenant)
    again = actions.do_finalize_invoice(SYSTEM, first.pk, now=AFTER_MARCH + timedelta(days=1))
    assert (again.number, again.issued_at) == (first.number, first.issued_at)
    assert Invoice.objects.count() == 1


def test_a_running_month_cannot_be_finalized(tenant, price_book):
    _usage(tenant)
    draft = invoicing.ensure_draft(tenant.pk, MARCH)
    with pytest.raises(ValidationError):
        actions.do_finalize_invoice(SYSTEM, draft.pk, now=datetime(2026, 3, 31, tzinfo=UTC))
    draft.refresh_from_db()
    assert draft.is_draft and draft.number is None


def test_usage_after_finalization_does_not_change_the_invoice(tenant, price_book):
    rig = _usage(tenant)
    invoice = _final(tenant)
    rig.observe(datetime(2026, 4, 6, tzinfo=UTC), md0=5)
    invoice.refresh_from_db()
    assert invoice.total == Decimal("7.78")
    assert invoicing.stored_draft(invoice).subtotal == Decimal("7.20")


def test_final_invoices_refuse_every_orm_write(tenant, price_book):
    _usage(tenant)
    invoice = _final(tenant)
    line = invoice.lines.get()
    invoice.total = Decimal(0)
    with pytest.raises(ImmutableRecord):
        invoice.save()
    with pytest.raises(ImmutableRecord):
        invoice.delete()
    with pytest.raises(ImmutableRecord):
        Invoice.objects.filter(pk=invoice.pk).update(total=0)
    with pytest.raises(ImmutableRecord):
        Invoice.objects.filter(pk=invoice.pk).delete()
    line.amount = Decimal(0)
    with pytest.raises(ImmutableRecord):
        line.save()
    with pytest.raises(ImmutableRecord):
        line.delete()
    with pytest.raises(ImmutableRecord):
        InvoiceLine.objects.filter(invoice=invoice).update(amount=0)
    with pytest.raises(ImmutableRecord):
        InvoiceLine.objects.bulk_create([InvoiceLine(invoice=invoice, sku="x", amount=1,
                                                     unit_seconds=1)])
    stale = Invoice.objects.get(pk=invoice.pk)
    stale.status = Invoice.Status.DRAFT  # a stale copy cannot reopen it either
    with pytest.raises(ImmutableRecord):
        stale.save()
    invoice.refresh_from_db()
    assert invoice.total == Decimal("7.78") and invoice.lines.get().amount == Decimal("7.20")


@pytest.mark.parametrize("sql", [
    "UPDATE billing_invoice SET total = 0 WHERE id = %s",
    "UPDATE billing_invoice SET status = 'draft' WHERE id = %s",
    "DELETE FROM billing_invoice WHERE id = %s",
    "UPDATE billing_invoiceline SET amount = 0 WHERE invoice_id = %s",
    "DELETE FROM billing_invoiceline WHERE invoice_id = %s",
    "INSERT INTO billing_invoiceline (invoice_id, position, cluster_name, sku, description, "
    "unit, unit_seconds, amount) VALUES (%s, 9, '', 'x', '', '', 1, 1)",
])
def test_final_invoices_refuse_raw_sql(tenant, price_book, sql):
    _usage(tenant)
    invoice = _final(tenant)
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [invoice.pk])
    invoice.refresh_from_db()
    assert invoice.total == Decimal("7.78")


def test_a_draft_has_no_final_amounts_yet(tenant, price_book):
    _usage(tenant)
    draft = invoicing.ensure_draft(tenant.pk, MARCH)
    with pytest.raises(ValueError, match="draft"):
        _ = draft.amounts
    assert _final(tenant).amounts == (Decimal("7.20"), Decimal("0.081"), Decimal("0.58"),
                                      Decimal("7.78"))


def test_drafts_can_still_change(tenant, price_book):
    draft = invoicing.ensure_draft(tenant.pk, MARCH)
    Invoice.objects.filter(pk=draft.pk).update(tenant_name="renamed")
    draft.delete()
    assert not Invoice.objects.exists()


def test_voiding_issues_a_credit_note_and_never_edits_the_invoice(tenant, price_book, staff):
    _usage(tenant)
    invoice = _final(tenant)
    note = actions.do_void_invoice(staff, invoice.pk, reason="wrong price",
                                   now=AFTER_MARCH + timedelta(days=1))
    assert note.number == "CN-2026-000001" and note.credits_id == invoice.pk
    assert (note.subtotal, note.vat_amount, note.total) == (
        Decimal("-7.20"), Decimal("-0.58"), Decimal("-7.78"))
    assert list(note.lines.values_list("amount", "unit_seconds")) == [
        (Decimal("-7.20"), Decimal(-72000))]
    invoice.refresh_from_db()
    assert invoice.total == Decimal("7.78") and invoicing.is_void(invoice)
    assert actions.do_void_invoice(staff, invoice.pk, reason="again").pk == note.pk
    with pytest.raises(ValidationError):
        actions.do_void_invoice(staff, note.pk, reason="a credit note is final")
    assert AuditEntry.objects.filter(verb="invoice.void").count() == 1


def test_voiding_with_a_reissue_numbers_the_new_invoice_in_sequence(tenant, price_book, staff):
    _usage(tenant)
    invoice = _final(tenant)
    note = actions.do_void_invoice(staff, invoice.pk, reason="re-rated", reissue=True,
                                   now=AFTER_MARCH + timedelta(days=1))
    reissued = Invoice.objects.get(kind=Invoice.Kind.INVOICE, revision=1)
    assert (reissued.number, reissued.total, note.number) == (
        "2026-000002", Decimal("7.78"), "CN-2026-000001")


def test_voiding_needs_a_reason_and_staff(tenant, price_book, owner):
    _usage(tenant)
    invoice = _final(tenant)
    with pytest.raises(ValidationError):
        actions.do_void_invoice(SYSTEM, invoice.pk, reason=" ")
    with pytest.raises(PermissionDenied):
        actions.do_void_invoice(Actor(user=owner), invoice.pk, reason="not staff")
    with pytest.raises(PermissionDenied):
        actions.do_finalize_invoice(Actor(user=owner), invoice.pk)


def test_a_void_reason_with_a_bidi_override_is_refused(tenant, price_book, staff):
    # The reason is printed on the tenant's credit note.
    _usage(tenant)
    invoice = _final(tenant)
    with pytest.raises(ValidationError) as error:
        actions.do_void_invoice(staff, invoice.pk, reason="wrong \u202eprice")
    assert "U+202E" in error.value.message_dict["reason"][0]
    assert not Invoice.objects.filter(kind=Invoice.Kind.CREDIT_NOTE).exists()
    assert not AuditEntry.objects.filter(verb="invoice.void").exists()


def test_resend_emails_the_billing_contacts_again(tenant, price_book, owner, billing_user, member,
                                                  staff, django_capture_on_commit_callbacks):
    _usage(tenant)
    invoice = _final(tenant)
    with django_capture_on_commit_callbacks(execute=True):
        recipients = actions.do_resend_invoice(staff, invoice.pk)
    assert recipients == sorted([owner.email, billing_user.email])
    assert len(mail.outbox) == 1 and sorted(mail.outbox[0].to) == recipients
    assert InvoiceDelivery.objects.filter(invoice=invoice).count() == 1
    draft = invoicing.ensure_draft(TenantFactory().pk, MARCH)
    with pytest.raises(ValidationError):
        actions.do_resend_invoice(staff, draft.pk)


def test_beat_finalizes_after_the_grace_period_only(tenant, price_book, other_tenant):
    _usage(tenant)
    _usage(other_tenant, "api", nodes=1)
    TenantFactory()  # no usage: no invoice
    early = actions.finalize_due_invoices(now=datetime(2026, 4, 2, 23, tzinfo=UTC))
    assert early["finalized"] == 0 and not Invoice.objects.exists()
    due = actions.finalize_due_invoices(now=datetime(2026, 4, 3, 0, 5, tzinfo=UTC))
    assert due == {"finalized": 2, "failed": 0}
    assert sorted(Invoice.objects.values_list("number", flat=True)) == ["2026-000001",
                                                                         "2026-000002"]
    again = actions.finalize_due_invoices(now=datetime(2026, 4, 3, 1, tzinfo=UTC))
    assert again["finalized"] == 0 and Invoice.objects.count() == 2


def test_an_unpriced_sku_is_billed_zero_and_flagged(tenant, price_book):
    rig = make_rig(tenant, "odd", groups={"md0": {"instance_type": "x9.unpriced"}})
    rig.observe(T0, md0=1)
    rig.observe(T0 + timedelta(hours=2), md0=0)
    invoice = _final(tenant)
    line = invoice.lines.get()
    assert (line.unit_price, line.amount, line.unit_seconds) == (None, Decimal("0.00"),
                                                                  Decimal(7200))
    assert invoice.has_unpriced and invoice.total == Decimal("0.00")


def test_a_price_set_after_usage_began_prices_only_from_then_on(tenant, price_book):
    add_price("node.t1.late", "0.72", since=T0 + timedelta(hours=1))
    rig = make_rig(tenant, "late", groups={"md0": {"instance_type": "t1.late"}})
    rig.observe(T0, md0=1)
    rig.observe(T0 + timedelta(hours=3), md0=0)
    draft = invoicing.compute_invoice(tenant.pk, MARCH, as_of=AFTER_MARCH)
    # First hour without a price (0.00, flagged), then 2 h × 0.72 = 1.44
    assert [(li.unit_price, li.unit_seconds, li.amount) for li in draft.lines] == [
        (Decimal("0.720000"), Decimal(7200), Decimal("1.44")), (None, Decimal(3600), Decimal(0))]


# --------------------------------------------------------------------------- concurrency


@pytest.fixture
def swiss_vat(transactional_db):
    VatRate.objects.get_or_create(effective_from=date(2024, 1, 1),
                                  defaults={"rate": Decimal("0.0810")})


def _in_threads(count: int, work) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            results[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


@pytest.mark.django_db(transaction=True)
def test_concurrent_finalization_leaves_no_gap_in_numbers(swiss_vat, price_book):
    tenants = [TenantFactory() for _ in range(8)]
    drafts = []
    for i, tenant in enumerate(tenants):
        _usage(tenant, f"c{i}", nodes=1 + i)
        drafts.append(invoicing.ensure_draft(tenant.pk, MARCH))
    results = _in_threads(len(drafts), lambda i: actions.do_finalize_invoice(
        SYSTEM, drafts[i].pk, now=AFTER_MARCH).number)
    assert all(isinstance(r, str) for r in results), results
    assert sorted(results) == [f"2026-{n:06d}" for n in range(1, 9)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_finalization_of_one_invoice_takes_one_number(swiss_vat, price_book):
    tenant = TenantFactory()
    _usage(tenant)
    draft = invoicing.ensure_draft(tenant.pk, MARCH)
    results = _in_threads(4, lambda i: actions.do_finalize_invoice(
        SYSTEM, draft.pk, now=AFTER_MARCH).number)
    assert results == ["2026-000001"] * 4
    assert Invoice.objects.get().lines.count() == 1


def test_beat_tasks_are_registered_idempotent_and_bounded(tenant, price_book):
    from django.conf import settings

    from billing import tasks

    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    for task in (tasks.finalize_invoices, tasks.check_budgets, tasks.reconcile_ledger):
        assert task.name in scheduled
        assert task.acks_late and task.reject_on_worker_lost
        assert task.soft_time_limit < task.time_limit
    _usage(tenant)
    assert tasks.reconcile_ledger() == {"clusters": 0, "segments": 0}
    assert tasks.check_budgets() == 0
    assert tasks.finalize_invoices() == tasks.finalize_invoices()
