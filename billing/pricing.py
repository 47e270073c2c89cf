"""Cost previews: what a cluster spec costs per month, and what a change adds.

``estimate_spec(spec)`` prices a ``ClusterSpec`` for a month of ``HOURS_PER_MONTH`` (730) hours,
once with every node group at its minimum and once at its maximum. ``estimate_change(before,
after)`` is the difference ("this change: +CHF x / month at min, +CHF y at max").

They meter exactly what ``billing.metering`` would meter for that spec running the whole month
(the same SKU codes and quantities) and rate it with ``billing.rating.line_amount``, the
function invoices use: lines are per SKU (as on an invoice, where a cluster's lines are per
SKU), amounts rounded once per line, totals summed from rounded lines, VAT excluded.

Cost: two small queries to load the prices in force (``PriceTable.load``); pass ``prices=`` to
price many specs with one load. No other database access.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from billing import metering, rating
from billing.invoicing import KIND_ORDER, sku_catalogue, sku_info
from billing.models import CURRENCY, Price
from cozystack.specs import ClusterSpec, NodeGroupSpec

if TYPE_CHECKING:
    from clusters.models import NodePool

HOURS_PER_MONTH = 730
SECONDS_PER_MONTH = HOURS_PER_MONTH * 3600


@dataclass(frozen=True)
class PriceTable:
    """The price per hour of every SKU in force at one instant, and the known SKU codes."""

    at: datetime
    per_hour: dict[str, Decimal]
    known: frozenset[str]
    descriptions: dict[str, tuple[str, str, str]]  # code → (kind, unit, description)

    @classmethod
    def load(cls, at: datetime | None = None) -> PriceTable:
        at = at or timezone.now()
        prices: dict[str, Decimal] = {}
        for code, per_hour in (Price.objects.filter(effective_from__lte=at)
                               .order_by("sku__code", "-effective_from")
                               .values_list("sku__code", "per_hour")):
            prices.setdefault(code, per_hour)
        catalogue = sku_catalogue()
        return cls(at=at, per_hour=prices, known=frozenset(catalogue),
                   descriptions={c: (i.kind, i.unit, i.description)
                                 for c, i in catalogue.items()})

    def price(self, sku: str) -> Decimal | None:
        return self.per_hour.get(sku)


@dataclass(frozen=True)
class EstimateLine:
    sku: str
    description: str
    unit: str
    quantity_min: Decimal
    quantity_max: Decimal
    unit_price: Decimal | None  # CHF per hour; None when the price book has no price
    amount_min: Decimal
    amount_max: Decimal

    @property
    def priced(self) -> bool:
        return self.unit_price is not None

    def to_dict(self) -> dict[str, Any]:
        return {"sku": self.sku, "description": self.description, "unit": self.unit,
                "quantity_min": str(self.quantity_min), "quantity_max": str(self.quantity_max),
                "unit_price_per_hour": None if self.unit_price is None else str(self.unit_price),
                "monthly_min": str(self.amount_min), "monthly_max": str(self.amount_max)}


@dataclass(frozen=True)
class Estimate:
    """Monthly cost (730 h, CHF, before VAT) of a spec at min and at max replicas."""

    lines: tuple[EstimateLine, ...]
    monthly_min: Decimal
    monthly_max: Decimal
    currency: str = CURRENCY
    hours: int = HOURS_PER_MONTH

    @property
    def unpriced(self) -> list[str]:
        return [line.sku for line in self.lines if not line.priced]

    def to_dict(self) -> dict[str, Any]:
        return {"currency": self.currency, "hours_per_month": self.hours,
                "monthly_min": str(self.monthly_min), "monthly_max": str(self.monthly_max),
                "vat_included": False, "unpriced_skus": self.unpriced,
                "lines": [line.to_dict() for line in self.lines]}


@dataclass(frozen=True)
class EstimateDelta:
    """What a change adds per month (negative: saves), at min and at max replicas."""

    before: Estimate
    after: Estimate
    lines: tuple[tuple[str, Decimal, Decimal], ...] = field(default=())  # (sku, Δmin, Δmax)

    @property
    def monthly_min(self) -> Decimal:
        return self.after.monthly_min - self.before.monthly_min

    @property
    def monthly_max(self) -> Decimal:
        return self.after.monthly_max - self.before.monthly_max

    @property
    def currency(self) -> str:
        return CURRENCY

    @property
    def is_zero(self) -> bool:
        return not self.monthly_min and not self.monthly_max

    def to_dict(self) -> dict[str, Any]:
        return {"currency": CURRENCY, "hours_per_month": HOURS_PER_MONTH,
                "delta_monthly_min": str(self.monthly_min),
                "delta_monthly_max": str(self.monthly_max),
                "before": self.before.to_dict(), "after": self.after.to_dict(),
                "lines": [{"sku": s, "delta_monthly_min": str(a), "delta_monthly_max": str(b)}
                          for s, a, b in self.lines]}


def _group_usage(group: NodeGroupSpec, nodes: int) -> dict[str, Decimal]:
    """What ``billing.metering.group_quantities`` meters for this group with ``nodes`` nodes."""
    if nodes <= 0:
        return {}
    usage = {metering.node_sku(group.instance_type): Decimal(nodes)}
    models = sorted(set(group.gpus))
    if models:
        usage[metering.gpu_sku(models[0])] = Decimal(nodes * len(group.gpus))
    if group.disk_gib:
        usage[metering.DISK_SKU] = Decimal(nodes * group.disk_gib)
    return usage


def spec_usage(spec: ClusterSpec, *, at_max: bool, known: frozenset[str]) -> dict[str, Decimal]:
    """Units per SKU the spec runs at its minimum (or maximum) size."""
    usage: dict[str, Decimal] = defaultdict(Decimal)
    for group in spec.node_groups:
        nodes = group.max_replicas if at_max else group.min_replicas
        for sku, quantity in _group_usage(group, nodes).items():
            usage[sku] += quantity
    if spec.control_plane.replicas:
        usage[metering.control_plane_sku(spec.control_plane.api_server_preset)] += Decimal(
            spec.control_plane.replicas)
    for addon in spec.addons:
        code = metering.addon_sku(addon.key)
        if addon.enabled and code in known:
            usage[code] += Decimal(1)
    return dict(usage)


def _describe(code: str, prices: PriceTable) -> tuple[str, str, str]:
    found = prices.descriptions.get(code)
    if found is not None:
        return found
    info = sku_info(code, {})
    return info.kind, info.unit, info.description


def estimate_spec(spec: ClusterSpec, *, prices: PriceTable | None = None) -> Estimate:
    """The monthly cost of ``spec`` at min and at max replicas, with the lines that make it."""
    prices = prices or PriceTable.load()
    low = spec_usage(spec, at_max=False, known=prices.known)
    high = spec_usage(spec, at_max=True, known=prices.known)
    lines = []
    for code in sorted(set(low) | set(high),
                       key=lambda c: (KIND_ORDER.get(_describe(c, prices)[0], 9), c)):
        kind, unit, description = _describe(code, prices)
        price = prices.price(code)
        q_min, q_max = low.get(code, Decimal(0)), high.get(code, Decimal(0))
        lines.append(EstimateLine(
            sku=code, description=description, unit=unit, quantity_min=q_min,
            quantity_max=q_max, unit_price=price,
            amount_min=rating.line_amount(q_min * SECONDS_PER_MONTH, price),
            amount_max=rating.line_amount(q_max * SECONDS_PER_MONTH, price)))
    return Estimate(lines=tuple(lines),
                    monthly_min=rating.sum_amounts(line.amount_min for line in lines),
                    monthly_max=rating.sum_amounts(line.amount_max for line in lines))


def pool_monthly_costs(pools: Iterable[NodePool], *, prices: PriceTable | None = None
                       ) -> dict[int, Decimal | None]:
    """What each ``KubernetesNodes`` pool costs per month (730 h, CHF, before VAT) at its
    current size, as ``billing.metering.pool_quantities`` meters it; None when a SKU it uses
    has no price (or its size is not known yet)."""
    prices = prices or PriceTable.load()
    costs: dict[int, Decimal | None] = {}
    for pool in pools:
        usage = metering.pool_quantities(pool)
        if not usage or any(prices.price(code) is None for code in usage):
            costs[pool.pk] = None if usage or not pool.sized else rating.ZERO
            continue
        costs[pool.pk] = rating.sum_amounts(
            rating.line_amount(quantity * SECONDS_PER_MONTH, prices.price(code))
            for code, quantity in usage.items())
    return costs


def estimate_change(before: ClusterSpec, after: ClusterSpec, *,
                    prices: PriceTable | None = None) -> EstimateDelta:
    """What going from ``before`` to ``after`` adds per month, at min and at max replicas."""
    prices = prices or PriceTable.load()
    old = estimate_spec(before, prices=prices)
    new = estimate_spec(after, prices=prices)
    old_lines = {line.sku: line for line in old.lines}
    new_lines = {line.sku: line for line in new.lines}
    zero = rating.ZERO
    deltas = []
    for code in sorted(set(old_lines) | set(new_lines)):
        a, b = old_lines.get(code), new_lines.get(code)
        d_min = (b.amount_min if b else zero) - (a.amount_min if a else zero)
        d_max = (b.amount_max if b else zero) - (a.amount_max if a else zero)
        if d_min or d_max:
            deltas.append((code, d_min, d_max))
    return EstimateDelta(before=old, after=new, lines=tuple(deltas))


# --------------------------------------------------------------------------- part B: hibernation


@dataclass(frozen=True)
class SleepPeriod:
    """Hours a cluster hibernated (``start`` → ``end``, UTC) and the node groups waking
    restores (their template and exact min and max)."""

    cluster_id: int
    start: datetime
    end: datetime
    groups: tuple[NodeGroupSpec, ...]


def hibernation_savings(periods: Iterable[SleepPeriod], *,
                        book: rating.PriceBook | None = None) -> dict[int, Decimal]:
    """What each cluster's workers would have cost during ``periods`` at the size waking
    restores, per cluster (CHF, before VAT): the groups' minimum nodes (what the autoscaler
    keeps running at the least) metered as ``billing.metering`` meters workers (nodes, GPUs,
    disk; the control plane and add-ons keep running and are billed), rated by
    ``rating.line_amount`` with the price in force at each second. As on an invoice, a line is
    one cluster × SKU × unit price, its unit-seconds summed over the periods and rounded
    once; a cluster's figure is the sum of its rounded lines."""
    book = book or rating.PriceBook.load()
    unit_seconds: dict[tuple[int, str, Decimal | None], Decimal] = defaultdict(Decimal)
    for period in periods:
        start = metering.billing_instant(period.start)
        end = metering.billing_instant(period.end)
        if end <= start:
            continue
        usage: dict[str, Decimal] = defaultdict(Decimal)
        for group in period.groups:
            for sku, quantity in _group_usage(group, group.min_replicas).items():
                usage[sku] += quantity
        for sku, quantity in usage.items():
            cuts = [start, *book.changes_between(start, end), end]
            for lo, hi in zip(cuts, cuts[1:], strict=False):
                seconds = Decimal(int((hi - lo).total_seconds()))
                unit_seconds[(period.cluster_id, sku, book.at(sku, lo))] += quantity * seconds
    saved: dict[int, Decimal] = defaultdict(lambda: rating.ZERO)
    for (cluster_id, _sku, price), seconds in unit_seconds.items():
        saved[cluster_id] += rating.line_amount(seconds, price)
    return dict(saved)
