"""Every write to billing that a person, the admin, a command or a task asks for.

Each action takes the actor explicitly, checks rights, writes in one transaction together with
its audit entry, and sends email only after the commit. Invoice actions are for platform staff
(the admin panel) and the system (beat); budget actions for the tenant's owners, admins and
billing members. Usage itself is written only by ``billing.metering``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.mail import EmailMessage
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import invoicing
from billing.budgets import billing_contacts
from billing.events import BudgetChanged, InvoiceFinalized
from billing.invoicing import InvoiceError
from billing.models import (
    DEFAULT_THRESHOLDS,
    Budget,
    Invoice,
    InvoiceDelivery,
    Price,
    Sku,
    UsageSegment,
    validate_thresholds,
)
from billing.periods import Period
from cozystack import limits
from portal import events, languages, notifications
from portal.audit import Actor, diff, record
from portal.permissions import Perm
from portal.tenancy import TenantContext
from portal.validators import check_visible_text

logger = logging.getLogger("billing.actions")


def _check_writable(actor: Actor) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))


def _check_staff(actor: Actor) -> None:
    """Invoice and price-book actions: platform staff, or the system itself (beat, commands)."""
    _check_writable(actor)
    if actor.user is None:
        return
    if not (actor.user.is_active and actor.user.is_staff):
        raise PermissionDenied(_("Only platform staff can do this."))


# --------------------------------------------------------------------------- budgets


def normalize_thresholds(values: list[int] | None) -> list[int]:
    """Sorted, without repeats, within ``limits`` (the defaults when none are given)."""
    values = sorted(set(values or DEFAULT_THRESHOLDS))
    try:
        validate_thresholds(values)
    except ValidationError as exc:
        raise ValidationError({"thresholds": exc.error_list}) from None
    return values


def do_set_budget(actor: Actor, ctx: TenantContext, *, amount: Decimal,
                  thresholds: list[int] | None = None) -> Budget:
    """Set the tenant's monthly budget (CHF, before VAT) and alert thresholds (default 50/80/100).

    Setting the same values again changes nothing but the audit trail. Alerts already sent this
    month stay sent; a lower budget can only add alerts for thresholds not yet crossed.
    """
    _check_writable(actor)
    ctx.require(Perm.BUDGETS_MANAGE)
    try:
        amount = Decimal(amount)
    except (TypeError, ValueError, ArithmeticError):
        amount = Decimal("NaN")
    if not amount.is_finite() or amount <= 0:
        raise ValidationError({"amount": _("The budget must be more than CHF 0.")})
    if amount > limits.BUDGET_CHF.hi:
        raise ValidationError({"amount": _("The budget may be at most CHF %(max)s.")
                               % {"max": limits.BUDGET_CHF.hi}})
    amount = amount.quantize(Decimal("0.01"))
    values = normalize_thresholds(thresholds)
    with transaction.atomic():
        budget = Budget.objects.select_for_update().filter(tenant=ctx.tenant).first()
        before = {"amount": str(budget.amount), "thresholds": budget.thresholds} if budget else {}
        if budget is None:
            budget = Budget(tenant=ctx.tenant)
        budget.amount = amount
        budget.thresholds = values
        budget.full_clean(exclude=["tenant"])
        budget.save()
        record(actor, "budget.set", budget, tenant=ctx.tenant,
               changes=diff(before, {"amount": str(amount), "thresholds": values}))
    events.publish(BudgetChanged(ctx.tenant.pk))
    return budget


def do_remove_budget(actor: Actor, ctx: TenantContext) -> None:
    """Remove the tenant's budget (no more alerts). Removing an absent budget does nothing."""
    _check_writable(actor)
    ctx.require(Perm.BUDGETS_MANAGE)
    with transaction.atomic():
        budget = Budget.objects.select_for_update().filter(tenant=ctx.tenant).first()
        if budget is None:
            return
        record(actor, "budget.remove", budget, tenant=ctx.tenant,
               changes={"amount": [str(budget.amount), None]})
        budget.delete()


# --------------------------------------------------------------------------- invoices


def _invoice_email(invoice: Invoice) -> tuple[str, str]:
    url = settings.SITE_URL.rstrip("/") + reverse(
        "billing:invoice_detail",
        kwargs={"tenant_slug": invoice.tenant.slug, "invoice_id": invoice.pk})
    context = {"invoice": invoice, "url": url, "period": Period(invoice.period_start),
               "preferences_url": notifications.preferences_url()}
    kind = _("Credit note") if invoice.is_credit_note else _("Invoice")
    subject = _("%(kind)s %(number)s for %(tenant)s") % {
        "kind": kind, "number": invoice.number, "tenant": invoice.tenant_name}
    return subject, render_to_string("billing/email/invoice.txt", context)


