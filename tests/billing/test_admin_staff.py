"""The billing admin from the staff side: the price book (a change never rewrites the past),
VAT rates, invoices (finalize now, void with a credit note, resend), budgets and the ledger.

Each action is tried by staff with two-factor authentication (it works, and the audit log names
them), by staff without it and by a signed-in non-staff user (refused, nothing changes).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from billing import actions
from billing.models import Budget, Invoice, InvoiceDelivery, Price, Sku, VatRate
from billing.periods import Period
from portal.audit import Actor
from portal.models import AuditEntry
from tests.billing.conftest import NODE_SKU, T0, make_rig
from tests.factories import UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import visible_text
from tests.staffing import REFUSED, audit

MARCH = Period(date(2026, 3, 1))


@pytest.fixture
def staff(db):
    user = UserFactory(is_staff=True, is_superuser=True, email="billing-ops@example.org")
    give_totp(user)
    return user


@pytest.fixture
def swiss_vat(db):
    """The seeded rate, again: a transactional test earlier in the run flushes seeded rows."""
    VatRate.objects.get_or_create(effective_from=date(2024, 1, 1),
                                  defaults={"rate": Decimal("0.0810")})


@pytest.fixture
def march_draft(tenant, owner, price_book, swiss_vat) -> Invoice:
    """ACME used 2 nodes for 10 hours in March: a draft of 7.20 before VAT."""
    rig = make_rig(tenant, "web")
    rig.observe(T0, md0=2)
    rig.observe(T0 + timedelta(hours=10), md0=0)
    return actions.invoicing.ensure_draft(tenant.pk, MARCH)


@pytest.fixture
def march_invoice(march_draft) -> Invoice:
    return actions.do_finalize_invoice(Actor.system(), march_draft.pk)


def invoice_action(client, action: str, invoices, **extra):
    return client.post(reverse("admin:billing_invoice_changelist"), {
        "action": action, "_selected_action": [i.pk for i in invoices], **extra}, follow=True)


# --------------------------------------------------------------------------- the price book


def next_month_start() -> datetime:
    today = timezone.now().date()
    first = date(today.year + (today.month == 12), today.month % 12 + 1, 1)
    return datetime.combine(first, datetime.min.time(), tzinfo=UTC)


def price_form(sku: Sku, per_hour: str, start: datetime) -> dict:
    return {"sku": str(sku.pk), "per_hour": per_hour,
            "effective_from_0": start.strftime("%Y-%m-%d"),
            "effective_from_1": start.strftime("%H:%M:%S"), "note": "new hardware"}


def test_staff_change_a_price_from_next_month_without_touching_the_past(
        client_for, staff, price_book):
    sku = Sku.objects.get(code=NODE_SKU)
    in_force = sku.prices.get()
    start = next_month_start()

    response = client_for(staff).post(reverse("admin:billing_price_add"),
                                      price_form(sku, "0.42", start))

    assert response.status_code == 302, visible_text(response)[:2000]
    new = sku.prices.get(effective_from=start)
    assert new.per_hour == Decimal("0.42") and new.created_by == staff
    in_force.refresh_from_db()
    assert in_force.per_hour == Decimal("0.36")
    assert in_force.in_force and not new.in_force
    entry, = audit("price.add")
    assert (entry.actor_label, entry.via) == ("billing-ops@example.org", "admin")
    assert entry.changes["per_hour"] == [None, "0.42"]
    assert entry.changes["effective_from"] == [None, start.isoformat()]


def test_a_price_cannot_start_in_the_past(client_for, staff, price_book):
    sku = Sku.objects.get(code=NODE_SKU)

    response = client_for(staff).post(reverse("admin:billing_price_add"),
                                      price_form(sku, "0.01", timezone.now() - timedelta(days=1)))

    assert response.status_code == 200
    assert "A new price must start in the future; past prices never change." in \
        visible_text(response)
    assert sku.prices.count() == 1
    assert audit("price.add") == []


def test_a_price_in_force_can_be_neither_edited_nor_deleted(client_for, staff, price_book):
    price = Sku.objects.get(code=NODE_SKU).prices.get()
    client = client_for(staff)

    page = client.get(reverse("admin:billing_price_change", args=[price.pk]))
    client.post(reverse("admin:billing_price_change", args=[price.pk]), {
        "sku": str(price.sku_id), "per_hour": "0.01", "effective_from_0": "2020-01-01",
        "effective_from_1": "00:00:00"})
    deleted = client.post(reverse("admin:billing_price_delete", args=[price.pk]),
                          {"post": "yes"})

    assert page.status_code == 200 and 'name="per_hour"' not in page.content.decode()
    assert deleted.status_code == 403
    price.refresh_from_db()
    assert price.per_hour == Decimal("0.36")


@REFUSED
def test_prices_cannot_be_added(client_for, refused, price_book):
    sku = Sku.objects.get(code=NODE_SKU)

    response = client_for(refused).post(reverse("admin:billing_price_add"),
                                        price_form(sku, "0.01", next_month_start()),
                                        follow=True)

    assert response.status_code == 403
    assert sku.prices.count() == 1
    assert audit("price.add") == []


def test_staff_correct_a_future_price_and_the_log_keeps_both_values(client_for, staff,
                                                                    price_book):
    sku = Sku.objects.get(code=NODE_SKU)
    start = next_month_start()
    future = actions.do_add_price(Actor.system(), sku=sku, per_hour=Decimal("0.42"),
                                  effective_from=start)

    response = client_for(staff).post(reverse("admin:billing_price_change", args=[future.pk]),
                                      price_form(sku, "0.40", start))

    assert response.status_code == 302, visible_text(response)[:2000]
    future.refresh_from_db()
    assert future.per_hour == Decimal("0.40")
    entry, = audit("price.update")
    assert (entry.actor_label, entry.via, entry.ip) == ("billing-ops@example.org", "admin",
                                                        "127.0.0.1")
    assert entry.changes == {"per_hour": ["0.42", "0.40"], "note": ["", "new hardware"]}


def test_staff_withdraw_a_future_price_and_it_is_audited(client_for, staff, price_book):
    sku = Sku.objects.get(code=NODE_SKU)
    future = actions.do_add_price(Actor.system(), sku=sku, per_hour=Decimal("0.42"),
                                  effective_from=next_month_start())

    response = client_for(staff).post(reverse("admin:billing_price_delete", args=[future.pk]),
                                      {"post": "yes"})

    assert response.status_code == 302
    assert not Price.objects.filter(pk=future.pk).exists()
    entry, = audit("price.delete")
    assert entry.actor_label == "billing-ops@example.org"
    assert entry.changes["per_hour"] == ["0.42", None]
    assert entry.changes["sku"] == [str(sku), None]


@REFUSED
def test_future_prices_cannot_be_changed_or_withdrawn(client_for, refused, price_book):
    sku = Sku.objects.get(code=NODE_SKU)
    start = next_month_start()
    future = actions.do_add_price(Actor.system(), sku=sku, per_hour=Decimal("0.42"),
                                  effective_from=start)
    client = client_for(refused)

    client.post(reverse("admin:billing_price_change", args=[future.pk]),
                price_form(sku, "0.01", start))
    client.post(reverse("admin:billing_price_delete", args=[future.pk]), {"post": "yes"})

    future.refresh_from_db()
    assert future.per_hour == Decimal("0.42")
    assert audit("price.update") == audit("price.delete") == []


# --------------------------------------------------------------------------- SKUs


def sku_form(code: str = "node.x9.huge", description: str = "x9.huge node") -> dict:
    return {"code": code, "kind": "node", "unit": "node-hour", "description": description,
            "prices-TOTAL_FORMS": "0", "prices-INITIAL_FORMS": "0"}


def test_staff_add_and_describe_a_sku_and_both_are_audited(client_for, staff, price_book):
    client = client_for(staff)

    added = client.post(reverse("admin:billing_sku_add"), sku_form())
    sku = Sku.objects.get(code="node.x9.huge")
    changed = client.post(reverse("admin:billing_sku_change", args=[sku.pk]),
                          sku_form(description="x9.huge node (8 GPUs)"))

    assert added.status_code == changed.status_code == 302, visible_text(changed)[:2000]
    create, = audit("sku.create")
    update, = audit("sku.update")
    assert create.actor_label == update.actor_label == "billing-ops@example.org"
    assert create.changes["code"] == [None, "node.x9.huge"]
    assert update.changes == {"description": ["x9.huge node", "x9.huge node (8 GPUs)"]}


@REFUSED
def test_skus_cannot_be_added_or_changed(client_for, refused, price_book):
    sku = Sku.objects.get(code=NODE_SKU)
    client = client_for(refused)

    client.post(reverse("admin:billing_sku_add"), sku_form())
    client.post(reverse("admin:billing_sku_change", args=[sku.pk]),
                sku_form(code=NODE_SKU, description="changed"))

    assert not Sku.objects.filter(code="node.x9.huge").exists()
    assert Sku.objects.get(pk=sku.pk).description == NODE_SKU
    assert not AuditEntry.objects.filter(verb__startswith="sku.").exists()


# --------------------------------------------------------------------------- VAT rates


def test_staff_add_a_vat_rate_from_a_future_day_and_it_is_audited(client_for, staff, swiss_vat):
    start = timezone.now().date() + timedelta(days=30)

    response = client_for(staff).post(reverse("admin:billing_vatrate_add"), {
        "effective_from": start.isoformat(), "rate": "0.0850", "note": "Vote of 2026"})

    assert response.status_code == 302, visible_text(response)[:2000]
    assert VatRate.objects.get(effective_from=start).rate == Decimal("0.0850")
    entry, = audit("vatrate.create")
    assert (entry.actor_label, entry.via) == ("billing-ops@example.org", "admin")
    assert entry.changes["rate"] == [None, "0.085"]
    assert entry.changes["effective_from"] == [None, start.isoformat()]


@pytest.mark.parametrize("days", [0, -1], ids=["today", "yesterday"])
def test_a_vat_rate_cannot_start_today_or_in_the_past(client_for, staff, swiss_vat, days):
    start = timezone.now().date() + timedelta(days=days)

    response = client_for(staff).post(reverse("admin:billing_vatrate_add"), {
        "effective_from": start.isoformat(), "rate": "0.0900", "note": ""})

    assert response.status_code == 200
    assert "A new VAT rate must start after today; rates in force never change." in \
        visible_text(response)
    assert not VatRate.objects.filter(effective_from=start).exists()
    assert audit("vatrate.create") == []


def test_staff_correct_and_withdraw_a_future_vat_rate_and_both_are_audited(client_for, staff,
                                                                          swiss_vat):
    start = timezone.now().date() + timedelta(days=30)
    future = VatRate.objects.create(effective_from=start, rate=Decimal("0.0850"))
    client = client_for(staff)

    client.post(reverse("admin:billing_vatrate_change", args=[future.pk]), {
        "effective_from": start.isoformat(), "rate": "0.0860", "note": ""})
    client.post(reverse("admin:billing_vatrate_delete", args=[future.pk]), {"post": "yes"})

    assert not VatRate.objects.filter(pk=future.pk).exists()
    update, = audit("vatrate.update")
    delete, = audit("vatrate.delete")
    assert update.changes == {"rate": ["0.085", "0.086"]}
    assert delete.changes["rate"] == ["0.086", None]
    assert update.actor_label == delete.actor_label == "billing-ops@example.org"


def test_a_vat_rate_in_force_can_be_neither_edited_nor_deleted(client_for, staff, swiss_vat):
    rate = VatRate.objects.get(effective_from=date(2024, 1, 1))
    client = client_for(staff)

    client.post(reverse("admin:billing_vatrate_change", args=[rate.pk]), {
        "effective_from": "2024-01-01", "rate": "0.0100", "note": ""})
    deleted = client.post(reverse("admin:billing_vatrate_delete", args=[rate.pk]),
                          {"post": "yes"})

    assert deleted.status_code == 403
    assert VatRate.objects.get(pk=rate.pk).rate == Decimal("0.0810")
    assert not AuditEntry.objects.filter(verb__startswith="vatrate.").exists()


@REFUSED
def test_vat_rates_cannot_be_added_or_withdrawn(client_for, refused, swiss_vat):
    start = timezone.now().date() + timedelta(days=30)
    future = VatRate.objects.create(effective_from=start + timedelta(days=1),
                                    rate=Decimal("0.0850"))
    client = client_for(refused)

    client.post(reverse("admin:billing_vatrate_add"), {
        "effective_from": start.isoformat(), "rate": "0.5000", "note": ""})
    client.post(reverse("admin:billing_vatrate_delete", args=[future.pk]), {"post": "yes"})

    assert not VatRate.objects.filter(effective_from=start).exists()
    assert VatRate.objects.filter(pk=future.pk).exists()
    assert not AuditEntry.objects.filter(verb__startswith="vatrate.").exists()


# --------------------------------------------------------------------------- invoices


def test_staff_finalize_a_draft_now_and_it_is_sent(client_for, staff, owner, march_draft,
                                                   django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = invoice_action(client_for(staff), "finalize_now", [march_draft])

    assert "Finalized: 1" in visible_text(response)
    march_draft.refresh_from_db()
    assert march_draft.status == Invoice.Status.FINALIZED and march_draft.number
    assert march_draft.total == Decimal("7.78")
    assert [m.to for m in mail.outbox] == [[owner.email]]
    entry, = audit("invoice.finalize")
    assert (entry.actor_label, entry.via, entry.tenant_slug) == (
        "billing-ops@example.org", "admin", "acme")


def test_a_running_month_is_not_finalized(client_for, staff, tenant, price_book):
    draft = actions.invoicing.ensure_draft(tenant.pk, Period.current())

    response = invoice_action(client_for(staff), "finalize_now", [draft])

    assert "A month can be invoiced once it is over." in visible_text(response)
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT
    assert audit("invoice.finalize") == []


def test_staff_void_an_invoice_with_a_credit_note(client_for, staff, march_invoice):
    response = invoice_action(client_for(staff), "void_with_credit_note", [march_invoice],
                              reason="Wrong instance price in March")

    assert "Voided: 1" in visible_text(response)
    note = Invoice.objects.get(kind=Invoice.Kind.CREDIT_NOTE)
    assert note.credits_id == march_invoice.pk and note.total == Decimal("-7.78")
    assert note.reason == "Wrong instance price in March"
    march_invoice.refresh_from_db()
    assert march_invoice.total == Decimal("7.78")  # never edited
    entry, = audit("invoice.void")
    assert (entry.actor_label, entry.via) == ("billing-ops@example.org", "admin")
    assert entry.changes["reason"] == [None, "Wrong instance price in March"]


def test_voiding_needs_a_reason(client_for, staff, march_invoice):
    response = invoice_action(client_for(staff), "void_with_credit_note", [march_invoice],
                              reason="")

    assert "Say why the invoice is voided." in visible_text(response)
    assert not Invoice.objects.filter(kind=Invoice.Kind.CREDIT_NOTE).exists()


def test_staff_resend_an_invoice(client_for, staff, owner, march_invoice,
                                 django_capture_on_commit_callbacks):
    mail.outbox.clear()
    deliveries = InvoiceDelivery.objects.filter(invoice=march_invoice).count()

    with django_capture_on_commit_callbacks(execute=True):
        response = invoice_action(client_for(staff), "resend", [march_invoice])

    assert "Sent: 1" in visible_text(response)
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert InvoiceDelivery.objects.filter(invoice=march_invoice).count() == deliveries + 1
    delivery = InvoiceDelivery.objects.filter(invoice=march_invoice).latest("sent_at")
    assert delivery.actor_label == "billing-ops@example.org"
    assert audit("invoice.resend")[0].actor_label == "billing-ops@example.org"


def test_a_draft_is_not_resent(client_for, staff, march_draft):
    response = invoice_action(client_for(staff), "resend", [march_draft])

    assert "A draft cannot be sent; finalize it first." in visible_text(response)
    assert audit("invoice.resend") == []


@REFUSED
def test_invoice_actions_are_refused(client_for, refused, march_draft,
                                     django_capture_on_commit_callbacks):
    final = actions.do_finalize_invoice(Actor.system(), march_draft.pk)
    other = actions.invoicing.ensure_draft(final.tenant_id, Period(date(2026, 4, 1)))
    mail.outbox.clear()
    client = client_for(refused)

    with django_capture_on_commit_callbacks(execute=True):
        for action, invoices, extra in (("finalize_now", [other], {}),
                                        ("void_with_credit_note", [final], {"reason": "x"}),
                                        ("resend", [final], {})):
            assert invoice_action(client, action, invoices, **extra).status_code == 403

    other.refresh_from_db()
    assert other.status == Invoice.Status.DRAFT
    assert not Invoice.objects.filter(kind=Invoice.Kind.CREDIT_NOTE).exists()
    assert mail.outbox == []
    assert not AuditEntry.objects.filter(verb__startswith="invoice.").exclude(
        actor_label="system").exists()


def test_invoices_cannot_be_edited_or_deleted_in_the_admin(client_for, staff, march_invoice):
    client = client_for(staff)

    assert client.get(reverse("admin:billing_invoice_add")).status_code == 403
    assert client.post(reverse("admin:billing_invoice_delete", args=[march_invoice.pk]),
                       {"post": "yes"}).status_code == 403
    assert Invoice.objects.filter(pk=march_invoice.pk).exists()


# --------------------------------------------------------------------------- budgets


def budget_form(tenant, amount: str, thresholds: str = "[50, 80, 100]", *,
                shown: str = "[]") -> dict:
    """``shown``: the thresholds the page was rendered with (sent back as a hidden input)."""
    return {"tenant": str(tenant.pk), "amount": amount, "thresholds": thresholds,
            "initial-thresholds": shown}


def test_staff_set_change_and_remove_a_budget_in_the_tenants_log(client_for, staff, tenant):
    client = client_for(staff)

    added = client.post(reverse("admin:billing_budget_add"),
                        budget_form(tenant, "500", "[100, 80, 80, 50]"))
    budget = Budget.objects.get(tenant=tenant)
    changed = client.post(reverse("admin:billing_budget_change", args=[budget.pk]),
                          budget_form(tenant, "750.00", shown="[50, 80, 100]"))
    removed = client.post(reverse("admin:billing_budget_delete", args=[budget.pk]),
                          {"post": "yes"})

    assert added.status_code == changed.status_code == removed.status_code == 302
    assert not Budget.objects.filter(tenant=tenant).exists()
    first, second = audit("budget.set")
    gone, = audit("budget.remove")
    assert {e.actor_label for e in (first, second, gone)} == {"billing-ops@example.org"}
    assert {e.tenant for e in (first, second, gone)} == {tenant}  # the owners see them
    assert {e.ip for e in (first, second, gone)} == {"127.0.0.1"}
    assert first.changes["amount"] == [None, "500.00"]
    assert first.changes["thresholds"] == [None, [50, 80, 100]]  # sorted, without repeats
    assert second.changes == {"amount": ["500.00", "750.00"]}
    assert gone.changes["amount"] == ["750.00", None]


@pytest.mark.parametrize("thresholds", ["[]", "[0, 50]", "[50.5]", '["80"]', "[1001]"])
def test_budget_thresholds_are_whole_percentages(client_for, staff, tenant, thresholds):
    response = client_for(staff).post(reverse("admin:billing_budget_add"),
                                      budget_form(tenant, "500", thresholds))

    assert response.status_code == 200
    assert not Budget.objects.exists()
    assert audit("budget.set") == []


@REFUSED
def test_budgets_cannot_be_set_changed_or_removed(client_for, refused, tenant, other_tenant):
    budget = Budget.objects.create(tenant=other_tenant, amount=Decimal("100"), thresholds=[80])
    client = client_for(refused)

    client.post(reverse("admin:billing_budget_add"), budget_form(tenant, "1"))
    client.post(reverse("admin:billing_budget_change", args=[budget.pk]),
                budget_form(other_tenant, "1"))
    client.post(reverse("admin:billing_budget_delete", args=[budget.pk]), {"post": "yes"})

    assert not Budget.objects.filter(tenant=tenant).exists()
    assert Budget.objects.get(pk=budget.pk).amount == Decimal("100.00")
    assert not AuditEntry.objects.exists()


# --------------------------------------------------------------------------- the ledger


@REFUSED
def test_the_billing_pages_of_the_admin_are_refused(client_for, refused, march_invoice):
    client = client_for(refused)
    for name in ("sku", "price", "invoice", "budget", "usagesegment", "vatrate"):
        response = client.get(reverse(f"admin:billing_{name}_changelist"), follow=True)
        assert response.status_code == 403, name


def test_staff_read_the_usage_ledger(client_for, staff, march_invoice):
    page = client_for(staff).get(reverse("admin:billing_usagesegment_changelist"))

    assert page.status_code == 200
    assert NODE_SKU in visible_text(page)
