"""Scoped reads of billing data: month-to-date costs, usage tables, the daily chart, invoices.

Every function takes the tenant (or tenant ids) explicitly; nothing here reads another
tenant's rows. Costs come from ``billing.rating`` (the same function as invoices) and each
function runs a fixed number of queries whatever the number of clusters or segments.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

from django.core.cache import cache
from django.db.models import Q, QuerySet
from django.shortcuts import get_object_or_404
from django.utils import timezone

from billing import pricing, rating
from billing.invoicing import InvoiceDraft, compute_invoice
from billing.models import (
    Budget,
    BudgetAlert,
    Invoice,
    MeteringRun,
    UsageSegment,
    as_instant,
    month_start,
)
from billing.periods import Period
from clusters import hibernation
from clusters.models import Cluster, Hibernation
from portal.caching import remembered
from portal.models import Tenant


def cluster_costs_mtd(tenant: Tenant, *, now: datetime | None = None) -> dict[int, Decimal]:
    """Month-to-date cost (CHF, before VAT) per cluster id of ``tenant``. Two queries (the price
    book and one aggregate), whatever the number of clusters and segments.

    Clusters without usage this month are absent (read ``.get(cluster.pk, Decimal("0.00"))``).
    Each cluster's figure is the sum of its rounded invoice lines, so the clusters add up to
    ``tenant_cost_mtd`` and to the draft invoice's subtotal.
    """
    return _costs_by_cluster(tenant.pk, now or timezone.now())


def _costs_by_cluster(tenant_id: int, now: datetime) -> dict[int, Decimal]:
    period = Period.current(now)
    totals: dict[int, Decimal] = defaultdict(lambda: rating.ZERO)
    for line in rating.rate_usage([(period.start_at, period.end_at)], as_of=now,
                                  tenant_ids=[tenant_id]):
        totals[line.cluster_id] += line.amount
    return dict(totals)


MTD_SNAPSHOT_SECONDS = 60
"""How long the cluster pages reuse one month-to-date figure of a tenant. The pages say when it
was taken, and refresh it on this period; a change of size only changes what accrues next, so
the figure is at most this many seconds of usage behind (the usage page and invoices compute
theirs on the spot)."""


@dataclass(frozen=True)
class MonthToDate:
    """A tenant's month-to-date cost (CHF, before VAT) per cluster id, as of ``as_of``."""

    as_of: datetime
    per_cluster: dict[int, Decimal]

    def of(self, cluster_id: int) -> Decimal:
        return self.per_cluster.get(cluster_id, rating.ZERO)

    @property
    def total(self) -> Decimal:
        return rating.sum_amounts(self.per_cluster.values())


def month_to_date(tenant_id: int) -> MonthToDate:
    """The tenant's month-to-date snapshot for the cluster pages: from the cache when one was
    taken in the last ``MTD_SNAPSHOT_SECONDS`` of the current month, else two queries."""
    now = timezone.now().replace(microsecond=0)
    key = f"billing:mtd:{tenant_id}:{Period.current(now).start:%Y-%m}"

    def fetch() -> MonthToDate:
        snapshot = cache.get(key)
        if snapshot is None:
            snapshot = MonthToDate(as_of=now, per_cluster=_costs_by_cluster(tenant_id, now))
            cache.set(key, snapshot, MTD_SNAPSHOT_SECONDS)
        return snapshot

    return remembered(key, fetch)


def tenant_cost_mtd(tenant: Tenant, *, now: datetime | None = None) -> Decimal:
    """Month-to-date cost of ``tenant`` (CHF, before VAT). Two queries."""
    return rating.sum_amounts(cluster_costs_mtd(tenant, now=now).values())


def tenant_costs(period: Period, *, as_of: datetime | None = None,
                 tenant_ids: Sequence[int] | None = None) -> dict[int, Decimal]:
    """Cost (before VAT) of ``period`` per tenant id, up to ``as_of``. Two queries.

    For staff pages (revenue so far, top tenants) and budget checks.
    """
    as_of = as_of or timezone.now()
    totals: dict[int, Decimal] = defaultdict(lambda: rating.ZERO)
    for line in rating.rate_usage([(period.start_at, period.end_at)], as_of=as_of,
                                  tenant_ids=tenant_ids):
        totals[line.tenant_id] += line.amount
    return dict(totals)


