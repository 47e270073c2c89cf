"""Rating benchmark: a month of usage for many tenants into invoice drafts, against a raw
SQL GROUP BY over the same table in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_rating.py
    … bench/bench_rating.py --segments 100000      # a quick run

It creates a throwaway database (dropped at the end), loads at least N segments (default
1,000,000) over T tenants (default 1,000) in bulk (INSERT … SELECT generate_series,
server-side; 5 clusters per tenant; node, disk and control-plane segments that change through
the month, a fifth still open), then times:

* baseline: one ``GROUP BY tenant, cluster, SKU`` summing quantity × seconds in the month;
* drafts: ``billing.invoicing.compute_invoices`` — the same grouping, cut where prices
  change (the node SKU changes price mid-month), priced, rounded lines, VAT, one
  ``InvoiceDraft`` per tenant with cluster names and SKU descriptions.

Prints the ratio (goal ≤ 2×) and the peak memory (goal < 500 MB). No assertion: figures only.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal

from _billing_db import peak_rss_mb, throwaway_database

MONTH_START = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_END = datetime(2026, 4, 1, tzinfo=UTC)
CLUSTERS_PER_TENANT = 5

BASELINE_SQL = """
SELECT tenant_id, cluster_id, sku,
       SUM(quantity * EXTRACT(EPOCH FROM (LEAST(COALESCE("end", %(hi)s), %(hi)s)
                                         - GREATEST(start, %(lo)s))))
