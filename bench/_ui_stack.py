"""Shared pieces of the cluster-page benchmarks: a throwaway database with seeded clusters, the
portal under uvicorn (plus a minimal baseline view on the same server), a small keep-alive HTTP
load generator, percentiles."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
SETTINGS = "bench.settings_bench"
LOGS = ROOT / "test-artifacts" / "bench"
# Close each request's database connection when it ends (see settings_bench.py).
os.environ.setdefault("BENCH_CONN_MAX_AGE", "0")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


@contextmanager
def throwaway_database(prefix: str) -> Iterator[str]:
    """Create ``<prefix>_<pid>`` next to DATABASE_URL's database, migrate it, drop it after."""
    import psycopg

    base = os.environ.get("DATABASE_URL", "")
    if not base.startswith(("postgres://", "postgresql://")):
        sys.exit("Set DATABASE_URL=postgres://… (the benchmarks need PostgreSQL).")
    name = f"{prefix}_{os.getpid()}"
    parts = urlsplit(base)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{name}"))
    os.environ["DJANGO_SETTINGS_MODULE"] = SETTINGS
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    started = time.perf_counter()
    call_command("migrate", verbosity=0)
    print(f"database {name}: migrated in {time.perf_counter() - started:.1f} s")
    from django.core.cache import cache

    cache.clear()  # nothing cached by an earlier run (same ids, other rows) may be served
    try:
        yield os.environ["DATABASE_URL"]
    finally:
        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def seed(slug: str, clusters: int, *, groups: int = 2, events: int = 3):
    """A tenant with an owner and ``clusters`` running clusters (bulk inserts)."""
    from django.utils import timezone

    from clusters import progress
    from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
    from portal.models import Membership, Tenant
    from portal.permissions import Role
    from tests.factories import UserFactory

    tenant = Tenant.objects.create(slug=slug, name=slug.title())
    owner = UserFactory()
    Membership.objects.create(tenant=tenant, user=owner, role=Role.OWNER)
    now = timezone.now()
    rows = Cluster.objects.bulk_create([
        Cluster(tenant=tenant, name=f"c{i:04d}", version="v1.34" if i % 3 else "v1.33",
                phase=Cluster.Phase.FAILED if i % 50 == 7 else Cluster.Phase.RUNNING,
                status_message="Running: 3 nodes ready.", platform_ready=True,
                last_error="Helm upgrade failed: timeout" if i % 50 == 7 else "",
                kubeconfig_ready=True, last_observed_at=now) for i in range(clusters)])
    NodeGroup.objects.bulk_create([
        NodeGroup(cluster=c, name=f"md{g}", position=g, instance_type="u1.medium",
                  min_replicas=1, max_replicas=3, disk_gib=50, desired_nodes=2,
                  observed_nodes=2, ready_nodes=2) for c in rows for g in range(groups)])
    Operation.objects.bulk_create([
        Operation(tenant=tenant, cluster=c, kind="create", state="succeeded",
                  steps=progress.initial_steps("create"), created_at=now) for c in rows])
    ClusterEvent.objects.bulk_create([
        ClusterEvent(tenant=tenant, cluster=c, source="platform", reason="Test",
                     message=f"event {e}", at=now) for c in rows for e in range(events)])
    _meter(rows, now)
    return tenant, owner


def _meter(clusters, now) -> None:
    """A month of usage in the ledger, as the watcher records it: one node per group from the
    start of the month, two for the last hour (so each cluster has closed and open segments
    for its nodes, disks and control plane, and a month-to-date cost)."""
    from datetime import timedelta

    from django.db import transaction

    from billing import metering
    from billing.periods import Period
    from clusters.models import NodeGroup

    start = Period.current(now).start_at
    groups: dict[int, list] = {}
    for group in NodeGroup.objects.filter(cluster__in=clusters).order_by("position"):
        groups.setdefault(group.cluster_id, []).append(group)
    with transaction.atomic():
        for cluster in clusters:
            mine = groups.get(cluster.pk, [])
            for when, nodes in ((start, 1), (max(start + timedelta(seconds=1),
                                                 now - timedelta(hours=1)), 2)):
                for group in mine:
                    group.observed_nodes = nodes
                metering.observe_cluster(cluster, mine, when)


def session_cookie(user) -> str:
    from django.test import Client

    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def uvicorn(*, workers: int = 1) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONUNBUFFERED": "1"}
    LOGS.mkdir(parents=True, exist_ok=True)
    log = open(LOGS / f"uvicorn-{port}.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--workers", str(workers), "--lifespan", "off",
         "--log-level", "warning", "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 120  # a loaded machine takes its time
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    else:
        import signal

        os.killpg(proc.pid, signal.SIGKILL)  # its workers too
        raise RuntimeError(f"uvicorn did not start; see {log.name}")
    try:
        yield "127.0.0.1", port
    finally:
        import signal

        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # open WebSockets can hold a graceful shutdown
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        log.close()
        if not os.environ.get("BENCH_KEEP_LOG"):
            Path(log.name).unlink(missing_ok=True)


# --------------------------------------------------------------------------- HTTP load


@dataclass
class Load:
    latencies: list[float]
    errors: int
    seconds: float

    @property
    def rps(self) -> float:
        return len(self.latencies) / self.seconds

    def line(self, label: str) -> str:
        p50 = percentile(self.latencies, 50) * 1000
        p95 = percentile(self.latencies, 95) * 1000
        return (f"{label:<28} {self.rps:8.1f} req/s   p50 {p50:7.1f} ms   p95 {p95:7.1f} ms"
                f"   errors {self.errors}")


def merge(loads: list[Load]) -> Load:
    """Rounds of the same load as one (latencies pooled, seconds added)."""
    return Load([x for item in loads for x in item.latencies],
                sum(item.errors for item in loads), sum(item.seconds for item in loads))


async def _read_response(reader: asyncio.StreamReader) -> int:
    status_line = await reader.readline()
    status = int(status_line.split()[1])
    length, chunked = None, False
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status


async def _client(host: str, port: int, request: bytes, until: float,
                  latencies: list[float], errors: list[int]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < until:
            started = time.perf_counter()
            writer.write(request)
            status = await _read_response(reader)
            if status == 200:
                latencies.append(time.perf_counter() - started)
            else:
                errors.append(status)
    finally:
        writer.close()


def load(host: str, port: int, path: str, headers: str = "", *, clients: int, seconds: float,
         accept: str = "text/html") -> Load:
    """``clients`` keep-alive connections sending GET ``path`` back to back for ``seconds``;
    ``headers`` are extra header lines, each ending in CRLF (``cookie_header``, a token)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{headers}"
               f"Accept: {accept}\r\n\r\n").encode()
    latencies: list[float] = []
    errors: list[int] = []

    async def main() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(*(_client(host, port, request, until, latencies, errors)
                               for _ in range(clients)))

    started = time.perf_counter()
    asyncio.run(main())
    return Load(latencies, len(errors), time.perf_counter() - started)


def cookie_header(cookie: str) -> str:
    return f"Cookie: {cookie}\r\n"