def revenue_mtd(*, now: datetime | None = None) -> Decimal:
    """What every tenant's usage this month is worth so far (CHF, before VAT). Two queries."""
    return rating.sum_amounts(tenant_costs(Period.current(now or timezone.now()),
                                           as_of=now).values())


def top_tenants_mtd(limit: int = 10, *,
                    now: datetime | None = None) -> list[tuple[Tenant, Decimal]]:
    """The tenants that spent most this month, with their month-to-date cost. Three queries."""
    costs = tenant_costs(Period.current(now or timezone.now()), as_of=now)
    top = sorted(costs.items(), key=lambda item: item[1], reverse=True)[:limit]
    tenants = Tenant.objects.in_bulk([tenant_id for tenant_id, _ in top])
    return [(tenants[tenant_id], cost) for tenant_id, cost in top if tenant_id in tenants]


# --------------------------------------------------------------------------- usage page


@dataclass
class UsageRow:
    cluster_id: int
    cluster_name: str
    sku: str
    description: str
    unit: str
    unit_seconds: Decimal = Decimal(0)
    amount: Decimal = rating.ZERO
    unit_prices: list[Decimal | None] = field(default_factory=list)

    @property
    def hours(self) -> Decimal:
        return self.unit_seconds / rating.SECONDS_PER_HOUR

    @property
    def priced(self) -> bool:
        return None not in self.unit_prices


@dataclass
class ClusterUsage:
    cluster_id: int
    cluster_name: str
    deleted: bool
    rows: list[UsageRow] = field(default_factory=list)

    @property
    def amount(self) -> Decimal:
        return rating.sum_amounts(r.amount for r in self.rows)


@dataclass
class UsageSummary:
    period: Period
    as_of: datetime
    clusters: list[ClusterUsage]
    invoice: InvoiceDraft

    @property
    def total(self) -> Decimal:
        return self.invoice.subtotal

    @property
    def has_unpriced(self) -> bool:
        return self.invoice.has_unpriced


def usage_summary(tenant: Tenant, period: Period, *, now: datetime | None = None) -> UsageSummary:
    """The month's usage by cluster and SKU, hours and cost (its draft invoice, regrouped)."""
    now = now or timezone.now()
    as_of = min(now, period.end_at)
    draft = compute_invoice(tenant.pk, period, as_of=as_of)
    deleted = set(Cluster.objects.filter(
        pk__in={line.cluster_id for line in draft.lines}, deleted_at__isnull=False,
    ).values_list("pk", flat=True))
    clusters: dict[int, ClusterUsage] = {}
    rows: dict[tuple[int, str], UsageRow] = {}
    for line in draft.lines:
        cid = line.cluster_id or 0
        usage = clusters.get(cid)
        if usage is None:
            usage = clusters[cid] = ClusterUsage(cid, line.cluster_name, cid in deleted)
        row = rows.get((cid, line.sku))
        if row is None:
            row = rows[(cid, line.sku)] = UsageRow(cid, line.cluster_name, line.sku,
                                                   line.description, line.unit)
            usage.rows.append(row)
        row.unit_seconds += line.unit_seconds
        row.amount += line.amount
        row.unit_prices.append(line.unit_price)
    ordered = sorted(clusters.values(), key=lambda c: (c.cluster_name, c.cluster_id))
    return UsageSummary(period=period, as_of=as_of, clusters=ordered, invoice=draft)


@dataclass
class DailyCosts:
    period: Period
    days: list[date]
    clusters: list[tuple[int, str]]  # ordered (id, name)
    amounts: dict[tuple[int, int], Decimal]  # (day index, cluster id) → CHF

    def day_total(self, index: int) -> Decimal:
        return rating.sum_amounts(a for (d, _c), a in self.amounts.items() if d == index)

    @property
    def max_day_total(self) -> Decimal:
        return max((self.day_total(i) for i in range(len(self.days))), default=rating.ZERO)


