"""API cluster list benchmark: 100 clusters in one tenant, 20 concurrent clients.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_api_list.py [--clusters 100] [--clients 20] \\
        [--seconds 8] [--rounds 2] [--workers 1]

A throwaway database gets one tenant with ``--clusters`` clusters (2 node groups, an operation
and 3 events each). The portal runs under uvicorn with, on the same server, a minimal DRF view
that returns the same clusters through the same serializer but without authentication,
permissions, throttling, tenancy or pagination: the baseline, measured in the same run. The
API is called as a CI job would, with a personal access token, asking for the 100 clusters in
one page. For reference, a trivial DRF view (a constant two-key body, no database) is measured
too: the cost of serving any request at all. Baseline, API and trivial view alternate for
``--rounds`` rounds (the machine may be shared). Each request's database connection is closed
when it ends (see settings_bench.py). Printed: SQL queries per API request, throughput and
p50/p95 latency of each, and the ratios (goal: throughput ratio API / baseline >= 0.6).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench._ui_stack import (  # noqa: E402
    LOGS,
    SETTINGS,
    free_port,
    load,
    merge,
    percentile,
    seed,
    throwaway_database,
)

JSON = "application/json"

BASELINE_PATH = "/bench/api-baseline/"
TRIVIAL_PATH = "/bench/api-trivial/"
UNLIMITED = "100000000/min"


# --------------------------------------------------------------------------- served by uvicorn


def __getattr__(name: str) -> Any:
    """``urlpatterns`` for the server (built lazily: Django is only set up there)."""
    if name != "urlpatterns":
        raise AttributeError(name)
    from django.urls import path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from clusters.web.api.serializers import ClusterSerializer
    from clusters.web.api.views import cluster_queryset
    from portal.models import Tenant
    from portal.tenancy import TenantContext
    from portal.urls import urlpatterns as portal_urlpatterns

    class BaselineClusterList(APIView):
        """The same clusters and serializer; no auth, permissions, throttles or pages."""

        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]
        throttle_classes: list[Any] = []

        def get(self, request: Any) -> Response:
            tenant = Tenant.objects.get(slug=request.GET.get("tenant", "bench"))
            ctx = TenantContext(tenant, "owner", None)
            clusters = cluster_queryset(ctx).order_by("name")
            return Response(ClusterSerializer(clusters, many=True,
                                              context={"request": request, "ctx": ctx}).data)

    class Trivial(APIView):
        """Any DRF answer at all: no database, no auth, a constant body."""

        authentication_classes: list[Any] = []
        permission_classes = [AllowAny]
        throttle_classes: list[Any] = []

        def get(self, request: Any) -> Response:
            return Response({"ok": True, "clusters": 0})

    return [path(BASELINE_PATH.strip("/") + "/", BaselineClusterList.as_view()),
            path(TRIVIAL_PATH.strip("/") + "/", Trivial.as_view()),
            *portal_urlpatterns]


def asgi_app() -> Any:
    """uvicorn --factory entry point: the portal with this module as its URLconf."""
    import django
    from django.conf import settings

    django.setup()
    settings.ROOT_URLCONF = __name__
    from portal.asgi import application

    return application


# --------------------------------------------------------------------------- the harness


@contextmanager
def server(*, workers: int) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONUNBUFFERED": "1",
           "API_RATE_TOKEN": UNLIMITED, "API_RATE_USER": UNLIMITED, "API_RATE_ANON": UNLIMITED}
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"uvicorn-api-{port}.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "bench.bench_api_list:asgi_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
             "--lifespan", "off", "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            import socket

            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                time.sleep(0.1)
            else:
                raise RuntimeError(f"uvicorn did not start; see {log_path}")
            yield "127.0.0.1", port
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)
    if not os.environ.get("BENCH_KEEP_LOG"):
        log_path.unlink(missing_ok=True)


def queries_per_request(path: str, token: str) -> tuple[int, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_AUTHORIZATION=f"Bearer {token}")
    response = client.get(path)
    assert response.status_code == 200, response.content[:300]
    with CaptureQueriesContext(connection) as captured:
        response = client.get(path)
    return len(captured.captured_queries), len(response.json()["results"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=100)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    os.environ.update({"API_RATE_TOKEN": UNLIMITED, "API_RATE_USER": UNLIMITED})

    with throwaway_database("bench_api_list"):
        from tests.api.factories import make_token

        tenant, owner = seed("bench", args.clusters)
        token = make_token(owner, name="bench")
        api_path = f"/api/v1/tenants/{tenant.slug}/clusters/?page_size={args.clusters}"
        queries, rows = queries_per_request(api_path, token)
        print(f"SQL queries per API request: {queries} for {rows} clusters "
              "(token, membership; clusters, node groups, operations)")
        auth = f"Authorization: Bearer {token}\r\n"
        with server(workers=args.workers) as (host, port):
            for path, headers in ((BASELINE_PATH, ""), (api_path, auth), (TRIVIAL_PATH, "")):
                load(host, port, path, headers, clients=2, seconds=1.5, accept=JSON)  # warm up
            base_runs, api_runs, trivial_runs = [], [], []
            for _ in range(args.rounds):
                base_runs.append(load(host, port, BASELINE_PATH, "", clients=args.clients,
                                      seconds=args.seconds, accept=JSON))
                api_runs.append(load(host, port, api_path, auth, clients=args.clients,
                                     seconds=args.seconds, accept=JSON))
                trivial_runs.append(load(host, port, TRIVIAL_PATH, "", clients=args.clients,
                                         seconds=args.seconds / 2, accept=JSON))
        base, api, trivial = merge(base_runs), merge(api_runs), merge(trivial_runs)
        print(f"uvicorn workers: {args.workers}, clients: {args.clients}, "
              f"{args.rounds} × {args.seconds:.0f} s each, {args.clusters} clusters per answer")
        print(base.line("minimal DRF view (baseline)"))
        print(api.line("API cluster list (token)"))
        print(trivial.line("trivial DRF view (reference)"))
        if base.errors or api.errors or trivial.errors:
            print("warning: some requests failed (not counted); see the uvicorn log "
                  "(BENCH_KEEP_LOG=1 keeps it in test-artifacts/bench/)")
        ratio = api.rps / base.rps if base.rps else float("nan")
        p95_ratio = (percentile(api.latencies, 95) / percentile(base.latencies, 95)
                     if base.latencies else float("nan"))
        print(f"throughput ratio API/baseline: {ratio:.2f} (goal >= 0.6) — "
              f"{'met' if ratio >= 0.6 else 'NOT met'}")
        print(f"p95 latency ratio API/baseline: {p95_ratio:.2f} (lower is better)")
        print(f"for reference, API/trivial DRF view: {api.rps / trivial.rps:.2f} throughput; "
              f"baseline/trivial: {base.rps / trivial.rps:.2f} (the serializer's share)")


if __name__ == "__main__":
    main()
