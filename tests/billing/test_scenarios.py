"""Ground truth: invoices for known usage, computed by hand (the arithmetic is in comments).

Test price book (see conftest): node.t1.test CHF 0.36/h = 0.0001 CHF per node-second,
cp.test CHF 0.072 per replica-hour, addon.testaddon CHF 0.036 per cluster-hour,
disk.gib CHF 0.0036 per GiB-hour (from 2025). Swiss VAT from the seeded rates: 7.7 % until
2023, 8.1 % from 2024-01-01.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from billing import metering
from billing.actions import do_finalize_invoice
from billing.invoicing import compute_invoice, ensure_draft
from billing.models import UsageSegment
from billing.periods import Period
from billing.pricing import PriceTable, estimate_spec
from billing.rating import line_amount, money
from clusters.models import Cluster
from portal.audit import Actor
from tests.billing.conftest import NODE_SKU, T0, add_price, at

D = Decimal


def lines_of(draft):
    return [(li.cluster_name, li.sku, li.unit_seconds, li.unit_price, li.amount)
            for li in draft.lines]


def test_scale_changes_at_known_seconds(tenant, rig_factory):
    rig = rig_factory()
    rig.observe(T0, md0=2)
    rig.observe(T0 + timedelta(seconds=1033), md0=3)
    rig.observe(T0 + timedelta(seconds=3767), md0=1)
    rig.delete(T0 + timedelta(seconds=7200))
    draft = compute_invoice(tenant.pk, Period.of(T0), as_of=datetime(2026, 4, 1, tzinfo=UTC))
    # 2 × 1033 + 3 × (3767 − 1033) + 1 × (7200 − 3767) = 2066 + 8202 + 3433 = 13701 node-s
    # 13701 × 0.0001 = 1.3701 → 1.37
    assert lines_of(draft) == [("web", NODE_SKU, D(13701), D("0.36"), D("1.37"))]
    # VAT 8.1 %: 1.37 × 0.081 = 0.11097 → 0.11; total 1.48
    assert (draft.subtotal, draft.vat_amount, draft.total) == (D("1.37"), D("0.11"), D("1.48"))


def test_a_segment_across_a_month_boundary_is_split_between_invoices(tenant, rig_factory):
    rig = rig_factory()
    rig.observe(datetime(2026, 1, 31, 22, tzinfo=UTC), md0=1)
    rig.observe(datetime(2026, 2, 1, 3, 30, tzinfo=UTC), md0=0)
    january = compute_invoice(tenant.pk, Period(datetime(2026, 1, 1).date()))
    february = compute_invoice(tenant.pk, Period(datetime(2026, 2, 1).date()))
    # January: 22:00 → 24:00 = 2 h = 7200 s × 0.0001 = 0.72; VAT 0.05832 → 0.06; total 0.78
    assert lines_of(january) == [("web", NODE_SKU, D(7200), D("0.36"), D("0.72"))]
    assert (january.vat_amount, january.total) == (D("0.06"), D("0.78"))
    # February: 00:00 → 03:30 = 3.5 h = 12600 s → 1.26; VAT 0.10206 → 0.10; total 1.36
    assert lines_of(february) == [("web", NODE_SKU, D(12600), D("0.36"), D("1.26"))]
    assert (february.vat_amount, february.total) == (D("0.10"), D("1.36"))


def test_a_price_change_mid_segment_splits_it(tenant, rig_factory):
    add_price("node.t1.pc", "0.36")
    add_price("node.t1.pc", "0.72", since=datetime(2026, 3, 16, tzinfo=UTC))
    rig = rig_factory(groups={"md0": {"instance_type": "t1.pc"}})
    rig.observe(datetime(2026, 3, 15, tzinfo=UTC), md0=1)
    rig.observe(datetime(2026, 3, 17, tzinfo=UTC), md0=0)
    rig.observe(datetime(2026, 3, 31, 12, tzinfo=UTC), md0=2)  # still running at month end
    draft = compute_invoice(tenant.pk, Period.of(T0), as_of=datetime(2026, 4, 2, tzinfo=UTC))
    # 15th: 24 h × 1 node × 0.36 = 8.64
    # 16th: 24 h × 1 node × 0.72 = 17.28, plus 31st 12:00 → 24:00: 12 h × 2 nodes = 24 h
    # at 0.72 = 17.28; both at 0.72 in one line: 48 node-h = 172800 s → 34.56
    assert lines_of(draft) == [
        ("web", "node.t1.pc", D(86400), D("0.36"), D("8.64")),
        ("web", "node.t1.pc", D(172800), D("0.72"), D("34.56")),
    ]
    # subtotal 43.20; VAT 43.20 × 0.081 = 3.4992 → 3.50; total 46.70
    assert (draft.subtotal, draft.vat_amount, draft.total) == (D("43.20"), D("3.50"),
                                                               D("46.70"))
    april = compute_invoice(tenant.pk, Period.of(T0).next,
                            as_of=datetime(2026, 4, 1, 6, tzinfo=UTC))
    # The open segment continues in April: 6 h × 2 nodes × 0.72 = 8.64
    assert lines_of(april) == [("web", "node.t1.pc", D(43200), D("0.72"), D("8.64"))]


def test_the_vat_rate_follows_the_period_end(tenant, rig_factory):
    rig = rig_factory()
    rig.observe(datetime(2023, 12, 31, tzinfo=UTC), md0=1)
    rig.observe(datetime(2024, 1, 1, 10, tzinfo=UTC), md0=0)
    december = compute_invoice(tenant.pk, Period(datetime(2023, 12, 1).date()))
    january = compute_invoice(tenant.pk, Period(datetime(2024, 1, 1).date()))
    # December 2023: 24 h × 0.36 = 8.64; VAT 7.7 %: 0.66528 → 0.67; total 9.31
    assert (december.subtotal, december.vat_rate, december.vat_amount, december.total) == (
        D("8.64"), D("0.0770"), D("0.67"), D("9.31"))
    # January 2024: 10 h × 0.36 = 3.60; VAT 8.1 %: 0.2916 → 0.29; total 3.89
    assert (january.subtotal, january.vat_rate, january.vat_amount, january.total) == (
        D("3.60"), D("0.0810"), D("0.29"), D("3.89"))


def test_lines_round_half_up_and_totals_sum_rounded_lines(tenant, rig_factory):
    a = rig_factory("a")
    b = rig_factory("b")
    for rig in (a, b):
        rig.observe(T0, md0=1)
        rig.observe(T0 + timedelta(seconds=50), md0=0)
    draft = compute_invoice(tenant.pk, Period.of(T0), as_of=T0 + timedelta(days=1))
    # Each line: 50 s × 0.0001 = 0.005 → 0.01 (half-up; half-even would give 0.00).
    assert [li.amount for li in draft.lines] == [D("0.01"), D("0.01")]
    # Subtotal = 0.01 + 0.01 = 0.02 (rounding the exact 0.010 total would give 0.01).
    assert draft.subtotal == D("0.02")


def test_a_cluster_deleted_mid_month(tenant, rig_factory):
    rig = rig_factory(cp_replicas=3)
    rig.observe(T0, md0=2)
    rig.cluster.platform_deleted_at = datetime(2026, 3, 10, 12, tzinfo=UTC)
    metering.observe_cluster(rig.cluster, [], datetime(2026, 3, 10, 12, 0, 40, tzinfo=UTC))
    rig.observe(datetime(2026, 3, 20, tzinfo=UTC), md0=5)  # a late echo: ignored, it is gone
    invoice = ensure_draft(tenant.pk, Period.of(T0))
    final = do_finalize_invoice(Actor.system(), invoice.pk,
                                now=datetime(2026, 4, 3, tzinfo=UTC))
    # 1st 00:00 → 10th 12:00 = 9.5 days = 228 h.
    # Nodes: 2 × 228 = 456 node-h = 1641600 s × 0.36/h = 164.16
    # Control plane: 3 × 228 = 684 replica-h = 2462400 s × 0.072/h = 49.248 → 49.25
    assert [(li.sku, li.unit_seconds, li.amount) for li in final.lines.all()] == [
        (NODE_SKU, D(1641600), D("164.16")), ("cp.test", D(2462400), D("49.25"))]
    # subtotal 213.41; VAT 213.41 × 0.081 = 17.28621 → 17.29; total 230.70
    assert (final.subtotal, final.vat_amount, final.total) == (D("213.41"), D("17.29"),
                                                               D("230.70"))


def test_a_watcher_restart_loses_nothing_and_doubles_nothing(tenant, rig_factory):
    a = rig_factory("a")
    b = rig_factory("b")
    c = rig_factory("c")
    for rig in (a, b, c):
        rig.observe(at(0), md0=2 if rig is a else 1)
    # The watcher stops at 1 h. While it is down, b is deleted at 2 h (the platform says so)
    # and c disappears without a reported time (first seen gone at the restart, 3 h).
    Cluster.objects.filter(pk=b.cluster.pk).update(platform_deleted_at=at(2), deleted_at=at(2))
    # Restart at 3 h: reconcile, then the relist observes what runs.
    for _ in range(2):  # a second restart does no harm
        metering.reconcile_ledger(at(3))
        a.observe(at(3), md0=2)
        c.delete(at(3))
    a.observe(at(4), md0=4)
    draft = compute_invoice(tenant.pk, Period.of(T0), as_of=at(5))
    # a: 2 nodes × 4 h + 4 nodes × 1 h = 12 node-h = 43200 s → 4.32
    # b: 1 node × 2 h = 7200 s → 0.72;  c: 1 node × 3 h = 10800 s → 1.08
    assert [(li.cluster_name, li.unit_seconds, li.amount) for li in draft.lines] == [
        ("a", D(43200), D("4.32")), ("b", D(7200), D("0.72")), ("c", D(10800), D("1.08"))]
    assert UsageSegment.objects.filter(cluster=a.cluster).count() == 2


def _seconds_from_ledger(tenant, period: Period) -> dict[tuple[str, str], Decimal]:
    """Unit-seconds per (cluster, SKU) recomputed in Python from the raw segments."""
    totals: dict[tuple[str, str], Decimal] = {}
    for seg in UsageSegment.objects.filter(tenant=tenant).select_related("cluster"):
        lo, hi = max(seg.start, period.start_at), min(seg.end or period.end_at, period.end_at)
        if hi > lo:
            key = (seg.cluster.name, seg.sku)
            totals[key] = totals.get(key, D(0)) + seg.quantity * int((hi - lo).total_seconds())
    return totals


def test_a_month_of_usage_gives_an_invoice_every_line_of_which_recomputes(tenant, rig_factory):
    rng = random.Random(20260301)
    rigs = [rig_factory(name, groups={"md0": {"disk_gib": 20}, "gpu": {
        "gpu_model": "test/gpu", "gpus_per_node": 2}}, cp_replicas=2,
        addons={"testaddon": {"enabled": True}}) for name in ("alpha", "beta")]
    when = T0
    while when < T0 + timedelta(days=31):
        rig = rng.choice(rigs)
        rig.observe(when, md0=rng.randint(0, 6), gpu=rng.randint(0, 2))
        when += timedelta(seconds=rng.randint(60, 12 * 3600))
    invoice = ensure_draft(tenant.pk, Period.of(T0))
    final = do_finalize_invoice(Actor.system(), invoice.pk, now=datetime(2026, 4, 5, tzinfo=UTC))
    expected = _seconds_from_ledger(tenant, Period.of(T0))
    prices = {"node.t1.test": D("0.36"), "gpu.test/gpu": D("1.80"), "disk.gib": D("0.0036"),
              "cp.test": D("0.072"), "addon.testaddon": D("0.036")}
    got = {}
    for line in final.lines.all():
        assert line.unit_price == prices[line.sku]
        assert line.amount == money(line.unit_seconds * line.unit_price / 3600)
        got[(line.cluster_name, line.sku)] = line.unit_seconds
    assert got == expected
    assert final.subtotal == sum(li.amount for li in final.lines.all())
    assert final.vat_amount == money(final.subtotal * D("0.081"))
    assert final.total == final.subtotal + final.vat_amount


def test_the_preview_agrees_with_the_invoice_of_a_steady_month(tenant, rig_factory):
    rig = rig_factory(groups={"md0": {"disk_gib": 30, "min_replicas": 3, "max_replicas": 3},
                              "gpu": {"gpu_model": "test/gpu", "gpus_per_node": 1,
                                      "min_replicas": 1, "max_replicas": 1}},
                      cp_replicas=2, addons={"testaddon": {"enabled": True}})
    rig.observe(T0, md0=3, gpu=1)
    rig.delete(T0 + timedelta(hours=730))  # exactly the 730 h a preview month has
    draft = compute_invoice(tenant.pk, Period.of(T0))
    spec = rig.cluster.to_spec(rig.groups)
    estimate = estimate_spec(spec, prices=PriceTable.load(at=T0))
    # Nodes (one line per SKU): (3 + 1) × 730 h × 0.36 = 1051.20
    # GPU: 1 × 730 × 1.80 = 1314.00;  disk: 3 nodes × 30 GiB = 90 GiB × 730 × 0.0036 = 236.52
    # (the GPU group has no disk);  control plane: 2 × 730 × 0.072 = 105.12;
    # add-on: 730 × 0.036 = 26.28.  Total 1051.20 + 1314.00 + 236.52 + 105.12 + 26.28 = 2733.12
    assert estimate.monthly_min == estimate.monthly_max == D("2733.12")
    assert draft.subtotal == estimate.monthly_min
    assert line_amount(D(730 * 3600 * 4), D("0.36")) == D("1051.20")


def test_the_daily_chart_splits_days_where_prices_change(tenant, rig_factory):
    from billing.queries import daily_costs

    add_price("node.t1.pd", "0.36")
    add_price("node.t1.pd", "0.72", since=datetime(2026, 3, 10, 12, tzinfo=UTC))
    rig = rig_factory(groups={"md0": {"instance_type": "t1.pd"}})
    rig.observe(datetime(2026, 3, 9, 18, tzinfo=UTC), md0=1)
    rig.observe(datetime(2026, 3, 11, tzinfo=UTC), md0=0)
    daily = daily_costs(tenant, Period.of(T0), now=datetime(2026, 4, 1, tzinfo=UTC))
    cid = rig.cluster.pk
    # 9th: 6 h × 0.36 = 2.16;  10th: 12 h × 0.36 + 12 h × 0.72 = 4.32 + 8.64 = 12.96
    assert daily.amounts == {(8, cid): D("2.16"), (9, cid): D("12.96")}
    # The month as one line per price: 18 h × 0.36 = 6.48 and 12 h × 0.72 = 8.64
    month = compute_invoice(tenant.pk, Period.of(T0))
    assert [(li.unit_price, li.amount) for li in month.lines] == [(D("0.36"), D("6.48")),
                                                                  (D("0.72"), D("8.64"))]