def send_invoice(invoice_id: int, *, actor_label: str = "system",
                 resend: bool = False) -> list[str]:
    """Email a final invoice (PDF attached) to the tenant's owners and billing members and
    record the delivery. Runs after commit; returns the recipients. The email is written in each
    recipient's language, the PDF in the tenant's invoice language. Those who turned the
    invoice email off are left out, except when staff send it again on purpose (``resend``)."""
    invoice = Invoice.objects.select_related("tenant", "credits").get(pk=invoice_id)
    if invoice.is_draft:
        return []
    recipients = billing_contacts(
        invoice.tenant_id, None if resend else notifications.EventType.INVOICE_FINALIZED)
    if not recipients:
        return []
    # The PDF library loads here, where it is used: every other process of the portal (the
    # watcher, the web processes) imports this module without needing it.
    from billing import exports  # noqa: PLC0415

    pdf = exports.invoice_pdf(invoice, invoicing.stored_draft(invoice))  # the tenant's language

    def send(group: list[str]) -> None:
        subject, body = _invoice_email(invoice)
        message = EmailMessage(subject=subject, body=body, to=group)
        message.attach(exports.invoice_filename(invoice, "pdf"), pdf, "application/pdf")
        message.send()

    languages.in_each_language(recipients, invoice.tenant, send)
    InvoiceDelivery.objects.create(invoice=invoice, recipients=", ".join(recipients),
                                   actor_label=actor_label[:254])
    return recipients


def _send_after_commit(invoice_id: int, actor: Actor, *, resend: bool = False) -> None:
    label = actor.label

    def send() -> None:
        try:
            send_invoice(invoice_id, actor_label=label, resend=resend)
        except Exception:  # noqa: BLE001 - a mail outage must not undo a finalization
            logger.exception("billing.invoice.send_failed", extra={"invoice_id": invoice_id})

    transaction.on_commit(send)


def _refuse(exc: InvoiceError) -> ValidationError:
    messages = {
        "a month can be invoiced once it is over": _("A month can be invoiced once it is over."),
        "a credit note cannot be voided": _("A credit note cannot be voided."),
        "a draft has nothing to void": _("A draft has nothing to void."),
        "only a voided invoice can be issued again": _("Only a voided invoice can be issued "
                                                       "again."),
        "this month was issued again already": _("This month was issued again already."),
    }
    return ValidationError(messages.get(str(exc), str(exc)))


def do_finalize_invoice(actor: Actor, invoice_id: int, *, now: datetime | None = None) -> Invoice:
    """Finalize a draft invoice: freeze its lines (rated to the end of its month), give it the
    next number of the gapless series, email it to the tenant's billing contacts.

    Safe to repeat: a final invoice is returned as it is (no new number, no second email).
    Refused for a month that is not over.
    """
    _check_staff(actor)
    with transaction.atomic():
        try:
            invoice, changed = invoicing.finalize(invoice_id, now=now)
        except InvoiceError as exc:
            raise _refuse(exc) from None
        if changed:
            record(actor, "invoice.finalize", invoice, tenant=invoice.tenant,
                   changes={"number": [None, invoice.number], "total": [None, str(invoice.total)]})
            events.publish(InvoiceFinalized(invoice))
            _send_after_commit(invoice.pk, actor)
    return invoice


def do_finalize_period(actor: Actor, tenant_id: int, period: Period, *,
                       now: datetime | None = None) -> Invoice:
    """Finalize the invoice of a tenant's month, creating its draft if needed. Safe to repeat."""
    _check_staff(actor)
    draft = invoicing.ensure_draft(tenant_id, period)
    if not draft.is_draft:
        return draft
    return do_finalize_invoice(actor, draft.pk, now=now)


