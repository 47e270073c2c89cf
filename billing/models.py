"""Billing: the price book, the usage ledger, invoices, budgets.

Money is ``Decimal`` in CHF (``CURRENCY``); instants are aware UTC datetimes, billed per second.

Three kinds of rows never change once they count:

* **Usage segments** (``UsageSegment``): an open segment may only be closed (its ``end`` set,
  once); a closed segment is never updated or deleted. ``billing.metering`` is the only writer.
* **Prices** (``Price``): a row in force (``effective_from`` in the past) is never updated or
  deleted; a new price is a new row from a future instant.
* **Finalized invoices and credit notes** (``Invoice`` / ``InvoiceLine``): never updated or
  deleted. A mistake is corrected with a credit note, never an edit.

On PostgreSQL triggers refuse those writes whatever the code path (migration 0002); the
``save`` / ``delete`` / queryset guards below enforce the same rules on every database.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MinValueValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cozystack import limits
from portal.models import Tenant
from portal.validators import validate_visible_text

CURRENCY = "CHF"


class ImmutableRecord(Exception):
    """A write to a row that must never change (closed segment, past price, final invoice)."""


# --------------------------------------------------------------------------- price book


class Sku(models.Model):
    """Something the portal bills by time: ``node.u1.large``, ``gpu.nvidia.com/…``, ``disk.gib``,
    ``cp.large`` (per control-plane replica), ``addon.velero`` (per cluster)."""

    class Kind(models.TextChoices):
        NODE = "node", _("Worker node")
        GPU = "gpu", _("GPU")
        DISK = "disk", _("Disk")
        CONTROL_PLANE = "cp", _("Control plane")
        ADDON = "addon", _("Add-on")
        OTHER = "other", _("Other")

    class Unit(models.TextChoices):
        NODE_HOUR = "node-hour", _("node-hour")
        GPU_HOUR = "gpu-hour", _("GPU-hour")
        GIB_HOUR = "gib-hour", _("GiB-hour")
        REPLICA_HOUR = "replica-hour", _("replica-hour")
        CLUSTER_HOUR = "cluster-hour", _("cluster-hour")
        HOUR = "hour", _("hour")

    code = models.CharField(_("code"), max_length=100, unique=True)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    unit = models.CharField(_("unit"), max_length=16, choices=Unit.choices)
    description = models.CharField(_("description"), max_length=200, blank=True,
                                   validators=[validate_visible_text])
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ["kind", "code"]
        verbose_name = _("SKU")
        verbose_name_plural = _("SKUs")

    def __str__(self) -> str:
        return self.code


class PriceQuerySet(models.QuerySet["Price"]):
    def in_force(self, at: datetime) -> PriceQuerySet:
        return self.filter(effective_from__lte=at)

    def update(self, **kwargs: Any) -> int:
        if self.filter(effective_from__lte=timezone.now()).exists():
            raise ImmutableRecord("prices in force are never changed; add a new price instead")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.filter(effective_from__lte=timezone.now()).exists():
            raise ImmutableRecord("prices in force are never deleted")
        return super().delete()


class Price(models.Model):
    """CHF per hour of one unit of a SKU, from ``effective_from`` until the next row of that SKU.

    Stored per hour for people; rating applies it per second. Rows in force are immutable.
    """

    sku = models.ForeignKey(Sku, on_delete=models.PROTECT, related_name="prices")
    per_hour = models.DecimalField(_("CHF per hour"), max_digits=14, decimal_places=6,
                                   validators=[MinValueValidator(Decimal(0))])
    effective_from = models.DateTimeField(_("effective from"))
    note = models.CharField(_("note"), max_length=200, blank=True,
                            validators=[validate_visible_text])
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+", editable=False)

    objects = PriceQuerySet.as_manager()

    class Meta:
        ordering = ["sku__code", "-effective_from"]
        constraints = [
            models.UniqueConstraint(fields=["sku", "effective_from"], name="price_unique_start"),
            models.CheckConstraint(condition=Q(per_hour__gte=0), name="price_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.sku.code}: CHF {self.per_hour}/h from {self.effective_from:%Y-%m-%d %H:%M}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        stored = self._stored_start()
        if stored is not None and stored <= timezone.now():
            raise ImmutableRecord("prices in force are never changed; add a new price instead")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        stored = self._stored_start()
        if stored is not None and stored <= timezone.now():
            raise ImmutableRecord("prices in force are never deleted")
        return super().delete(*args, **kwargs)

    @property
    def in_force(self) -> bool:
        return self.effective_from <= timezone.now()

    def _stored_start(self) -> datetime | None:
        if self.pk is None:
            return None
        return Price.objects.filter(pk=self.pk).values_list("effective_from", flat=True).first()


class VatRate(models.Model):
    """Swiss VAT (MWST/TVA) standard rate from a day on; an invoice uses the rate in force on the
    last day of its period."""

    rate = models.DecimalField(_("rate"), max_digits=6, decimal_places=4,
                               help_text=_("As a fraction: 0.0810 for 8.1 %."))
    effective_from = models.DateField(_("effective from"), unique=True)
    note = models.CharField(_("note"), max_length=200, blank=True,
                            validators=[validate_visible_text])

    class Meta:
        ordering = ["-effective_from"]
        verbose_name = _("VAT rate")
        constraints = [
            models.CheckConstraint(condition=Q(rate__gte=0) & Q(rate__lt=1),
                                   name="vat_rate_fraction"),
        ]

    def __str__(self) -> str:
        return f"{self.rate * 100:.1f} % from {self.effective_from}"

    @property
    def percent(self) -> Decimal:
        return (self.rate * 100).normalize()


# --------------------------------------------------------------------------- usage ledger


class UsageSegmentQuerySet(models.QuerySet["UsageSegment"]):
    def for_tenant(self, tenant: Tenant) -> UsageSegmentQuerySet:
        return self.filter(tenant=tenant)

    def open(self) -> UsageSegmentQuerySet:
        return self.filter(end__isnull=True)

    def overlapping(self, start: datetime, end: datetime) -> UsageSegmentQuerySet:
        return self.filter(start__lt=end).filter(Q(end__isnull=True) | Q(end__gt=start))


class UsageSegment(models.Model):
    """``quantity`` units of ``sku`` used by a cluster (and node group) from ``start`` to ``end``.

    ``end`` is null while the segment is open. Segments of one (cluster, node group, SKU) never
    overlap: a partial unique index allows one open segment per key everywhere, and on
    PostgreSQL an exclusion constraint over ``tstzrange(start, end)`` forbids any overlap.
    """

    # Few indexes on purpose (every one slows the metering write path): the composite indexes
    # below lead with tenant and cluster; node groups are never deleted (only marked removed).
    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+",
                               db_index=False)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT,
                                related_name="usage_segments", db_index=False)
    node_group = models.ForeignKey("clusters.NodeGroup", on_delete=models.PROTECT, null=True,
                                   blank=True, related_name="usage_segments", db_index=False)
    # A code, not a foreign key: metering never fails on an instance type the price book does
    # not know yet; rating prices it at 0 and flags it.
    sku = models.CharField(max_length=100)
    quantity = models.DecimalField(max_digits=18, decimal_places=4)
    start = models.DateTimeField()
    end = models.DateTimeField(null=True, blank=True)

    objects = UsageSegmentQuerySet.as_manager()

    class Meta:
        ordering = ["start", "id"]
        constraints = [
            models.UniqueConstraint(
                models.F("cluster"), Coalesce("node_group", models.Value(0)), models.F("sku"),
                condition=Q(end__isnull=True), name="usage_segment_one_open_per_key"),
            models.CheckConstraint(condition=Q(end__isnull=True) | Q(end__gt=models.F("start")),
                                   name="usage_segment_end_after_start"),
            models.CheckConstraint(condition=Q(quantity__gt=0), name="usage_segment_positive"),
        ]
        indexes = [
            models.Index(fields=["tenant", "start"], name="usage_segment_tenant_start"),
            models.Index(fields=["cluster", "end"], name="usage_segment_cluster_end"),
        ]

    def __str__(self) -> str:
        end = f"{self.end:%Y-%m-%d %H:%M:%S}" if self.end else "open"
        return f"{self.sku} × {self.quantity} {self.start:%Y-%m-%d %H:%M:%S} → {end}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ImmutableRecord("usage segments are written by billing.metering only")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise ImmutableRecord("usage segments are never deleted")

    @property
    def is_open(self) -> bool:
        return self.end is None


class MeteringRun(models.Model):
    """One reconciliation of the ledger with the clusters' state (watcher start, beat)."""

    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    trigger = models.CharField(max_length=32, default="watcher")
    at = models.DateTimeField(help_text=_("The instant the ledger was reconciled to."))
    clusters_closed = models.PositiveIntegerField(default=0)
    segments_closed = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"{self.trigger} {self.at:%Y-%m-%d %H:%M:%S}: {self.segments_closed} closed"