FROM billing_usagesegment
WHERE start < %(hi)s AND ("end" IS NULL OR "end" > %(lo)s)
GROUP BY tenant_id, cluster_id, sku
"""


def load(segments: int, tenants: int, seed: int) -> int:
    from django.db import connection

    from billing.models import Price, Sku
    from clusters.models import Cluster, NodeGroup
    from portal.models import Tenant

    rng = random.Random(seed)
    started = time.perf_counter()
    Tenant.objects.bulk_create([Tenant(slug=f"t{i}", name=f"Tenant {i}") for i in range(tenants)])
    tenant_ids = list(Tenant.objects.order_by("pk").values_list("pk", flat=True))
    Cluster.objects.bulk_create([
        Cluster(tenant_id=tid, name=f"c{j}", version="v1.33")
        for tid in tenant_ids for j in range(CLUSTERS_PER_TENANT)])
    clusters = list(Cluster.objects.order_by("pk").values_list("pk", "tenant_id"))
    NodeGroup.objects.bulk_create([
        NodeGroup(cluster_id=cid, name="md0", instance_type="u1.large", min_replicas=1,
                  max_replicas=10, disk_gib=50) for cid, _tid in clusters])
    # A price change in the middle of the month for the node SKU (splits its segments).
    node = Sku.objects.get(code="node.u1.large")
    Price.objects.create(sku=node, per_hour=Decimal("0.085"),
                         effective_from=datetime(2026, 3, 16, tzinfo=UTC))

    print(f"  tenants and clusters in {time.perf_counter() - started:.1f} s")
    per_cluster = max(-(-segments // len(clusters)), 3)
    changes = max(-(-(per_cluster - 1) // 2), 1)  # node + disk per interval, one cp segment
    step = (MONTH_END - MONTH_START) / changes
    with connection.cursor() as cursor:  # a bulk load: build the GiST index once, after it
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conname = 'usage_segment_no_overlap'")
        exclusion = cursor.fetchone()[0]
        cursor.execute("ALTER TABLE billing_usagesegment DROP CONSTRAINT usage_segment_no_overlap")
        cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if cursor.fetchone()[0]:  # skip the per-row foreign-key checks of a bulk load
            cursor.execute("SET session_replication_role = replica")
        cursor.execute("SELECT setseed(%s)", [rng.random()])
        # One control-plane segment per cluster (open, from before the month); then per
        # cluster ``changes`` consecutive intervals of node + disk usage, the node count
        # changing at every step; a fifth of the clusters still running at month end.
        cursor.execute("""
            INSERT INTO billing_usagesegment (tenant_id, cluster_id, node_group_id, sku,
                                              quantity, start, "end")
            SELECT c.tenant_id, c.id, NULL, 'cp.large', 2, %(t0)s - interval '3 days', NULL
            FROM clusters_cluster c""", {"t0": MONTH_START})
        cursor.execute("""
            INSERT INTO billing_usagesegment (tenant_id, cluster_id, node_group_id, sku,
                                              quantity, start, "end")
            SELECT c.tenant_id, c.id, g.id, s.sku, s.per_node * u.nodes,
                   %(t0)s + u.k * %(step)s,
                   CASE WHEN u.k = %(last)s AND c.id %% 5 = 0 THEN NULL
                        ELSE %(t0)s + (u.k + 1) * %(step)s END
            FROM clusters_cluster c
            JOIN clusters_nodegroup g ON g.cluster_id = c.id
            CROSS JOIN LATERAL (SELECT k, 1 + floor(random() * 8)::int AS nodes
                                FROM generate_series(0, %(last)s) k) u
            CROSS JOIN (VALUES ('node.u1.large', 1), ('disk.gib', 50)) s(sku, per_node)""",
                       {"t0": MONTH_START, "step": step, "last": changes - 1})
        cursor.execute("SET session_replication_role = DEFAULT")
        cursor.execute("SELECT count(*) FROM billing_usagesegment")
        written = cursor.fetchone()[0]
        print(f"  inserted in {time.perf_counter() - started:.1f} s")
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE billing_usagesegment ADD CONSTRAINT usage_segment_no_overlap "
                       + exclusion)
        print(f"  exclusion constraint rebuilt at {time.perf_counter() - started:.1f} s")
        cursor.execute("ANALYZE billing_usagesegment")
    print(f"loaded {written:,} segments, {len(clusters):,} clusters, {tenants:,} tenants "
          f"in {time.perf_counter() - started:.1f} s")
    return written


def time_baseline() -> tuple[float, int]:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(BASELINE_SQL, {"lo": MONTH_START, "hi": MONTH_END})
        rows = cursor.fetchall()
    return time.perf_counter() - started, len(rows)


def time_drafts() -> tuple[float, int, int, Decimal]:
    from billing.invoicing import compute_invoices
    from billing.periods import Period

    started = time.perf_counter()
    drafts = compute_invoices(Period.of(MONTH_START), as_of=MONTH_END)
    elapsed = time.perf_counter() - started
    lines = sum(len(d.lines) for d in drafts.values())
    total = sum((d.total for d in drafts.values()), Decimal(0))
    return elapsed, len(drafts), lines, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--segments", type=int, default=1_000_000)
    parser.add_argument("--tenants", type=int, default=1_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the throwaway database")
    args = parser.parse_args()
    with throwaway_database("bench_rating", keep=args.keep):
        load(args.segments, args.tenants, args.seed)
        time_baseline()  # warm the cache once for both
        baseline, drafts = [], []
        for _ in range(args.rounds):
            elapsed, groups = time_baseline()
            baseline.append(elapsed)
            elapsed, tenants, lines, total = time_drafts()
            drafts.append(elapsed)
        tracemalloc.start()  # a separate run: tracing slows Python down
        time_drafts()
        _current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        b, d = statistics.median(baseline), statistics.median(drafts)
        print(f"baseline GROUP BY:   {b:.3f} s (median of {args.rounds}), {groups:,} groups")
        print(f"invoice drafts:      {d:.3f} s (median of {args.rounds}), {tenants:,} drafts, "
              f"{lines:,} lines, CHF {total:,.2f} incl. VAT")
        print(f"ratio drafts/baseline: {d / b:.2f}x (goal <= 2x) — "
              f"{'met' if d / b <= 2 else 'NOT met'}")
        peak = peak_rss_mb()
        print(f"peak memory: {peak:.0f} MB RSS for the whole process, "
              f"{traced_peak / 2**20:.1f} MB allocated by Python while rating (goal < 500 MB) — "
              f"{'met' if peak < 500 else 'NOT met'}")


if __name__ == "__main__":
    main()
