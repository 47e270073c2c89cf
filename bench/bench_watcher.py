"""Watcher benchmark: throughput, lag from a platform change to the committed row, and memory.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_watcher.py [--clusters 1000] [--rate 100] [--seconds 20] \\
        [--burst-rate 2000] [--memory-clusters 10000] [--skip-memory] [--no-push]

A throwaway database (created next to DATABASE_URL's, dropped at the end) holds the portal's
rows; a simulated platform runs in its own process (``_platform_driver.py``) with the same
clusters (3 node groups each) and changes MachineDeployments at the given rate (then at 4×
that rate, then as fast as it can up to ``--burst-rate``, which shows the most events per
second the watcher applies); the watcher runs here, as in ``manage.py watch_platform``, with
production settings (DEBUG off) and its live-page notices sent to the Redis channel layer by
the coalescer thread, as in production (``--no-push`` only counts them: the cost of the
watcher alone; ``bench_live.py`` follows the pushes to the pages). Figures are printed
against baselines measured in the same run: the bare watch delivery latency (the floor for
any watcher) and the cost of one committed row (the floor for any database write). Memory is
measured in a fresh process tracking ``--memory-clusters`` clusters. Goals: lag p95 under 1 s
at 100 changes/s; under 300 MB resident with 10,000 clusters. Nothing is asserted.
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
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.settings_bench")


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
    def __init__(self, clusters: int, *, scale: bool = False) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench/_platform_driver.py"), "--clusters", str(clusters),
             *(["--scale"] if scale else [])],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline().split()
        if not line or line[0] != "READY":
            raise RuntimeError(f"platform driver failed: {line}")
        self.port, self.kubeconfig = int(line[1]), line[2]
        self.inventory = json.loads(Path(line[3]).read_text())

    def go(self, rate: float, seconds: float) -> dict[str, float]:
        """{seq: wall time of the platform's write} of the changes made."""
        self.proc.stdin.write(f"GO {rate} {seconds}\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline().split()
        sent = json.loads(Path(line[1]).read_text())
        # With --scale, each change also names its cluster: [time, namespace, name].
        return {seq: at[0] if isinstance(at, list) else at for seq, at in sent.items()}

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
                        platform_ready=True, kubeconfig_ready=True, chart_revision="1.6.2",
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
    from cozystack.gateway import MACHINE_DEPLOYMENTS, get_gateway

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
    """Records when the row of each numbered change is committed, and the live-page pushes
    of the coalescer: rendered and sent to the channel layer as in production (unless
    ``real_push`` is False), with the time from a cluster's first unpushed commit to its push."""

    def __init__(self, *, real_push: bool = True) -> None:
        from clusters import observe
        from clusters.models import Cluster
        from clusters.web import broadcast

        self.committed: dict[str, float] = {}
        self.pushes = 0
        self.push_seconds = 0.0
        self.push_lags: list[float] = []
        self.unpushed: dict[int, float] = {}  # cluster id → first commit not yet pushed
        self.stopped = False
        self._send = broadcast.cluster_changed if real_push else None
        self._original = observe.apply_machine_deployment
        ids = {(f"tenant-{slug}", name): pk for slug, name, pk in
               Cluster.objects.values_list("tenant__slug", "name", "pk")}

        def apply(namespace: str, obj: dict[str, Any], **kw: Any) -> bool:
            from django.db import transaction

            changed = self._original(namespace, obj, **kw)
            seq = (obj.get("status") or {}).get("observedGeneration")
            located = observe.group_of(obj)
            pk = ids.get((namespace, located[0])) if located else None

            def committed() -> None:
                now = time.time()
                if seq:
                    self.committed[str(seq)] = now
                if pk is not None:
                    self.unpushed.setdefault(pk, now)

            transaction.on_commit(committed)
            return changed

        observe.apply_machine_deployment = apply

    def push(self, cluster_id: int) -> None:
        if self.stopped:  # the backlog left when the watcher stops is not sent
            return
        first = self.unpushed.pop(cluster_id, None)
        started = time.perf_counter()
        if self._send is not None:
            self._send(cluster_id)
        self.push_seconds += time.perf_counter() - started
        self.pushes += 1
        if first is not None:
            self.push_lags.append(time.time() - first)


def run_load(driver: Driver, probe: Instrumented, rate: float, seconds: float
             ) -> dict[str, float]:
    before = dict(probe.committed)
    pushes_before = len(probe.push_lags)
    start = time.time()
    sent = driver.go(rate, seconds)
    deadline = time.time() + 30
    while time.time() < deadline and not all(s in probe.committed for s in sent):
        time.sleep(0.1)
    done = [s for s in sent if s in probe.committed and s not in before]
    lags = [probe.committed[s] - sent[s] for s in done]
    last = max((probe.committed[s] for s in done), default=start)
    push_lags = probe.push_lags[pushes_before:]
    return {
        "sent": len(sent), "applied": len(done),
        "rate_sent": len(sent) / seconds,
        "rate_applied": len(done) / max(1e-9, last - start),
        "p50": percentile(lags, 50), "p95": percentile(lags, 95), "max": max(lags or [0]),
        "pushes": len(push_lags), "push_p95": percentile(push_lags, 95),
        "backlog": len(probe.unpushed),
    }


def lag_and_throughput(args: argparse.Namespace, base_url: str) -> None:
    print(f"\n== watcher: {args.clusters} clusters x 3 node groups ==")
    name = f"bench_watcher_{os.getpid()}"
    url = create_database(base_url, name)
    os.environ["DATABASE_URL"] = url
    driver = Driver(args.clusters, scale=args.scale)
    os.environ["KUBECONFIG"] = driver.kubeconfig
    import django

    django.setup()
    from clusters.watcher import Watcher
    from cozystack.gateway import get_gateway

    try:
        setup_rows(driver.inventory)
        commits = commit_baseline()
        print(f"baseline: one committed row p50 {percentile(commits, 50):.1f} ms "
              f"(floor: {1000 / percentile(commits, 50):.0f} serial commits/s)")
        probe = Instrumented(real_push=not args.no_push)
        started = time.perf_counter()
        watcher = Watcher(get_gateway(), push=probe.push).start()
        watcher.synced.wait(600)
        print(f"initial list of {args.clusters} clusters (rows already in step): "
              f"{time.perf_counter() - started:.1f} s")
        probe.unpushed.clear()
        results = [(rate, seconds, run_load(driver, probe, rate, seconds))
                   for rate, seconds in ((args.rate, args.seconds),
                                         (args.rate * 4, args.seconds / 2),
                                         (args.burst_rate, 5.0))]
        probe.stopped = True
        watcher.stop()
        delivery = delivery_baseline(driver, args.rate, 5)
        print(f"baseline: bare watch delivery (platform change → event in this process) "
              f"p50 {percentile(delivery, 50) * 1000:.1f} ms, "
              f"p95 {percentile(delivery, 95) * 1000:.1f} ms")
        for rate, seconds, result in results:
            print(f"{result['rate_sent']:.0f} changes/s for {seconds:.0f} s (asked {rate:.0f}/s): "
                  f"applied {result['applied']}/{result['sent']} at "
                  f"{result['rate_applied']:.0f}/s; lag p50 {result['p50'] * 1000:.0f} ms, "
                  f"p95 {result['p95'] * 1000:.0f} ms, max {result['max'] * 1000:.0f} ms; "
                  f"p95 / bare delivery p95 = "
                  f"{result['p95'] / max(1e-9, percentile(delivery, 95)):.0f}x")
            if not args.no_push:
                print(f"    live-page pushes during it: {result['pushes']}, commit → push sent "
                      f"p95 {result['push_p95']:.1f} s; clusters still waiting for their push "
                      f"at the end: {result['backlog']}")
        first = results[0][2]
        print(f"goal: lag p95 < 1 s at {args.rate:.0f} changes/s: p95 {first['p95']:.3f} s "
              f"({first['p95']:.2f}x of the goal) — "
              f"{'met' if first['p95'] < 1 and first['applied'] == first['sent'] else 'NOT met'}")
        print(f"live-page pushes by the coalescer: {probe.pushes}"
              + (" (counted, not rendered: --no-push)" if args.no_push else
                 f", {probe.push_seconds / max(1, probe.pushes) * 1000:.0f} ms each "
                 f"(notices sent to the Redis channel layer, in the watcher's process)"))
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
    from clusters.watcher import Watcher
    from cozystack.gateway import get_gateway

    try:
        setup_rows(driver.inventory)
        inventory_size = len(driver.inventory)
        driver.inventory = []
        baseline = rss_mb()
        started = time.perf_counter()
        probe = Instrumented(real_push=not args.no_push)
        watcher = Watcher(get_gateway(), push=probe.push).start()
        watcher.synced.wait(1200)
        synced = time.perf_counter() - started
        after_sync = rss_mb()
        driver.go(args.rate, 10)
        time.sleep(2)
        after_load = rss_mb()
        probe.stopped = True
        watcher.stop()
        print(f"baseline: process before the watcher (Django, client, rows set up): "
              f"{baseline:.0f} MB resident")
        print(f"after listing {inventory_size} clusters, {3 * inventory_size} node groups and "
              f"{inventory_size} kubeconfigs ({synced:.1f} s): {after_sync:.0f} MB; after 10 s "
              f"at {args.rate:.0f} changes/s: {after_load:.0f} MB resident (the watcher's own "
              f"share {after_load - baseline:.0f} MB)")
        print(f"goal: under 300 MB resident with {inventory_size} clusters: {after_load:.0f} MB "
              f"({after_load / 300:.2f}x of the goal) — "
              f"{'met' if after_load < 300 else 'NOT met'}")
    finally:
        driver.stop()
        drop_database(base_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--burst-rate", type=float, default=2000.0)
    parser.add_argument("--memory-clusters", type=int, default=10_000)
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--skip-lag", action="store_true")
    parser.add_argument("--no-push", action="store_true",
                        help="count live-page pushes instead of rendering and sending them")
    parser.add_argument("--scale", action="store_true",
                        help="each change scales a group (spec and status in one write, the "
                             "cluster stays Running), as bench_live.py drives the platform; "
                             "by default a group's ready count flips (the cluster turns "
                             "Degraded and Running again)")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/bench")
    if not args.skip_lag:
        lag_and_throughput(args, base_url)
        if not args.skip_memory:  # in a fresh process: resident memory of this one alone
            subprocess.run([sys.executable, __file__, "--skip-lag", "--rate", str(args.rate),
                            "--memory-clusters", str(args.memory_clusters)]
                           + (["--no-push"] if args.no_push else []), check=True)
    elif not args.skip_memory:
        memory(args, base_url)


if __name__ == "__main__":
    main()