# --------------------------------------------------------------------------- invoices


def month_start(value: date | datetime) -> date:
    return date(value.year, value.month, 1)


def next_month(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


def as_instant(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


class InvoiceQuerySet(models.QuerySet["Invoice"]):
    def for_tenant(self, tenant: Tenant) -> InvoiceQuerySet:
        return self.filter(tenant=tenant)

    def final(self) -> InvoiceQuerySet:
        return self.filter(status=Invoice.Status.FINALIZED)

    def update(self, **kwargs: Any) -> int:
        if self.exclude(status=Invoice.Status.DRAFT).exists():
            raise ImmutableRecord("finalized invoices are immutable")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self.exclude(status=Invoice.Status.DRAFT).exists():
            raise ImmutableRecord("finalized invoices are immutable")
        return super().delete()


class Invoice(models.Model):
    """One tenant, one calendar month (UTC). A draft is recomputed from the ledger whenever it is
    read; finalizing stores its lines and totals, gives it the next number and freezes it.

    A credit note (``kind=credit_note``) cancels a finalized invoice in full; the invoice is then
    *void*. Voiding never edits the invoice. ``revision`` counts the invoices issued for the
    same month (a re-issue after a void).
    """

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        CREDIT_NOTE = "credit_note", _("Credit note")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        FINALIZED = "finalized", _("Finalized")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="invoices")
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.INVOICE)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.DRAFT)
    period_start = models.DateField(_("period start"))
    period_end = models.DateField(_("period end"), help_text=_("Exclusive: the next month's 1st."))
    revision = models.PositiveSmallIntegerField(default=0)
    number = models.CharField(_("number"), max_length=32, unique=True, null=True, blank=True)
    credits = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True,
                                related_name="credit_notes")
    reason = models.CharField(_("reason"), max_length=300, blank=True,
                              validators=[validate_visible_text])
    currency = models.CharField(max_length=3, default=CURRENCY, editable=False)
    tenant_name = models.CharField(max_length=100, blank=True)
    subtotal = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    vat_rate = models.DecimalField(max_digits=6, decimal_places=4, null=True, blank=True)
    vat_amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    total = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    has_unpriced = models.BooleanField(default=False,
                                       help_text=_("Some usage had no price and was billed 0."))
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    issued_at = models.DateTimeField(null=True, blank=True)

    objects = InvoiceQuerySet.as_manager()

    class Meta:
        ordering = ["-period_start", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "period_start", "revision"],
                                    condition=Q(kind="invoice"), name="invoice_one_per_month"),
            models.UniqueConstraint(fields=["credits"], condition=Q(kind="credit_note"),
                                    name="invoice_one_credit_note"),
            models.CheckConstraint(
                condition=Q(status="draft") | (Q(number__isnull=False) & Q(total__isnull=False)),
                name="invoice_final_has_number"),
            models.CheckConstraint(condition=Q(kind="invoice") | Q(credits__isnull=False),
                                   name="credit_note_credits_invoice"),
        ]
        indexes = [models.Index(fields=["status", "period_start"])]

    def __str__(self) -> str:
        label = self.number or _("draft")
        return f"{label} · {self.tenant_name or self.tenant_id} · {self.period_start:%Y-%m}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._locked():
            raise ImmutableRecord("finalized invoices are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self._locked():
            raise ImmutableRecord("finalized invoices are immutable")
        return super().delete(*args, **kwargs)

    @property
    def is_draft(self) -> bool:
        return self.status == self.Status.DRAFT

    @property
    def amounts(self) -> FinalAmounts:
        """The amounts of a final invoice or credit note (a draft gets them when finalized)."""
        if (self.subtotal is None or self.vat_rate is None or self.vat_amount is None
                or self.total is None):
            raise ValueError(f"invoice {self.pk} is a draft: it has no amounts yet")
        return FinalAmounts(self.subtotal, self.vat_rate, self.vat_amount, self.total)

    @property
    def cancelled_invoice(self) -> Invoice:
        """The invoice a credit note cancels (the database requires one)."""
        if self.credits is None:
            raise ValueError(f"invoice {self.pk} is not a credit note")
        return self.credits

    @property
    def is_credit_note(self) -> bool:
        return self.kind == self.Kind.CREDIT_NOTE

    @property
    def period_start_at(self) -> datetime:
        return as_instant(self.period_start)

    @property
    def period_end_at(self) -> datetime:
        return as_instant(self.period_end)

    def _locked(self) -> bool:
        """Whether the stored row is final (read from the database, never from this instance,
        so a stale copy of a draft cannot overwrite a final invoice)."""
        if self.pk is None:
            return False
        stored = Invoice.objects.filter(pk=self.pk).values_list("status", flat=True).first()
        return stored is not None and stored != self.Status.DRAFT


class FinalAmounts(NamedTuple):
    subtotal: Decimal
    vat_rate: Decimal
    vat_amount: Decimal
    total: Decimal


class InvoiceLineQuerySet(models.QuerySet["InvoiceLine"]):
    def _frozen(self) -> bool:
        return self.exclude(invoice__status=Invoice.Status.DRAFT).exists()

    def update(self, **kwargs: Any) -> int:
        if self._frozen():
            raise ImmutableRecord("lines of finalized invoices are immutable")
        return super().update(**kwargs)

    def delete(self) -> tuple[int, dict[str, int]]:
        if self._frozen():
            raise ImmutableRecord("lines of finalized invoices are immutable")
        return super().delete()

    def bulk_create(self, objs: Any, *args: Any, **kwargs: Any) -> Any:
        objs = list(objs)
        ids = {o.invoice_id for o in objs}
        if Invoice.objects.filter(pk__in=ids).exclude(status=Invoice.Status.DRAFT).exists():
            raise ImmutableRecord("lines of finalized invoices are immutable")
        return super().bulk_create(objs, *args, **kwargs)


class InvoiceLine(models.Model):
    """One cluster × SKU × unit price of an invoice.

    ``unit_seconds`` is the exact usage (quantity × seconds); ``hours`` is that in hours;
    ``amount`` = unit_seconds × unit_price / 3600 rounded once (see ``billing.rating``).
    """

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    cluster = models.ForeignKey("clusters.Cluster", on_delete=models.PROTECT, null=True,
                                blank=True, related_name="+")
    cluster_name = models.CharField(max_length=64, blank=True)
    sku = models.CharField(max_length=100)
    description = models.CharField(max_length=200, blank=True)
    unit = models.CharField(max_length=16, blank=True)
    unit_seconds = models.DecimalField(max_digits=24, decimal_places=4)
    unit_price = models.DecimalField(max_digits=14, decimal_places=6, null=True, blank=True,
                                     help_text=_("CHF per hour; empty when no price was set."))
    amount = models.DecimalField(max_digits=14, decimal_places=2)

    objects = InvoiceLineQuerySet.as_manager()

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self) -> str:
        return f"{self.cluster_name} {self.sku}: {self.amount}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self._frozen():
            raise ImmutableRecord("lines of finalized invoices are immutable")
        super().save(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        if self._frozen():
            raise ImmutableRecord("lines of finalized invoices are immutable")
        return super().delete(*args, **kwargs)

    @property
    def hours(self) -> Decimal:
        return self.unit_seconds / 3600

    def _frozen(self) -> bool:
        status = Invoice.objects.filter(pk=self.invoice_id).values_list("status", flat=True).first()
        return status is not None and status != Invoice.Status.DRAFT


class InvoiceCounter(models.Model):
    """The last number given in a series and year; locked with SELECT … FOR UPDATE while a
    number is taken, in the transaction that finalizes, so numbers have no gaps."""

    series = models.CharField(max_length=8)
    year = models.PositiveSmallIntegerField()
    last = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["series", "year"],
                                               name="invoice_counter_unique")]

    def __str__(self) -> str:
        return f"{self.series}-{self.year}: {self.last}"


