"""Rating: usage × price → CHF. The one pricing function behind invoices, running totals and
previews, so they cannot disagree.

Rounding policy (written once, applied only here)
--------------------------------------------------
1. Usage is measured exactly: quantity × whole seconds (``unit_seconds``), never rounded.
   Metering truncates every instant to the whole second it was observed in.
2. A *line* is one cluster × SKU × unit price within one period (an invoice month, a day of
   the usage chart, a previewed month of 730 hours). Its amount is
   ``unit_seconds × CHF per hour / 3600``, computed exactly in ``Decimal`` and rounded **once**
   to 0.01 CHF, half-up (``line_amount``). A price change inside a segment splits its seconds
   between two lines, one per unit price.
3. Subtotals and totals are sums of rounded lines; a sum is never rounded again.
4. VAT is computed once per invoice on its subtotal with the rate in force on the last day of
   its period, rounded to 0.01 CHF half-up (``vat_amount``). Total = subtotal + VAT.
5. Usage for which no price is in force is rated at CHF 0.00 and flagged (``priced`` False),
   never an error.

The heavy part (unit-seconds per group) runs in SQL as one ``GROUP BY`` over the ledger;
Python only cuts the grouped usage where prices change, prices and rounds it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Context, Decimal

from django.db import connection

from billing.models import Price

CENT = Decimal("0.01")
ZERO = Decimal("0.00")
SECONDS_PER_HOUR = Decimal(3600)
_PRICE_PLACES = Decimal("0.000001")
_QTY_PLACES = Decimal("0.0001")
_QTY_SCALE = 10_000  # quantities have 4 decimal places; SQLite sums them as scaled integers


def money(value: Decimal) -> Decimal:
    """Round to 0.01 CHF, half-up. The only rounding of money in the portal."""
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


_EXACT = Context(prec=60)  # wide enough that no product or quotient here is ever rounded


def line_amount(unit_seconds: Decimal, per_hour: Decimal | None) -> Decimal:
    """The amount of one line: exact usage × price per hour / 3600, rounded once."""
    if per_hour is None:
        return ZERO
    exact = _EXACT.divide(_EXACT.multiply(Decimal(unit_seconds), Decimal(per_hour)),
                          SECONDS_PER_HOUR)
    return money(exact)


def vat_amount(subtotal: Decimal, rate: Decimal) -> Decimal:
    """VAT on an invoice subtotal, rounded once."""
    return money(subtotal * rate)


def sum_amounts(amounts: Iterable[Decimal]) -> Decimal:
    """Totals are sums of already rounded lines (policy point 3)."""
    return sum(amounts, ZERO)


@dataclass(slots=True)
class RatedLine:
    tenant_id: int
    cluster_id: int
    sku: str
    bucket: int
    per_hour: Decimal | None
    unit_seconds: Decimal
    amount: Decimal

    @property
    def priced(self) -> bool:
        return self.per_hour is not None

    @property
    def hours(self) -> Decimal:
        return self.unit_seconds / SECONDS_PER_HOUR


# --------------------------------------------------------------------------- prices


@dataclass(frozen=True)
class PriceBook:
    """Every effective-dated price, by SKU code: ``[(effective_from, per_hour), …]`` sorted."""

    by_sku: dict[str, list[tuple[datetime, Decimal]]]

    @classmethod
    def load(cls) -> PriceBook:
        """One query (the price table is small: a row per SKU and price change)."""
        by_sku: dict[str, list[tuple[datetime, Decimal]]] = {}
        for code, start, per_hour in (Price.objects.order_by("sku__code", "effective_from")
                                      .values_list("sku__code", "effective_from", "per_hour")):
            by_sku.setdefault(code, []).append((start, Decimal(per_hour)))
        return cls(by_sku)

    def at(self, sku: str, when: datetime) -> Decimal | None:
        """The price of ``sku`` in force at ``when`` (None: no price yet, billed 0)."""
        rows = self.by_sku.get(sku)
        if not rows:
            return None
        i = bisect_right(rows, when, key=lambda row: row[0])
        return rows[i - 1][1].quantize(_PRICE_PLACES) if i else None

    def changes_between(self, lo: datetime, hi: datetime) -> list[datetime]:
        """Instants strictly inside ``(lo, hi)`` at which some price changes."""
        return sorted({start for rows in self.by_sku.values() for start, _p in rows
                       if lo < start < hi})


# --------------------------------------------------------------------------- SQL
#
# One scan of the ledger, grouped by tenant × cluster × SKU × bucket. For each group it sums
# the unit-seconds inside the bucket (``total``) and, for every instant at which a price
# changes within the range, the unit-seconds of the bucket *before* that instant. Python then
# cuts each bucket at those instants and prices each piece with the price in force there:
# no join with the price table, so rating costs about what a plain GROUP BY costs.

_PG = """
WITH b(idx, b0, b1) AS (VALUES {buckets})
SELECT seg.tenant_id, seg.cluster_id, seg.sku, b.idx,
       SUM(seg.quantity * EXTRACT(EPOCH FROM (LEAST(COALESCE(seg."end", b.b1), b.b1)
                                             - GREATEST(seg.start, b.b0)))){cuts}
