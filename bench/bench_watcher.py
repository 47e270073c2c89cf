"""Watcher benchmark: throughput, lag from a platform change to the committed row, and memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/portal REDIS_URL=redis://127.0.0.1:6379/0 \\
        .venv/bin/python bench/bench_watcher.py [--clusters 1000] [--rate 100] [--seconds 20] \\
        [--memory-clusters 10000] [--skip-memory]

A throwaway database (created next to DATABASE_URL's, dropped at the end) holds the portal's
rows; a simulated platform runs in its own process (``_platform_driver.py``) with the same
clusters (3 node groups each) and changes MachineDeployments at the given rate; the watcher
runs here, as in ``manage.py watch_platform``. Figures are printed against baselines measured
in the same run: the bare watch delivery latency (the floor for any watcher) and the cost of
one committed row (the floor for any database write). Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings_test")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


# --------------------------------------------------------------------------- throwaway database

def create_database(base_url: str, name: str) -> str:
    import psycopg

    parts = urlsplit(base_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(parts._replace(path=f"/{name}"))


def drop_database(base_url: str, name: str) -> None:
    import psycopg
    from django.db import connections

    connections.close_all()
    admin = urlunsplit(urlsplit(base_url)._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --------------------------------------------------------------------------- the platform process

class Driver:
    def __init__(self, clusters: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench/_platform_driver.py"), "--clusters", str(clusters)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"platform driver failed: {line}")
        self.port, self.kubeconfig = int(line[1]), line[2]
        self.inventory = json.loads(Path(line[3]).read_text())

    def go(self, rate: float, seconds: float) -> dict[str, float]:
        self.proc.stdin.write(f"GO {rate} {seconds}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        return json.loads(Path(line[1]).read_text())

    def start_go(self, rate: float, seconds: float) -> threading.Thread:
        result: dict[str, Any] = {}
        thread = threading.Thread(target=lambda: result.update(times=self.go(rate, seconds)))
        thread.result = result  # type: ignore[attr-defined]
        thread.start()
        return thread

    def stop(self) -> None:
        try:
            self.proc.stdin.write("QUIT\n")
            self.proc.stdin.flush()
            self.proc.wait(10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            self.proc.kill()


# --------------------------------------------------------------------------- portal rows

def setup_rows(inventory: list[dict[str, Any]]) -> None:
    """The portal's rows matching the platform exactly, in bulk (the initial list then writes
    nothing): tenants, running clusters, three groups of one ready node each."""
    from django.core.management import call_command
    from django.db import connection, connections

    from clusters.models import Cluster, NodeGroup
    from portal.models import Tenant

    # Setup only: commits need not wait for the disk (reset before anything is measured).
    connection.settings_dict.setdefault("OPTIONS", {})["options"] = "-c synchronous_commit=off"
    connections.close_all()
    call_command("migrate", verbosity=0)
    tenants = {ns: Tenant(slug=ns.removeprefix("tenant-"), name=ns)
               for ns in sorted({i["namespace"] for i in inventory})}
    Tenant.objects.bulk_create(tenants.values(), batch_size=1000)
    by_slug = {t.slug: t for t in Tenant.objects.all()}
    clusters = [Cluster(tenant=by_slug[i["namespace"].removeprefix("tenant-")], name=i["name"],
                        version="v1.34", phase=Cluster.Phase.RUNNING, conditions=i["conditions"],
                        platform_ready=True, kubeconfig_ready=True, chart_revision="0.31.2",
                        platform_resource_version=i["rv"], status_message="Running.")
                for i in inventory]
    Cluster.objects.bulk_create(clusters, batch_size=2000)
    groups = [NodeGroup(cluster=c, name=g, position=p, instance_type="u1.large",
                        min_replicas=1, max_replicas=5, disk_gib=30, desired_nodes=1,
                        observed_nodes=1, ready_nodes=1, updated_nodes=1,
                        observed_phase="Running")
              for c in Cluster.objects.all() for p, g in enumerate(("md0", "md1", "md2"))]
    NodeGroup.objects.bulk_create(groups, batch_size=5000)
    connection.settings_dict["OPTIONS"].pop("options")
    connections.close_all()


def commit_baseline(samples: int = 200) -> list[float]:
    """Milliseconds for one committed single-row UPDATE (what every applied change needs)."""
    from django.db import transaction

    from clusters.models import NodeGroup

    ids = list(NodeGroup.objects.values_list("pk", flat=True)[:samples])
    times = []
    for pk in ids:
        start = time.perf_counter()
        with transaction.atomic():
            NodeGroup.objects.filter(pk=pk).update(updated_nodes=1)
        times.append((time.perf_counter() - start) * 1000)
    return times


def delivery_baseline(driver: Driver, rate: float, seconds: float) -> list[float]:
    """Seconds from a change on the platform to its event reaching a bare watch here."""
    from clusters.platform.gateway import MACHINE_DEPLOYMENTS, get_gateway

    gateway = get_gateway()
    _items, rv = gateway.list_resource(MACHINE_DEPLOYMENTS, namespace="tenant-t000")
    arrived: dict[str, float] = {}
    stop = threading.Event()

    def consume() -> None:
        for event in gateway.watch(MACHINE_DEPLOYMENTS, rv, timeout_seconds=int(seconds) + 30,
                                   stop=stop):
            seq = (event.object.get("status") or {}).get("observedGeneration")
            if seq:
                arrived[str(seq)] = time.time()

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(0.5)
    sent = driver.go(rate, seconds)
    time.sleep(1.0)
    stop.set()
    gateway.interrupt_watches(stop)
    thread.join(5)
    return [arrived[s] - t for s, t in sent.items() if s in arrived]


# --------------------------------------------------------------------------- the watcher

class Instrumented:
    """Records when the row of each numbered change is committed."""

    def __init__(self) -> None:
        from clusters import observe

        self.committed: dict[str, float] = {}
        self.pushes = 0
        self._original = observe.apply_machine_deployment

        def apply(namespace: str, obj: dict[str, Any], **kw: Any) -> bool:
            from django.db import transaction

            changed = self._original(namespace, obj, **kw)
            seq = (obj.get("status") or {}).get("observedGeneration")
            if seq:
                transaction.on_commit(lambda: self.committed.__setitem__(str(seq), time.time()))
            return changed

        observe.apply_machine_deployment = apply

    def push(self, cluster_id: int) -> None:
        self.pushes += 1


def run_load(driver: Driver, probe: Instrumented, rate: float, seconds: float
             ) -> dict[str, float]:
    before = dict(probe.committed)
    start = time.time()
    sent = driver.go(rate, seconds)
    deadline = time.time() + 30
    while time.time() < deadline and not all(s in probe.committed for s in sent):
        time.sleep(0.1)
    done = [s for s in sent if s in probe.committed and s not in before]
    lags = [probe.committed[s] - sent[s] for s in done]
    last = max((probe.committed[s] for s in done), default=start)
    return {
        "sent": len(sent), "applied": len(done),
        "rate_sent": len(sent) / seconds,
        "rate_applied": len(done) / max(1e-9, last - start),
        "p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": max(lags or [0]),
    }


def lag_and_throughput(args: argparse.Namespace, base_url: str) -> None:
    print(f"\n== watcher: {args.clusters} clusters x 3 node groups ==")
    name = f"bench_watcher_{os.getpid()}"
    url = create_database(base_url, name)
    os.environ["DATABASE_URL"] = url
    driver = Driver(args.clusters)
    os.environ["KUBECONFIG"] = driver.kubeconfig
    import django

    django.setup()
    from clusters.platform.gateway import get_gateway
    from clusters.watcher import Watcher

    try:
        setup_rows(driver.inventory)
        commits = commit_baseline()
        print(f"baseline: one committed row p50 {percentile(commits, 50):.1f} ms "
              f"(floor: {1000 / percentile(commits, 50):.0f} serial commits/s)")
        probe = Instrumented()
        started = time.perf_counter()
        watcher = Watcher(get_gateway(), push=probe.push).start()
        watcher.synced.wait(600)
        print(f"initial list of {args.clusters} clusters (rows already in step): "
              f"{time.perf_counter() - started:.1f} s")
        results = [(rate, seconds, run_load(driver, probe, rate, seconds))
                   for rate, seconds in ((args.rate, args.seconds),
                                         (args.rate * 4, args.seconds / 2))]
        watcher.stop()
        delivery = delivery_baseline(driver, args.rate, 5)
        print(f"baseline: bare watch delivery (platform change → event in this process) "
              f"p50 {percentile(delivery, 50) * 1000:.1f} ms, "
              f"p95 {percentile(delivery, 95) * 1000:.1f} ms")
        for _rate, seconds, result in results:
            print(f"{result['rate_sent']:.0f} changes/s for {seconds:.0f} s: applied "
                  f"{result['applied']}/{result['sent']} at {result['rate_applied']:.0f}/s; "
                  f"lag p50 {result['p50'] * 1000:.0f} ms, p95 {result['p95'] * 1000:.0f} ms, "
                  f"max {result['max'] * 1000:.0f} ms; p95 / bare delivery p95 = "
                  f"{result['p95'] / max(1e-9, percentile(delivery, 95)):.1f}x; "
                  f"p95 / 1 s goal = {result['p95']:.2f}")
        print(f"live-page pushes sent by the coalescer: {probe.pushes}")
    finally:
        driver.stop()
        drop_database(base_url, name)


def memory(args: argparse.Namespace, base_url: str) -> None:
    print(f"\n== watcher memory: {args.memory_clusters} clusters tracked ==")
    name = f"bench_watcher_mem_{os.getpid()}"
    url = create_database(base_url, name)
    os.environ["DATABASE_URL"] = url
    driver = Driver(args.memory_clusters)
    os.environ["KUBECONFIG"] = driver.kubeconfig
    import django

    django.setup()
    from clusters.platform.gateway import get_gateway
    from clusters.watcher import Watcher

    try:
        setup_rows(driver.inventory)
        inventory_size = len(driver.inventory)
        driver.inventory = []
        baseline = rss_mb()
        started = time.perf_counter()
        probe = Instrumented()
        watcher = Watcher(get_gateway(), push=probe.push).start()
        watcher.synced.wait(1200)
        synced = time.perf_counter() - started
        after_sync = rss_mb()
        driver.go(args.rate, 10)
        time.sleep(2)
        after_load = rss_mb()
        watcher.stop()
        print(f"process before the watcher (Django, client, rows set up): {baseline:.0f} MB")
        print(f"after listing {inventory_size} clusters, {3 * inventory_size} node groups and "
              f"{inventory_size} kubeconfigs ({synced:.1f} s): {after_sync:.0f} MB; after 10 s "
              f"at {args.rate:.0f} changes/s: {after_load:.0f} MB resident "
              f"(goal 300 MB: {after_load / 300:.2f}x of it; the watcher's own share "
              f"{after_load - baseline:.0f} MB)")
    finally:
        driver.stop()
        drop_database(base_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--memory-clusters", type=int, default=10_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-lag", action="store_true")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/portal")
    if not args.skip_lag:
        lag_and_throughput(args, base_url)
        if not args.skip_memory:  # in a fresh process: resident memory of this one alone
            subprocess.run([sys.executable, __file__, "--skip-lag", "--rate", str(args.rate),
                            "--memory-clusters", str(args.memory_clusters)], check=True)
    elif not args.skip_memory:
        memory(args, base_url)


if __name__ == "__main__":
    main()