class InvoiceDelivery(models.Model):
    """An invoice sent by email (on finalization or a resend). Invoices themselves never change."""

    invoice = models.ForeignKey(Invoice, on_delete=models.PROTECT, related_name="deliveries")
    sent_at = models.DateTimeField(default=timezone.now)
    recipients = models.TextField()
    actor_label = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-sent_at"]
        verbose_name_plural = _("invoice deliveries")

    def __str__(self) -> str:
        return f"{self.invoice} → {self.recipients}"


# --------------------------------------------------------------------------- budgets

DEFAULT_THRESHOLDS = [50, 80, 100]


def validate_thresholds(value: Any) -> None:
    """One to ``limits.BUDGET_THRESHOLDS`` whole percentages, each within its range."""
    bound = limits.BUDGET_THRESHOLD_PERCENT
    if not isinstance(value, list) or not 1 <= len(value) <= limits.BUDGET_THRESHOLDS or \
            not all(bound.allows(v) for v in value):
        raise ValidationError(
            _("Set 1 to %(count)s thresholds, each a whole percentage from %(lo)s to %(hi)s."),
            code="invalid_thresholds",
            params={"count": limits.BUDGET_THRESHOLDS, "lo": bound.lo, "hi": bound.hi})


class Budget(models.Model):
    """A monthly budget (CHF, before VAT) with alert thresholds in percent."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="budget")
    amount = models.DecimalField(_("monthly budget (CHF)"), max_digits=12, decimal_places=2,
                                 validators=[MinValueValidator(limits.BUDGET_CHF.lo)])
    thresholds = models.JSONField(_("alert thresholds (%)"), default=list,
                                  validators=[validate_thresholds])
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.CheckConstraint(condition=Q(amount__gt=0),
                                              name="budget_positive")]

    def __str__(self) -> str:
        return f"{self.tenant}: CHF {self.amount}"


class BudgetAlert(models.Model):
    """A threshold crossed in a month: exists at most once per tenant, month and threshold, which
    is what makes the email and the in-app notice happen once."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="budget_alerts")
    period_start = models.DateField()
    threshold = models.PositiveSmallIntegerField()
    budget_amount = models.DecimalField(max_digits=12, decimal_places=2)
    spent = models.DecimalField(max_digits=14, decimal_places=2)
    created_at = models.DateTimeField(default=timezone.now)
    emailed_to = models.TextField(blank=True)

    class Meta:
        ordering = ["-period_start", "-threshold"]
        constraints = [models.UniqueConstraint(fields=["tenant", "period_start", "threshold"],
                                               name="budget_alert_once")]

    def __str__(self) -> str:
        return f"{self.tenant} {self.period_start:%Y-%m} {self.threshold} %"