FROM billing_usagesegment seg
JOIN b ON seg.start < b.b1 AND (seg."end" IS NULL OR seg."end" > b.b0)
WHERE seg.start < %s AND (seg."end" IS NULL OR seg."end" > %s){where}
GROUP BY seg.tenant_id, seg.cluster_id, seg.sku, b.idx
"""

_SQLITE = """
WITH b(idx, b0, b1) AS (VALUES {buckets})
SELECT seg.tenant_id, seg.cluster_id, seg.sku, b.idx,
       SUM(CAST(ROUND(seg.quantity * {scale}) AS INTEGER)
           * (CAST(strftime('%%s', MIN(COALESCE(seg."end", b.b1), b.b1)) AS INTEGER)
              - CAST(strftime('%%s', MAX(seg.start, b.b0)) AS INTEGER))){cuts}
FROM billing_usagesegment seg
JOIN b ON seg.start < b.b1 AND (seg."end" IS NULL OR seg."end" > b.b0)
WHERE seg.start < %s AND (seg."end" IS NULL OR seg."end" > %s){where}
GROUP BY seg.tenant_id, seg.cluster_id, seg.sku, b.idx
"""

_PG_CUT = (",\n       SUM(seg.quantity * GREATEST(0, EXTRACT(EPOCH FROM ("
           "LEAST(COALESCE(seg.\"end\", b.b1), b.b1, %s::timestamptz) "
           "- GREATEST(seg.start, b.b0)))))")
_SQLITE_CUT = (",\n       SUM(CAST(ROUND(seg.quantity * {scale}) AS INTEGER) * MAX(0, "
               "CAST(strftime('%%s', MIN(COALESCE(seg.\"end\", b.b1), b.b1, %s)) AS INTEGER) "
               "- CAST(strftime('%%s', MAX(seg.start, b.b0)) AS INTEGER)))")

# One bucket (an invoice month, a month-to-date total): the bounds are parameters, and each
# price change inside the month adds one filtered sum (only segments that start before it).
_PG_ONE = """
SELECT seg.tenant_id, seg.cluster_id, seg.sku, {idx},
       SUM(seg.quantity * EXTRACT(EPOCH FROM (LEAST(COALESCE(seg."end", %s), %s)
                                             - GREATEST(seg.start, %s)))){cuts}
FROM billing_usagesegment seg
WHERE seg.start < %s AND (seg."end" IS NULL OR seg."end" > %s){where}
GROUP BY seg.tenant_id, seg.cluster_id, seg.sku
"""
_PG_ONE_CUT = (",\n       SUM(seg.quantity * EXTRACT(EPOCH FROM (LEAST(COALESCE(seg.\"end\", %s), "
               "%s) - GREATEST(seg.start, %s)))) FILTER (WHERE seg.start < %s)")
_SQLITE_ONE = """
SELECT seg.tenant_id, seg.cluster_id, seg.sku, {idx},
       SUM(CAST(ROUND(seg.quantity * {scale}) AS INTEGER)
           * (CAST(strftime('%%s', MIN(COALESCE(seg."end", %s), %s)) AS INTEGER)
              - CAST(strftime('%%s', MAX(seg.start, %s)) AS INTEGER))){cuts}