def daily_costs(tenant: Tenant, period: Period, *, now: datetime | None = None,
                names: dict[int, str] | None = None) -> DailyCosts:
    """Cost per day and cluster of ``period`` (each day's lines rounded like invoice lines)."""
    now = now or timezone.now()
    amounts: dict[tuple[int, int], Decimal] = defaultdict(lambda: rating.ZERO)
    for line in rating.rate_usage(period.day_buckets(), as_of=now, tenant_ids=[tenant.pk]):
        amounts[(line.bucket, line.cluster_id)] += line.amount
    ids = {cid for (_d, cid) in amounts}
    if names is None or not ids <= set(names):
        names = dict(Cluster.objects.filter(tenant=tenant, pk__in=ids).values_list("pk", "name"))
    clusters = sorted(((cid, names.get(cid, str(cid))) for cid in ids), key=lambda c: (c[1], c[0]))
    return DailyCosts(period=period, days=period.days(), clusters=clusters, amounts=dict(amounts))


def segments_for_export(tenant: Tenant, period: Period) -> QuerySet[UsageSegment]:
    """The tenant's raw segments that overlap ``period``, oldest first (for CSV and the API)."""
    return (UsageSegment.objects.for_tenant(tenant)
            .overlapping(period.start_at, period.end_at)
            .select_related("cluster", "node_group")
            .order_by("start", "id"))


# --------------------------------------------------------------------------- budgets, invoices


def budget_of(tenant: Tenant) -> Budget | None:
    return Budget.objects.filter(tenant=tenant).first()


def budget_alerts(tenant: Tenant, period: Period | None = None) -> QuerySet[BudgetAlert]:
    """The in-app budget notices of ``period`` (default: this month), highest threshold first."""
    period = period or Period.current()
    return BudgetAlert.objects.filter(tenant=tenant, period_start=period.start)


def invoices_for(tenant: Tenant) -> QuerySet[Invoice]:
    """The tenant's stored invoices and credit notes (drafts included), newest month first."""
    return (Invoice.objects.for_tenant(tenant)
            .select_related("credits")
            .prefetch_related("credit_notes")
            .order_by("-period_start", "kind", "-revision", "-id"))


def access_invoice(tenant: Tenant, invoice_id: int) -> Invoice:
    """One invoice of ``tenant``; another tenant's and a missing one both raise 404."""
    return get_object_or_404(Invoice.objects.select_related("tenant", "credits"),
                             tenant=tenant, pk=invoice_id)


def last_metering_run() -> MeteringRun | None:
    return MeteringRun.objects.order_by("-started_at").first()


# --------------------------------------------------------------------------- part B: hibernation


def hibernation_savings_mtd(tenant: Tenant, *, cluster_id: int | None = None,
                            now: datetime | None = None) -> dict[int, Decimal]:
    """What hibernation saved each of the tenant's clusters this month so far (CHF, before
    VAT): ``pricing.hibernation_savings`` over the hours of each hibernation period in the
    month (from the request to sleep to the request to wake, or now), at the sizes waking
    restores. Clusters that never hibernated this month are left out."""
    now = now or timezone.now()
    start = as_instant(month_start(now))
    rows = (Hibernation.objects.filter(tenant=tenant, started_at__lt=now)
            .exclude(state=Hibernation.State.FAILED)
            .filter(Q(ended_at__isnull=True) | Q(ended_at__gt=start)))
    if cluster_id is not None:
        rows = rows.filter(cluster_id=cluster_id)
    periods = [pricing.SleepPeriod(row.cluster_id, max(row.started_at, start),
                                   min(row.ended_at or now, row.cluster.deleted_at or now, now),
                                   hibernation.restore_groups(row))
               for row in rows.select_related("cluster").order_by("started_at")]
    return pricing.hibernation_savings(periods) if periods else {}


def cluster_cost_in_month(tenant: Tenant, cluster_id: int, period: Period, *,
                          as_of: datetime | None = None) -> Decimal:
    """What one cluster of ``tenant`` cost in ``period`` (CHF, before VAT), up to ``as_of``:
    the sum of its rounded invoice lines (a deleted cluster's last month). Two queries."""
    return rating.sum_amounts(
        line.amount for line in rating.rate_usage(
            [(period.start_at, period.end_at)], as_of=as_of or timezone.now(),
            tenant_ids=[tenant.pk], cluster_ids=[cluster_id]))
