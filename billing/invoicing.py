"""Invoices from the ledger: live drafts, finalization, numbering, credit notes.

A draft is never stored with lines: ``compute_invoices`` recomputes it from the ledger and the
price book whenever it is read (one aggregate query over the ledger for any number of
tenants, see ``billing.rating``). Finalizing stores the
lines and totals computed up to the end of the month, takes the next number of a gapless
series and freezes the invoice (see ``billing.models`` for how "frozen" is enforced).
The functions here do not audit; ``billing.actions`` wraps them for people and tasks.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db import IntegrityError, transaction
from django.utils import timezone

from billing import rating
from billing.models import CURRENCY, Invoice, InvoiceCounter, InvoiceLine, Sku, VatRate
from billing.periods import Period
from clusters.models import Cluster
from portal.models import Tenant

INVOICE_SERIES = "INV"
CREDIT_NOTE_SERIES = "CN"

KIND_ORDER = {"node": 0, "gpu": 1, "disk": 2, "cp": 3, "addon": 4}


class InvoiceError(Exception):
    """An invoice operation that cannot be done (the message is for people)."""


@dataclass(frozen=True)
class SkuInfo:
    code: str
    kind: str
    unit: str
    description: str


def sku_catalogue() -> dict[str, SkuInfo]:
    return {row[0]: SkuInfo(*row) for row in
            Sku.objects.values_list("code", "kind", "unit", "description")}


def sku_info(code: str, catalogue: dict[str, SkuInfo]) -> SkuInfo:
    found = catalogue.get(code)
    if found is not None:
        return found
    kind = code.split(".", 1)[0]
    unit = {"node": "node-hour", "gpu": "gpu-hour", "disk": "gib-hour", "cp": "replica-hour",
            "addon": "cluster-hour"}.get(kind, "hour")
    return SkuInfo(code, kind if kind in KIND_ORDER else "other", unit, code)


@dataclass(slots=True)
class DraftLine:
    cluster_id: int | None
    cluster_name: str
    sku: str
    description: str
    unit: str
    unit_seconds: Decimal
    unit_price: Decimal | None
    amount: Decimal

    @property
    def hours(self) -> Decimal:
        return self.unit_seconds / rating.SECONDS_PER_HOUR

    @property
    def priced(self) -> bool:
        return self.unit_price is not None


@dataclass
class InvoiceDraft:
    """An invoice as the ledger says it is right now (or at ``as_of``)."""

    tenant_id: int
    period: Period
    as_of: datetime
    lines: list[DraftLine] = field(default_factory=list)
    vat_rate: Decimal = Decimal(0)

    @property
    def subtotal(self) -> Decimal:
        return rating.sum_amounts(line.amount for line in self.lines)

    @property
    def vat_amount(self) -> Decimal:
        return rating.vat_amount(self.subtotal, self.vat_rate)

    @property
    def total(self) -> Decimal:
        return self.subtotal + self.vat_amount

    @property
    def has_unpriced(self) -> bool:
        return any(not line.priced for line in self.lines)

    @property
    def currency(self) -> str:
        return CURRENCY

    def by_cluster(self) -> dict[str, Decimal]:
        totals: dict[str, Decimal] = defaultdict(lambda: rating.ZERO)
        for line in self.lines:
            totals[line.cluster_name] += line.amount
        return dict(totals)


def vat_rate_on(day: date) -> Decimal:
    """The VAT rate in force on ``day`` (0 when none is configured)."""
    rate = (VatRate.objects.filter(effective_from__lte=day).order_by("-effective_from")
            .values_list("rate", flat=True).first())
    return Decimal(rate) if rate is not None else Decimal(0)


def _cluster_names(ids: set[int]) -> dict[int, str]:
    return dict(Cluster.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}


def _line_order(line: DraftLine, infos: dict[str, SkuInfo]) -> tuple:
    info = infos[line.sku]
    return (line.cluster_name, line.cluster_id or 0, KIND_ORDER.get(info.kind, 9), line.sku,
            line.unit_price is None, line.unit_price or 0)


def compute_invoices(period: Period, *, as_of: datetime | None = None,
                     tenant_ids: Sequence[int] | None = None) -> dict[int, InvoiceDraft]:
    """The invoices of ``period`` for every tenant with usage in it (or only ``tenant_ids``),
    rated up to ``as_of`` (default: now, capped at the end of the month)."""
    as_of = min(as_of or timezone.now(), period.end_at)
    catalogue = sku_catalogue()
    rated = list(rating.rate_usage([(period.start_at, period.end_at)], as_of=as_of,
                                   tenant_ids=tenant_ids))
    names = _cluster_names({r.cluster_id for r in rated})
    vat = vat_rate_on(period.last_day)
    infos = {code: sku_info(code, catalogue) for code in {r.sku for r in rated}}
    drafts: dict[int, InvoiceDraft] = {}
    for r in rated:
        draft = drafts.get(r.tenant_id)
        if draft is None:
            draft = drafts[r.tenant_id] = InvoiceDraft(r.tenant_id, period, as_of, vat_rate=vat)
        info = infos[r.sku]
        draft.lines.append(DraftLine(
            cluster_id=r.cluster_id, cluster_name=names.get(r.cluster_id, str(r.cluster_id)),
            sku=r.sku, description=info.description, unit=info.unit,
            unit_seconds=r.unit_seconds, unit_price=r.per_hour, amount=r.amount))
    for draft in drafts.values():
        draft.lines.sort(key=lambda line: _line_order(line, infos))
    return drafts


def compute_invoice(tenant_id: int, period: Period, *,
                    as_of: datetime | None = None) -> InvoiceDraft:
    as_of = min(as_of or timezone.now(), period.end_at)
    found = compute_invoices(period, as_of=as_of, tenant_ids=[tenant_id]).get(tenant_id)
    if found is None:
        found = InvoiceDraft(tenant_id, period, as_of, vat_rate=vat_rate_on(period.last_day))
    return found


def stored_draft(invoice: Invoice) -> InvoiceDraft:
    """A stored invoice as an ``InvoiceDraft`` (its frozen lines), for one way of rendering."""
    draft = InvoiceDraft(invoice.tenant_id, Period(invoice.period_start),
                         invoice.issued_at or invoice.created_at,
                         vat_rate=invoice.vat_rate or Decimal(0))
    for line in invoice.lines.all():
        draft.lines.append(DraftLine(line.cluster_id, line.cluster_name, line.sku,
                                     line.description, line.unit, line.unit_seconds,
                                     line.unit_price, line.amount))
    return draft


# --------------------------------------------------------------------------- numbering


def next_number(series: str, year: int) -> str:
    """The next number of ``series`` in ``year``: taken under a row lock in the caller's
    transaction, so a rollback gives it back and concurrent callers queue (no gaps)."""
    if not transaction.get_connection().in_atomic_block:
        raise InvoiceError("numbers are taken inside the finalizing transaction")
    InvoiceCounter.objects.bulk_create([InvoiceCounter(series=series, year=year)],
                                       ignore_conflicts=True)
    counter = InvoiceCounter.objects.select_for_update().get(series=series, year=year)
    counter.last += 1
    counter.save(update_fields=["last"])
    prefix = "" if series == INVOICE_SERIES else f"{series}-"
    return f"{prefix}{year}-{counter.last:06d}"


# --------------------------------------------------------------------------- drafts and final


def ensure_draft(tenant_id: int, period: Period) -> Invoice:
    """The open invoice row of a tenant's month (created as a draft if there is none).

    Returns the latest revision; it may be final already. Safe under concurrency: the unique
    constraint on (tenant, month, revision) lets only one creator win.
    """
    existing = (Invoice.objects.filter(tenant_id=tenant_id, period_start=period.start,
                                       kind=Invoice.Kind.INVOICE)
                .order_by("-revision").first())
    if existing is not None:
        return existing
    tenant = Tenant.objects.get(pk=tenant_id)
    try:
        with transaction.atomic():
            return Invoice.objects.create(tenant=tenant, period_start=period.start,
                                          period_end=period.end, tenant_name=tenant.name)
    except IntegrityError:
        winner = (Invoice.objects.filter(tenant_id=tenant_id, period_start=period.start,
                                         kind=Invoice.Kind.INVOICE).order_by("-revision").first())
        if winner is None:  # the conflict was not another creator's invoice
            raise
        return winner


def _store_lines(invoice: Invoice, lines: list[DraftLine], *, sign: int = 1) -> None:
    InvoiceLine.objects.bulk_create([
        InvoiceLine(invoice=invoice, position=i, cluster_id=line.cluster_id,
                    cluster_name=line.cluster_name[:64], sku=line.sku,
                    description=line.description[:200], unit=line.unit,
                    unit_seconds=line.unit_seconds * sign, unit_price=line.unit_price,
                    amount=line.amount * sign)
        for i, line in enumerate(lines)
    ])


def finalize(invoice_id: int, *, now: datetime | None = None) -> tuple[Invoice, bool]:
    """Freeze a draft: store its lines rated to the end of its month, number it.

    Returns ``(invoice, changed)``; an invoice that is already final is returned unchanged, so
    repeating is harmless. Must run inside a transaction (it locks the invoice row).
    """
    now = now or timezone.now()
    invoice = Invoice.objects.select_for_update().select_related("tenant").get(pk=invoice_id)
    if not invoice.is_draft:
        return invoice, False
    period = Period(invoice.period_start)
    if now < period.end_at:
        raise InvoiceError("a month can be invoiced once it is over")
    draft = compute_invoice(invoice.tenant_id, period, as_of=period.end_at)
    _store_lines(invoice, draft.lines)
    invoice.number = next_number(INVOICE_SERIES, now.year)
    invoice.status = Invoice.Status.FINALIZED
    invoice.issued_at = now
    invoice.tenant_name = invoice.tenant.name
    invoice.subtotal = draft.subtotal
    invoice.vat_rate = draft.vat_rate
    invoice.vat_amount = draft.vat_amount
    invoice.total = draft.total
    invoice.has_unpriced = draft.has_unpriced
    invoice.save()
    return invoice, True


def credit(invoice_id: int, *, reason: str, now: datetime | None = None) -> tuple[Invoice, bool]:
    """Cancel a final invoice in full with a credit note (its own gapless series).

    Returns ``(credit_note, created)``; an invoice already credited returns its credit note.
    Must run inside a transaction.
    """
    now = now or timezone.now()
    invoice = Invoice.objects.select_for_update().get(pk=invoice_id)
    if invoice.is_credit_note:
        raise InvoiceError("a credit note cannot be voided")
    if invoice.is_draft:
        raise InvoiceError("a draft has nothing to void")
    existing = Invoice.objects.filter(credits=invoice).first()
    if existing is not None:
        return existing, False
    note = Invoice.objects.create(
        tenant_id=invoice.tenant_id, kind=Invoice.Kind.CREDIT_NOTE, credits=invoice,
        period_start=invoice.period_start, period_end=invoice.period_end,
        revision=invoice.revision, tenant_name=invoice.tenant_name, reason=reason[:300])
    lines = [DraftLine(li.cluster_id, li.cluster_name, li.sku, li.description, li.unit,
                       li.unit_seconds, li.unit_price, li.amount)
             for li in invoice.lines.all()]
    _store_lines(note, lines, sign=-1)
    note.number = next_number(CREDIT_NOTE_SERIES, now.year)
    note.status = Invoice.Status.FINALIZED
    note.issued_at = now
    amounts = invoice.amounts
    note.subtotal = -amounts.subtotal
    note.vat_rate = amounts.vat_rate
    note.vat_amount = -amounts.vat_amount
    note.total = -amounts.total
    note.has_unpriced = invoice.has_unpriced
    note.save()
    return note, True


def next_revision(invoice: Invoice) -> Invoice:
    """A new draft for the month of a voided invoice (a re-issue). Must run in a transaction."""
    if not Invoice.objects.filter(credits=invoice).exists():
        raise InvoiceError("only a voided invoice can be issued again")
    latest = (Invoice.objects.select_for_update()
              .filter(tenant_id=invoice.tenant_id, period_start=invoice.period_start,
                      kind=Invoice.Kind.INVOICE).order_by("-revision").first())
    assert latest is not None
    if latest.pk != invoice.pk:
        raise InvoiceError("this month was issued again already")
    return Invoice.objects.create(tenant_id=invoice.tenant_id, period_start=invoice.period_start,
                                  period_end=invoice.period_end, revision=invoice.revision + 1,
                                  tenant_name=invoice.tenant_name)


def is_void(invoice: Invoice) -> bool:
    return Invoice.objects.filter(credits=invoice).exists()


def periods_due(now: datetime, *, grace_days: int, lookback: int) -> list[Period]:
    """Months whose end plus the grace period has passed, newest first (``lookback`` of them)."""
    periods: list[Period] = []
    period = Period.current(now).previous
    while len(periods) < lookback:
        if period.end_at + timedelta(days=grace_days) <= now:
            periods.append(period)
        period = period.previous
    return periods
