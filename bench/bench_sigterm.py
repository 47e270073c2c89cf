"""SIGTERM with WebSockets open: how long the web role takes to exit.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench REDIS_URL=redis://127.0.0.1:6379/12 \\
        .venv/bin/python bench/bench_sigterm.py [--trials 20] [--clients 50] [--extra-args ...]

Each trial starts the web role the way ``run_portal`` does (``web_command``: a real uvicorn
process, Redis channel layer) on a throwaway database, opens ``--clients`` signed-in
WebSockets (list and detail pages of one tenant), waits a random 0-6 s (so the channel layer's
5 s BZPOPMIN is caught at every point of its cycle), sends SIGTERM and times the exit. A web
role still alive ``--give-up`` seconds after SIGTERM is counted as hung and SIGKILLed.

Printed per trial: seconds to exit, the close codes the clients saw; then how many trials
exited within 10 s. Goal: 20 of 20, every client closed with 1012 (service restart).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._ui_stack import (  # noqa: E402
    LOGS,
    SETTINGS,
    free_port,
    seed,
    session_cookie,
    throwaway_database,
)

GOAL_SECONDS = 10.0


def prepare() -> tuple[str, str, list[str]]:
    from django.db import close_old_connections

    from clusters.models import Cluster

    tenant, owner = seed("sig", 5)
    cookie = session_cookie(owner)
    names = list(Cluster.objects.filter(tenant=tenant).order_by("name")
                 .values_list("name", flat=True))
    close_old_connections()
    return tenant.slug, cookie, names


def start_web(extra: list[str], log_path: Path) -> tuple[subprocess.Popen, int]:
    import django

    django.setup()
    from clusters.management.commands.run_portal import web_command

    port = free_port()
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": SETTINGS, "PYTHONUNBUFFERED": "1"}
    log = log_path.open("w")
    proc = subprocess.Popen([*web_command("127.0.0.1", port), *extra], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    log.close()
    return proc, port


async def wait_port(port: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the web role exited at start")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.1)
            continue
        writer.close()
        return
    raise RuntimeError("the web role did not listen")


async def open_clients(port: int, slug: str, cookie: str, names: list[str], count: int) -> list:
    from websockets.asyncio.client import connect

    origin = f"http://127.0.0.1:{port}"

    async def one(i: int):
        path = (f"/ws/t/{slug}/clusters/?lang=en" if i % 2 == 0
                else f"/ws/t/{slug}/clusters/{names[i % len(names)]}/?lang=en")
        ws = await connect(f"ws://127.0.0.1:{port}{path}", origin=origin,
                           additional_headers=[("Cookie", cookie)], max_size=None,
                           open_timeout=60, ping_interval=None)
        await ws.recv()  # the snapshot: the consumer is connected and receiving
        return ws

    sockets = []
    for start in range(0, count, 25):
        sockets += await asyncio.gather(*(one(i) for i in range(start, min(count, start + 25))))
    return sockets


async def close_code(ws) -> int | None:
    try:
        async for _frame in ws:
            pass
    except Exception:  # noqa: BLE001, S110 - the close code is what is asked for
        pass
    return ws.close_code


async def trial(n: int, args: argparse.Namespace, slug: str, cookie: str,
                names: list[str]) -> tuple[float | None, collections.Counter]:
    LOGS.mkdir(parents=True, exist_ok=True)
    log_path = LOGS / f"sigterm-{n}.log"
    proc, port = start_web(args.extra_args, log_path)
    try:
        await wait_port(port, proc)
        sockets = await open_clients(port, slug, cookie, names, args.clients)
        codes_task = asyncio.gather(*(close_code(ws) for ws in sockets))
        await asyncio.sleep(random.uniform(0, 6))  # noqa: S311 - spread over the BZPOPMIN cycle
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGTERM)
        exited: float | None = None
        while time.monotonic() - sent < args.give_up:
            if proc.poll() is not None:
                exited = time.monotonic() - sent
                break
            await asyncio.sleep(0.05)
        try:
            codes = await asyncio.wait_for(codes_task, 5)
        except TimeoutError:
            codes = ["open"] * len(sockets)
        return exited, collections.Counter(codes)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if not os.environ.get("BENCH_KEEP_LOG"):
            log_path.unlink(missing_ok=True)


async def run(args: argparse.Namespace, slug: str, cookie: str, names: list[str]) -> None:
    times: list[float] = []
    hung = 0
    for n in range(1, args.trials + 1):
        exited, codes = await trial(n, args, slug, cookie, names)
        shown = ", ".join(f"{code}×{count}" for code, count in sorted(codes.items(), key=str))
        if exited is None:
            hung += 1
            print(f"trial {n:2d}: still running {args.give_up:.0f} s after SIGTERM (killed); "
                  f"close codes {shown}", flush=True)
        else:
            times.append(exited)
            print(f"trial {n:2d}: exited {exited:5.2f} s after SIGTERM; close codes {shown}",
                  flush=True)
    within = sum(1 for t in times if t <= GOAL_SECONDS)
    worst = f"{max(times):.2f} s" if times else "n/a"
    print(f"{within} of {args.trials} trials exited within {GOAL_SECONDS:.0f} s of SIGTERM "
          f"({hung} hung; slowest exit {worst}); uvicorn arguments added: "
          f"{' '.join(args.extra_args) or 'none'}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--give-up", type=float, default=30.0)
    parser.add_argument("--extra-args", nargs=argparse.REMAINDER, default=[],
                        help="more uvicorn arguments (the rest of the command line)")
    args = parser.parse_args()
    with throwaway_database("bench_sigterm"):
        asyncio.run(run(args, *prepare()))


if __name__ == "__main__":
    main()
