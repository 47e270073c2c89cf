"""Fan-out benchmark: 1,000 open cluster-list pages of one tenant, one cluster changes.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/11 \\
        .venv/bin/python bench/bench_fanout.py [--clients 1000] [--events 30] [--workers 2]

The portal runs under uvicorn (``--workers`` processes, Redis channel layer) on a throwaway
database. ``--clients`` WebSocket clients sign in with a session cookie and open the list
page's socket; each first gets the snapshot. A separate process plays the watcher, as
``manage.py watch_platform`` runs it: an ``events.Coalescer`` is installed, the change of
one cluster is committed with ``events.cluster_changed`` (what ``clusters.observe`` does), and
the coalescer's thread renders the messages once per language and sends them to the tenant
group. Timed: from the commit until every client has the new row. (The watcher has its own
process so that its rendering does not compete with the clients for this interpreter.)

Baseline in the same run, from the same process: a bare channel-layer ``group_send`` of an
already rendered message of the same size to the same group (no database, no rendering).
Printed: p50/p95 of the time until every client has it, per-client latency, and the ratio.
Goal: p95 under 250 ms. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._ui_stack import (  # noqa: E402
    SETTINGS,
    percentile,
    seed,
    session_cookie,
    throwaway_database,
    uvicorn,
)

TOKEN = re.compile(r"bench-(seq|base)-(\d+)")


class Clients:
    """Connected sockets; ``seen[(kind, n)]`` collects the arrival time at each client."""

    def __init__(self) -> None:
        self.seen: dict[tuple[str, int], list[float]] = {}
        self.sockets: list = []

    async def connect(self, uri: str, origin: str, cookie: str, count: int) -> None:
        from websockets.asyncio.client import connect

        async def one() -> None:
            ws = await connect(uri, origin=origin, additional_headers=[("Cookie", cookie)],
                               max_size=None, open_timeout=60, ping_interval=None)
            await ws.recv()  # the snapshot
            self.sockets.append(ws)
            asyncio.get_running_loop().create_task(self._listen(ws))

        for start in range(0, count, 50):
            await asyncio.gather(*(one() for _ in range(min(50, count - start))))

    async def _listen(self, ws) -> None:
        try:
            async for frame in ws:
                now = time.time()
                match = TOKEN.search(frame)
                if match:
                    self.seen.setdefault((match.group(1), int(match.group(2))), []).append(now)
        except Exception:  # noqa: BLE001, S110 - closed at the end
            pass

    async def wait_all(self, key: tuple[str, int], count: int, timeout: float = 10) -> bool:
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            if len(self.seen.get(key, ())) >= count:
                return True
            await asyncio.sleep(0.002)
        return False

    async def close(self) -> None:
        for start in range(0, len(self.sockets), 50):
            await asyncio.gather(*(ws.close() for ws in self.sockets[start:start + 50]),
                                 return_exceptions=True)
            await asyncio.sleep(0.05)


# --------------------------------------------------------------------------- the watcher process


def watcher_process(cluster_id: int) -> None:
    """``--watcher``: read ``seq N`` / ``base N`` / ``quit`` on stdin; answer ``T <time>``, the
    wall-clock instant of the commit (or of the bare send)."""
    import django

    django.setup()
    from asgiref.sync import async_to_sync
    from channels.layers import get_channel_layer
    from django.db import transaction

    from clusters import events
    from clusters.models import Cluster
    from clusters.web.live import render_cluster_messages

    # The baseline's message: the row as rendered for this state, its marker replaced per send.
    Cluster.objects.filter(pk=cluster_id).update(status_message="Running: bench-seq-0")
    group, message = next(iter(render_cluster_messages(cluster_id)))
    coalescer = events.Coalescer().start()  # as Watcher.start() installs it
    layer = get_channel_layer()
    print("READY", flush=True)
    for line in sys.stdin:
        kind, _, n = line.strip().partition(" ")
        if kind == "seq":
            committed: list[float] = []
            with transaction.atomic():
                cluster = Cluster.objects.select_for_update().get(pk=cluster_id)
                cluster.status_message = f"Running: bench-seq-{n}"
                cluster.save(update_fields=["status_message", "updated_at"])
                transaction.on_commit(lambda done=committed: done.append(time.time()))
                events.cluster_changed(cluster_id)  # → coalescer thread → broadcast
            print(f"T {committed[0]}", flush=True)
        elif kind == "base":
            html = {lang: text.replace("bench-seq-0", f"bench-base-{n}")
                    for lang, text in message["html"].items()}
            sent = time.time()
            async_to_sync(layer.group_send)(group, {**message, "html": html})
            print(f"T {sent}", flush=True)
        else:
            break
    coalescer.stop()


class Watcher:
    def __init__(self, cluster_id: int) -> None:
        self.cluster_id = cluster_id
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--watcher", str(self.cluster_id), cwd=ROOT, env=env,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = await self.proc.stdout.readline()
        if line.strip() != b"READY":
            raise RuntimeError(f"the watcher process did not start: {line!r}")

    async def do(self, kind: str, n: int) -> float:
        self.proc.stdin.write(f"{kind} {n}\n".encode())
        await self.proc.stdin.drain()
        line = (await self.proc.stdout.readline()).split()
        return float(line[1])

    async def stop(self) -> None:
        self.proc.stdin.write(b"quit\n")
        await self.proc.stdin.drain()
        await asyncio.wait_for(self.proc.wait(), 15)


# --------------------------------------------------------------------------- the run


def prepare() -> tuple[str, str, int]:
    from django.db import close_old_connections

    from clusters.models import Cluster

    tenant, owner = seed("fan", 10)
    cookie = session_cookie(owner)
    cluster = Cluster.objects.filter(tenant=tenant).order_by("name").first()
    close_old_connections()
    return tenant.slug, cookie, cluster.pk


async def run(args: argparse.Namespace, slug: str, cookie: str, cluster_id: int) -> None:
    with uvicorn(workers=args.workers) as (host, port):
        clients = Clients()
        started = time.perf_counter()
        await clients.connect(f"ws://{host}:{port}/ws/t/{slug}/clusters/?lang=en",
                              f"http://{host}:{port}", cookie, args.clients)
        print(f"{args.clients} sockets open in {time.perf_counter() - started:.1f} s "
              f"(uvicorn workers: {args.workers}, Redis channel layer)")
        watcher = Watcher(cluster_id)
        await watcher.start()
        results: dict[str, list[float]] = {"seq": [], "base": []}
        per_client: dict[str, list[float]] = {"seq": [], "base": []}
        missed = 0
        for n in range(1, args.events + 1):
            for kind in ("seq", "base"):
                t0 = await watcher.do(kind, n)
                if not await clients.wait_all((kind, n), args.clients):
                    missed += 1
                    print(f"event {kind}-{n}: only {len(clients.seen.get((kind, n), []))} of "
                          f"{args.clients} clients got it within 10 s")
                    continue
                arrivals = clients.seen[(kind, n)]
                results[kind].append(max(arrivals) - t0)
                per_client[kind].extend(a - t0 for a in arrivals)
                await asyncio.sleep(0.1)
        await watcher.stop()
        await clients.close()

    def ms(values: list[float], p: float) -> float:
        return percentile(values, p) * 1000

    for kind, label in (("seq", "commit → every client (portal)"),
                        ("base", "bare group_send → every client")):
        print(f"{label:<34} p50 {ms(results[kind], 50):6.1f} ms   p95 "
              f"{ms(results[kind], 95):6.1f} ms   per-client p95 {ms(per_client[kind], 95):6.1f} ms"
              f"   ({len(results[kind])} events)")
    print(f"p95 ratio portal / bare group_send: "
          f"{percentile(results['seq'], 95) / percentile(results['base'], 95):.2f}; "
          f"goal p95 < 250 ms: {'met' if ms(results['seq'], 95) < 250 else 'NOT met'}"
          + (f"; {missed} events not delivered to every client" if missed else ""))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--events", type=int, default=30)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--watcher", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.watcher:
        watcher_process(args.watcher)
        return
    with throwaway_database("bench_fanout"):
        asyncio.run(run(args, *prepare()))


if __name__ == "__main__":
    main()
