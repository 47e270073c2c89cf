"""Cluster list benchmark: 500 clusters in one tenant, 20 concurrent clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_cluster_list.py [--clusters 500] [--clients 20] \\
        [--seconds 6] [--rounds 2] [--workers 1]

A throwaway database gets one tenant with ``--clusters`` clusters (2 node groups, an operation
and 3 events each). The portal runs under uvicorn; a minimal Django view on the same server,
through the same middleware and with the same signed-in session, is the baseline measured in
the same run; the two alternate for ``--rounds`` rounds (the machine may be shared). Each
request's database connection is closed when it ends (see settings_bench.py). Every cluster
has a month of usage in the ledger (the list shows month-to-date costs). Printed: SQL queries
per list page (5 vs N clusters, rendered afresh and from the cache), throughput and latency of
both, and the ratios (goal: throughput ratio >= 0.5). The load runs between changes, so pages
are served from the cache of rendered list pages (``clusters.web.live.list_fragment``) after the
first. Nothing is asserted; the constant query count is asserted in
tests/clusters/test_views_list.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._ui_stack import (  # noqa: E402
    cookie_header,
    load,
    merge,
    percentile,
    seed,
    session_cookie,
    throwaway_database,
    uvicorn,
)


def count_queries(tenant, user) -> tuple[int, int]:
    """SQL queries of one list page rendered afresh (after a change), then served from the
    cache (the next request before any change)."""
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    from clusters.web.live import forget_list

    client = Client()
    client.force_login(user)
    path = reverse("clusters:list", kwargs={"tenant_slug": tenant.slug})
    client.get(path)
    counts = []
    for fresh in (True, False):
        if fresh:
            forget_list(tenant.pk)
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
        assert response.status_code == 200
        counts.append(len(captured.captured_queries))
    return counts[0], counts[1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with throwaway_database("bench_cluster_list"):
        small, small_owner = seed("small", 5)
        tenant, owner = seed("bench", args.clusters)
        (few, few_cached), (many, many_cached) = (count_queries(small, small_owner),
                                                  count_queries(tenant, owner))
        print(f"SQL queries per list page rendered afresh: {few} with 5 clusters, {many} with "
              f"{args.clusters} clusters (constant: {few == many}); served from the cache: "
              f"{few_cached} and {many_cached}")
        cookie = cookie_header(session_cookie(owner))
        list_path = f"/t/{tenant.slug}/clusters/"
        with uvicorn(workers=args.workers) as (host, port):
            for path in ("/bench/minimal/", list_path):  # warm up: imports, templates, pools
                load(host, port, path, cookie, clients=2, seconds=1.5)
            base_runs, page_runs = [], []
            for _ in range(args.rounds):
                base_runs.append(load(host, port, "/bench/minimal/", cookie,
                                      clients=args.clients, seconds=args.seconds))
                page_runs.append(load(host, port, list_path, cookie, clients=args.clients,
                                      seconds=args.seconds))
        base, page = merge(base_runs), merge(page_runs)
        from django.conf import settings

        print(f"uvicorn workers: {args.workers}, clients: {args.clients}, "
              f"{args.rounds} × {args.seconds:.0f} s each, CONN_MAX_AGE "
              f"{settings.DATABASES['default'].get('CONN_MAX_AGE')}")
        print(base.line("minimal view (baseline)"))
        print(page.line(f"cluster list ({args.clusters}, 50/page)"))
        if base.errors or page.errors:
            print("warning: some requests failed (not counted); see the uvicorn log "
                  "(BENCH_KEEP_LOG=1 keeps it in test-artifacts/bench/)")
        ratio = page.rps / base.rps if base.rps else float("nan")
        print(f"throughput ratio list/minimal: {ratio:.2f} (goal >= 0.5) — "
              f"{'met' if ratio >= 0.5 else 'NOT met'}")
        p95, p95_base = percentile(page.latencies, 95), percentile(base.latencies, 95)
        print(f"p95 latency ratio list/minimal: {p95 / p95_base:.2f} (lower is better)")


if __name__ == "__main__":
    main()