FROM billing_usagesegment seg
WHERE seg.start < %s AND (seg."end" IS NULL OR seg."end" > %s){where}
GROUP BY seg.tenant_id, seg.cluster_id, seg.sku
"""
_SQLITE_ONE_CUT = (",\n       SUM(CAST(ROUND(seg.quantity * {scale}) AS INTEGER) "
                   "* (CAST(strftime('%%s', MIN(COALESCE(seg.\"end\", %s), %s)) AS INTEGER) "
                   "- CAST(strftime('%%s', MAX(seg.start, %s)) AS INTEGER))) "
                   "FILTER (WHERE seg.start < %s)")


# What the rating query binds: instants (adapted to text on SQLite), bucket indexes and ids.
_Param = datetime | str | int | None


def _param(value: datetime) -> _Param:
    if connection.vendor == "postgresql":
        return value
    return connection.ops.adapt_datetimefield_value(value)


def _ids_clause(column: str, ids: Sequence[int] | None, params: list[_Param]) -> str:
    if ids is None:
        return ""
    ids = [int(i) for i in ids] or [-1]
    params.extend(ids)
    return f" AND seg.{column} IN ({', '.join(['%s'] * len(ids))})"


def rate_usage(
    buckets: Sequence[tuple[datetime, datetime]],
    *,
    as_of: datetime,
    tenant_ids: Sequence[int] | None = None,
    cluster_ids: Sequence[int] | None = None,
    prices: PriceBook | None = None,
) -> Iterator[RatedLine]:
    """Rate the ledger into lines per tenant × cluster × SKU × bucket × unit price.

    ``buckets`` are half-open ``[start, end)`` intervals (one month for an invoice, the days of
    a month for the chart); usage after ``as_of`` (normally now) is not counted, and open
    segments count until ``as_of``. Two queries (the price book, then one ``GROUP BY`` over
    the ledger) whatever the size of the ledger; pass ``prices`` to skip the first.
    """
    clipped = [(i, lo, min(hi, as_of)) for i, (lo, hi) in enumerate(buckets) if lo < min(hi, as_of)]
    if not clipped:
        return
    prices = prices or PriceBook.load()
    postgres = connection.vendor == "postgresql"
    lowest = min(lo for _i, lo, _hi in clipped)
    highest = max(hi for _i, _lo, hi in clipped)
    cuts = prices.changes_between(lowest, highest)
    params: list[_Param] = []
    if len(clipped) == 1:
        idx, lo, hi = clipped[0]
        template = _PG_ONE if postgres else _SQLITE_ONE.replace("{scale}", str(_QTY_SCALE))
        cut = _PG_ONE_CUT if postgres else _SQLITE_ONE_CUT.replace("{scale}", str(_QTY_SCALE))
        params += [_param(hi), _param(hi), _param(lo)]
        for c in cuts:
            params += [_param(c), _param(c), _param(lo), _param(c)]
        params += [_param(hi), _param(lo)]
        where = _ids_clause("tenant_id", tenant_ids, params) + _ids_clause(
            "cluster_id", cluster_ids, params)
        sql = template.format(idx=int(idx), cuts=cut * len(cuts), where=where)
    else:
        rows = []
        for idx, lo, hi in clipped:
            rows.append("(%s, %s::timestamptz, %s::timestamptz)" if postgres else "(%s, %s, %s)")
            params += [idx, _param(lo), _param(hi)]
        cut_sql = (_PG_CUT if postgres else _SQLITE_CUT.format(scale=_QTY_SCALE)) * len(cuts)
        params += [_param(c) for c in cuts]
        params += [_param(highest), _param(lowest)]
        where = _ids_clause("tenant_id", tenant_ids, params) + _ids_clause(
            "cluster_id", cluster_ids, params)
        template = _PG if postgres else _SQLITE
        sql = template.format(buckets=", ".join(rows), cuts=cut_sql, where=where,
                              scale=_QTY_SCALE)
    bounds = {idx: (lo, hi) for idx, lo, hi in clipped}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        fetched = cursor.fetchall()
    price_at: dict[tuple[str, datetime], Decimal | None] = {}

    def price(sku: str, when: datetime) -> Decimal | None:
        key = (sku, when)
        if key not in price_at:
            price_at[key] = prices.at(sku, when)
        return price_at[key]

    # Which of the price-change columns fall inside each bucket (the same for every row).
    inside_of = {idx: [(k, cut) for k, cut in enumerate(cuts) if lo < cut < hi]
                 for idx, (lo, hi) in bounds.items()}
    for tenant_id, cluster_id, sku, idx, total, *before in fetched:
        lo, hi = bounds[idx]
        inside = [(cut, before[k]) for k, cut in inside_of[idx]]
        if not inside:  # no price change in this bucket: one piece
            used = _units(total, postgres)
            if used:
                per_hour = price(sku, lo)
                yield RatedLine(tenant_id, cluster_id, sku, idx, per_hour,
                                used.quantize(_QTY_PLACES), line_amount(used, per_hour))
            continue
        # Cut the bucket where prices change: ``before`` is the usage before each cut.
        points = [(lo, Decimal(0)), *((c, _units(v, postgres)) for c, v in inside),
                  (hi, _units(total, postgres))]
        pieces: dict[Decimal | None, Decimal] = {}
        for (start, used_before), (_end, used_by_end) in zip(points, points[1:], strict=False):
            used = used_by_end - used_before
            if used:
                per_hour = price(sku, start)
                pieces[per_hour] = pieces.get(per_hour, Decimal(0)) + used
        for per_hour, unit_seconds in pieces.items():
            yield RatedLine(tenant_id, cluster_id, sku, idx, per_hour,
                            unit_seconds.quantize(_QTY_PLACES), line_amount(unit_seconds, per_hour))


def _units(value: Decimal | int | None, postgres: bool) -> Decimal:
    """A unit-seconds column: NUMERIC on PostgreSQL, an integer scaled by ``_QTY_SCALE`` on
    SQLite."""
    if value is None:
        return Decimal(0)
    if postgres:
        return Decimal(value)
    return Decimal(int(value)) / _QTY_SCALE
