"""Cluster list benchmark: 500 clusters in one tenant, 20 concurrent clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bench_cluster_list.py [--clusters 500] [--clients 20] \\
        [--seconds 10] [--workers 1]

A throwaway database gets one tenant with ``--clusters`` clusters (2 node groups, an operation
and 3 events each). The portal runs under uvicorn; a minimal Django view on the same server,
through the same middleware and with the same signed-in session, is the baseline measured in
the same run. Printed: SQL queries per list page (5 vs N clusters), throughput and latency of
both, and the ratios (goal: throughput ratio >= 0.5). Nothing is asserted; the constant query
count is asserted in tests/clusters/test_views_list.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._ui_stack import load, seed, session_cookie, throwaway_database, uvicorn  # noqa: E402


def count_queries(tenant, user) -> int:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.urls import reverse

    client = Client()
    client.force_login(user)
    path = reverse("clusters:list", kwargs={"tenant_slug": tenant.slug})
    client.get(path)
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    assert response.status_code == 200
    return len(captured.captured_queries)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()

    with throwaway_database("bench_cluster_list"):
        small, small_owner = seed("small", 5)
        tenant, owner = seed("bench", args.clusters)
        few, many = count_queries(small, small_owner), count_queries(tenant, owner)
        print(f"SQL queries per list page: {few} with 5 clusters, {many} with "
              f"{args.clusters} clusters (constant: {few == many})")
        cookie = session_cookie(owner)
        list_path = f"/t/{tenant.slug}/clusters/"
        with uvicorn(workers=args.workers) as (host, port):
            for path in ("/bench/minimal/", list_path):  # warm up: imports, templates, pools
                load(host, port, path, cookie, clients=2, seconds=1.5)
            base = load(host, port, "/bench/minimal/", cookie, clients=args.clients,
                        seconds=args.seconds)
            page = load(host, port, list_path, cookie, clients=args.clients,
                        seconds=args.seconds)
        print(f"uvicorn workers: {args.workers}, clients: {args.clients}, "
              f"{args.seconds:.0f} s each")
        print(base.line("minimal view (baseline)"))
        print(page.line(f"cluster list ({args.clusters}, 50/page)"))
        print(f"throughput ratio list/minimal: {page.rps / base.rps:.2f} (goal >= 0.5)")
        p95 = sorted(page.latencies)[int(0.95 * (len(page.latencies) - 1))]
        p95_base = sorted(base.latencies)[int(0.95 * (len(base.latencies) - 1))]
        print(f"p95 latency ratio list/minimal: {p95 / p95_base:.2f}")


if __name__ == "__main__":
    main()