def do_void_invoice(actor: Actor, invoice_id: int, *, reason: str, reissue: bool = False,
                    now: datetime | None = None) -> Invoice:
    """Void a final invoice by issuing a credit note for all of it (its own gapless series).

    The invoice itself is never edited. With ``reissue``, a new draft revision of the month is
    created and finalized from the ledger as it is now. Returns the credit note. Safe to
    repeat: an invoice already voided returns its existing credit note.
    """
    _check_staff(actor)
    if not (reason or "").strip():
        raise ValidationError({"reason": _("Say why the invoice is voided.")})
    check_visible_text(reason=reason)
    with transaction.atomic():
        try:
            note, created = invoicing.credit(invoice_id, reason=reason.strip(), now=now)
        except InvoiceError as exc:
            raise _refuse(exc) from None
        if created:
            record(actor, "invoice.void", note.credits, tenant=note.tenant,
                   changes={"credit_note": [None, note.number], "reason": [None, note.reason]})
            events.publish(InvoiceFinalized(note))
            _send_after_commit(note.pk, actor)
        if reissue:
            voided = note.cancelled_invoice
            try:
                draft = invoicing.next_revision(voided)
            except InvoiceError as exc:
                raise _refuse(exc) from None
            new, _changed = invoicing.finalize(draft.pk, now=now)
            record(actor, "invoice.reissue", new, tenant=new.tenant,
                   changes={"number": [None, new.number], "replaces": [None, voided.number]})
            events.publish(InvoiceFinalized(new))
            _send_after_commit(new.pk, actor)
    return note


def do_resend_invoice(actor: Actor, invoice_id: int) -> list[str]:
    """Email a final invoice or credit note again to the tenant's current billing contacts.

    Each call sends once more (that is what a resend is); the delivery is recorded after the
    email has gone. Returns the recipients.
    """
    _check_staff(actor)
    with transaction.atomic():
        invoice = Invoice.objects.select_related("tenant").get(pk=invoice_id)
        if invoice.is_draft:
            raise ValidationError(_("A draft cannot be sent; finalize it first."))
        recipients = billing_contacts(invoice.tenant_id)
        if not recipients:
            raise ValidationError(_("This tenant has no owner or billing member with an email."))
        record(actor, "invoice.resend", invoice, tenant=invoice.tenant,
               changes={"recipients": [None, recipients]})
        _send_after_commit(invoice.pk, actor, resend=True)
    return recipients


def finalize_due_invoices(*, now: datetime | None = None) -> dict[str, int]:
    """Finalize every invoice that is due: months over for longer than the grace period, for
    tenants with usage in them and no final invoice yet. Safe to repeat (beat, hourly)."""
    now = now or timezone.now()
    actor = Actor.system()
    counts = {"finalized": 0, "failed": 0}
    for period in invoicing.periods_due(now, grace_days=settings.BILLING_FINALIZE_GRACE_DAYS,
                                        lookback=settings.BILLING_FINALIZE_LOOKBACK_MONTHS):
        with_usage = set(UsageSegment.objects.overlapping(period.start_at, period.end_at)
                         .values_list("tenant_id", flat=True).distinct())
        issued = set(Invoice.objects.filter(period_start=period.start, kind=Invoice.Kind.INVOICE)
                     .exclude(status=Invoice.Status.DRAFT).values_list("tenant_id", flat=True))
        pending = set(Invoice.objects.filter(period_start=period.start,
                                             kind=Invoice.Kind.INVOICE,
                                             status=Invoice.Status.DRAFT)
                      .values_list("tenant_id", flat=True))
        for tenant_id in sorted((with_usage - issued) | pending):
            try:
                invoice = do_finalize_period(actor, tenant_id, period, now=now)
            except Exception:
                counts["failed"] += 1
                logger.exception("billing.invoice.finalize_failed",
                                 extra={"tenant_id": tenant_id, "period": period.key})
                continue
            if invoice.issued_at == now:
                counts["finalized"] += 1
    return counts


# --------------------------------------------------------------------------- price book


def do_add_price(actor: Actor, *, sku: Sku, per_hour: Decimal, effective_from: datetime,
                 note: str = "") -> Price:
    """Add a price for ``sku`` from a future instant. Prices in force are never changed, so a
    price change is always a new row that starts after now."""
    _check_staff(actor)
    if effective_from.tzinfo is None:
        raise ValidationError({"effective_from": _("Give the time zone (UTC).")})
    effective_from = effective_from.astimezone(UTC).replace(microsecond=0)
    if effective_from <= timezone.now():
        raise ValidationError({"effective_from": _("A new price must start in the future; "
                                                   "past prices never change.")})
    if per_hour is None or per_hour < 0:
        raise ValidationError({"per_hour": _("A price cannot be negative.")})
    with transaction.atomic():
        if Price.objects.filter(sku=sku, effective_from=effective_from).exists():
            raise ValidationError({"effective_from": _("This SKU already has a price from "
                                                       "that instant.")})
        price = Price.objects.create(sku=sku, per_hour=per_hour, effective_from=effective_from,
                                     note=note[:200], created_by=actor.user)
        record(actor, "price.add", price,
               changes={"sku": [None, sku.code], "per_hour": [None, str(per_hour)],
                        "effective_from": [None, effective_from.isoformat()]})
    return price
