"""The deployment under test: the suite's own PostgreSQL and Redis servers, the simulated
management cluster, and every role of the portal as its own process.

Two Redis servers: one is the Celery broker (``REDIS_URL``), the other holds the cache and the
channel layer (``CACHE_REDIS_URL``, ``CHANNELS_REDIS_URL``), so a fault can take the broker
away alone. Each role's database sessions carry its name (``application_name``), so the
watcher holding the leader lock can be named from ``pg_stat_activity``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import urllib.request
from collections import Counter
from pathlib import Path

from bench.chaos.checks import Database, Platform
from bench.chaos.infra import InfraError, Postgres, Redis, listening, pick_port, wait_until
from bench.chaos.roles import ROOT, Role, now

SETTINGS = "bench.chaos.settings"
DATABASE = "chaos"
# What runs between faults: the production topology at its smallest with more than one worker.
BASELINE = {"platform": 1, "web": 1, "worker": 2, "beat": 1, "watcher": 1}


def web_command(port: int) -> list[str]:
    """The production web command (``run_portal``'s, when it can be imported) with 2 workers."""
    try:
        from clusters.management.commands.run_portal import web_command as portal_web
        command = portal_web("127.0.0.1", port)
    except Exception:  # noqa: BLE001 - the README's command, if run_portal changed shape
        command = [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host",
                   "127.0.0.1", "--port", str(port), "--lifespan", "off", "--no-proxy-headers"]
    return [*command, "--workers", "2", "--no-access-log"]


class Stack:
    def __init__(self, workdir: Path, logs: Path) -> None:
        self.workdir, self.logs = workdir, logs
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)  # PostgreSQL's own user must reach its directory inside
        self.pg = Postgres(workdir / "postgres", pick_port(55432), logs / "postgres.log")
        self.broker = Redis("broker", pick_port(56379), logs / "redis-broker.log")
        self.cache = Redis("cache", pick_port(self.broker.port + 1), logs / "redis-cache.log")
        self.platform_port = pick_port(58765)
        self.web_port = pick_port(58000)
        self.platform_token = secrets.token_hex(16)
        self.kubeconfig = workdir / "platform.kubeconfig"
        self.roles: list[Role] = []  # every process ever started, in order
        self.counters: Counter = Counter()
        self.db = Database(self.pg.url(DATABASE))
        self.platform = Platform(f"http://127.0.0.1:{self.platform_port}", self.platform_token)
        self._ticking = threading.Event()

    @property
    def web_url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    # ------------------------------------------------------------------ environment

    def env(self, name: str) -> dict[str, str]:
        cleared = ("DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "CHANNELS_REDIS_URL",
                   "KUBECONFIG", "DJANGO_SETTINGS_MODULE", "PYTEST_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(cleared)}
        env.update({
            "DJANGO_SETTINGS_MODULE": SETTINGS,
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": "chaos-" + "k" * 60,
            "DATABASE_URL": self.pg.url(DATABASE, application_name=name),
            "REDIS_URL": self.broker.url(0),
            "CACHE_REDIS_URL": self.cache.url(0),
            "CHANNELS_REDIS_URL": self.cache.url(1),
            "KUBECONFIG": str(self.kubeconfig),
            "PLATFORM_ROOT_HOST": "example.org",
            "PORTAL_VAR_DIR": str(self.workdir / "var"),
            "LOG_LEVEL": "INFO",
            # The workload and the reader poll often; the limits are not under test.
            "API_RATE_TOKEN": "100000/min",
            "API_RATE_USER": "100000/min",
        })
        return env

    # ------------------------------------------------------------------ data stores

    def start_stores(self) -> None:
        self.pg.init()
        self.pg.start()
        self.pg.create_database(DATABASE)
        self.broker.start()
        self.cache.start()

    def manage(self, *args: str, timeout: float = 600) -> str:
        result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT,
                                env=self.env("manage"), capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode:
            raise InfraError(f"manage.py {' '.join(args)} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    def run_module(self, module: str, *args: str) -> str:
        result = subprocess.run([sys.executable, "-m", module, *args], cwd=ROOT,
                                env=self.env(module), capture_output=True, text=True,
                                timeout=300)
        if result.returncode:
            raise InfraError(f"{module} failed:\n{result.stderr[-3000:]}")
        return result.stdout

    # ------------------------------------------------------------------ roles

    def _role(self, kind: str, cmd: list[str], name: str | None = None) -> Role:
        self.counters[kind] += 1
        name = name or f"{kind}-{self.counters[kind]}"
        role = Role(name=name, kind=kind, cmd=cmd, env=self.env(name),
                    log_path=self.logs / f"{name}.log")
        self.roles.append(role.start())
        return role

    def command(self, kind: str, name: str) -> list[str]:
        py = sys.executable
        if kind == "platform":
            return [py, "manage.py", "simulate_platform", "--host", "127.0.0.1", "--port",
                    str(self.platform_port), "--token", self.platform_token,
                    "--state", str(self.workdir / "simulator.json"),
                    "--kubeconfig-out", str(self.kubeconfig),
                    "--ready-after", "2", "--node-ready-after", "1", "--settle-after", "1",
                    "--delete-after", "5", "--upgrade-after", "1", "--apply-after", "1"]
        if kind == "web":
            return web_command(self.web_port)
        if kind == "worker":
            return [py, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "-n",
                    f"{name}@chaos", "-l", "info", "--without-gossip", "--without-mingle"]
        if kind == "beat":
            return [py, "-m", "celery", "-A", "portal", "beat", "-l", "info",
                    "-s", str(self.workdir / "celerybeat-schedule")]
        if kind == "watcher":
            return [py, "manage.py", "watch_platform"]
        raise ValueError(kind)

    def start(self, kind: str, *, wait: bool = True) -> Role:
        name = f"{kind}-{self.counters[kind] + 1}"
        role = self._role(kind, self.command(kind, name), name)
        if not wait:
            return role
        if kind == "platform":
            if not wait_until(lambda: self.kubeconfig.exists() and listening(self.platform_port),
                              180):
                raise InfraError(f"the simulated platform did not start; see {role.log_path}")
        if kind == "web" and not self.wait_web(180):
            raise InfraError(f"web did not start; see {role.log_path}")
        return role

    def wait_web(self, timeout: float, port: int | None = None) -> bool:
        url = f"http://127.0.0.1:{port or self.web_port}/healthz"

        def answers() -> bool:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310
                    return response.status == 200
            except OSError:
                return False

        return wait_until(answers, timeout, 0.2)

    def start_trial_web(self) -> tuple[Role, int]:
        """A web role of its own on a port of its own, for the SIGTERM trials."""
        port = pick_port(self.web_port + 100 + 3 * self.counters["trial"])
        return self._role("trial", web_command(port)), port

    def alive(self, kind: str) -> list[Role]:
        return [r for r in self.roles if r.kind == kind and r.alive()]

    def by_name(self, name: str | None) -> Role | None:
        return next((r for r in self.roles if r.name == name), None)

    def leader(self) -> Role | None:
        """The live watcher holding the leader lock (None: nobody leads, or the database is
        down)."""
        role = self.by_name(self.db.leader())
        return role if role is not None and role.alive() else None

    def exited_by_themselves(self, since: float = 0.0) -> list[Role]:
        """Processes that ended without the suite stopping them, since ``since``."""
        return [r for r in self.roles if not r.alive() and not r.killed_by_suite
                and r.proc is not None and (r.ended_at or now()) >= since]

    def restore(self) -> list[str]:
        """Back to ``BASELINE``: start what is missing, stop extra watchers (standbys first).
        Returns the names of the processes it had to start."""
        started = []
        for kind, count in BASELINE.items():
            alive = self.alive(kind)
            if len(alive) > count:
                leader = self.leader()
                extras = [r for r in alive if r is not leader][: len(alive) - count]
                for extra in extras:
                    extra.terminate(15, group=True)
                continue
            for _ in range(count - len(alive)):
                started.append(self.start(kind).name)
        if any(name.startswith("watcher") for name in started):
            wait_until(lambda: self.leader() is not None, 120, 0.5)
        return started

    def start_ticker(self) -> None:
        """Tick the simulator's controllers every second (``POST /_sim/tick``), as a real
        platform's controllers never stop. The simulator ticks by itself on writes and when
        something falls due, but a tick that runs across a due moment loses it (``next_due``
        keeps only future moments), and a deletion then waits for the next write; with nothing
        else happening that is minutes, and an operation that looks stuck for the portal's
        fault."""
        def tick() -> None:
            while not self._ticking.wait(1.0):
                try:
                    self.platform.call("POST", "/_sim/tick", timeout=10)
                except (OSError, ValueError):
                    pass

        threading.Thread(target=tick, daemon=True, name="platform-ticker").start()

    def start_all(self) -> None:
        self.start("platform")
        self.start_ticker()
        web = self.start("web", wait=False)
        for kind in ("worker", "worker", "beat", "watcher"):
            self.start(kind, wait=False)
        if not self.wait_web(180):
            raise InfraError(f"web did not start; see {web.log_path}")
        if not wait_until(lambda: self.leader() is not None, 120, 0.5):
            raise InfraError("no watcher took the leader lock within 120 s")

    def stop_all(self) -> None:
        self._ticking.set()
        for role in reversed(self.roles):
            if role.alive():
                role.terminate(10, group=True)
        self.broker.kill()
        self.cache.kill()
        self.pg.destroy()

