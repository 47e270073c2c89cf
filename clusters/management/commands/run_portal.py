"""Start every role of the portal from one command (what `make run` calls).

Embedded default (no DATABASE_URL / REDIS_URL): web, Celery worker, beat and the watcher share
this process as threads, because the in-process broker and channel layer only reach within one
process; the simulated management cluster runs beside it as a child process over loopback.
With DATABASE_URL or REDIS_URL set, each role runs as its own process instead. Either way every
Celery worker also runs the outbox relay loop, as a thread (clusters.outbox). Without an
explicit KUBECONFIG the simulator is started and used; with one, the portal talks to that
management cluster. Ctrl-C stops everything this command started.

The simulator runs the Cozystack release `--platform-release` (SIMULATOR_RELEASE, default
`DEFAULT_RELEASE`) and keeps its objects in `var/simulator.json` (SIMULATOR_STATE), so a restart
finds every cluster where it was. `manage.py simulate_platform --upgrade 1.6.2` upgrades it live.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import uvicorn
from celery.beat import EmbeddedService
from django.conf import settings
from django.core.management.base import BaseCommand

from clusters.watcher import lead
from cozystack.simulator import DEFAULT_RELEASE, RELEASES
from portal import metrics
from portal.celery import app

ROOT = Path(settings.BASE_DIR)
GRACEFUL_SHUTDOWN_SECONDS = 8


def web_command(host: str, port: int) -> list[str]:
    """The web role as its own process: uvicorn serving the portal's ASGI application.

    uvicorn's proxy handling is off: the client's address comes from TRUSTED_PROXIES
    (portal.asgi), not from uvicorn's own list of proxies.

    On SIGTERM uvicorn closes every WebSocket with 1012 (the pages reconnect by themselves)
    and waits for the requests in flight; after ``GRACEFUL_SHUTDOWN_SECONDS`` it cancels what
    still runs, so that the process is gone within about ten seconds whatever a task waits on.
    """
    return [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", host,
            "--port", str(port), "--lifespan", "off", "--no-proxy-headers",
            "--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS)]


class Command(BaseCommand):
    help = "Run web, worker, beat, watcher and (unless KUBECONFIG is set) the simulated platform."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("PORTAL_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORTAL_PORT", 8000)))
        parser.add_argument("--platform-port", type=int,
                            default=int(os.environ.get("SIMULATOR_PORT", 8765)))
        parser.add_argument("--ready-after", type=float,
                            default=float(os.environ.get("SIMULATOR_READY_AFTER", 20)),
                            help="seconds the simulated control plane takes to become ready")
        parser.add_argument("--platform-release", choices=RELEASES,
                            default=os.environ.get("SIMULATOR_RELEASE") or DEFAULT_RELEASE,
                            help="Cozystack release the simulated platform runs")
        parser.add_argument("--platform-state",
                            default=os.environ.get("SIMULATOR_STATE")
                            or str(Path(settings.VAR_DIR) / "simulator.json"),
                            help="file keeping the simulated platform across restarts")

    def handle(self, *args, **options) -> None:
        self.children: list[subprocess.Popen] = []
        self.stopping = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: self.stopping.set())
        env = os.environ.copy()
        try:
            if "KUBECONFIG" not in os.environ:
                self._start_simulator(options, env)
            distributed = bool(os.environ.get("DATABASE_URL") or os.environ.get("REDIS_URL"))
            self._banner(options, distributed)
            if distributed:
                self._run_processes(options, env)
            else:
                self._run_embedded(options)
        except KeyboardInterrupt:
            pass
        finally:
            self._stop_children()
            self.stdout.write("Stopped.")

    # ---------------------------------------------------------------------------------------

    def _spawn(self, cmd: list[str], env: dict[str, str]) -> subprocess.Popen:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, start_new_session=True)
        self.children.append(proc)
        return proc

    def _start_simulator(self, options, env: dict[str, str]) -> None:
        kubeconfig = Path(settings.PLATFORM_KUBECONFIG)
        kubeconfig.parent.mkdir(parents=True, exist_ok=True)
        kubeconfig.unlink(missing_ok=True)
        token = env.get("SIMULATOR_TOKEN") or os.urandom(16).hex()
        self._spawn([sys.executable, "manage.py", "simulate_platform", "--host", "127.0.0.1",
                     "--port", str(options["platform_port"]), "--token", token,
                     "--ready-after", str(options["ready_after"]),
                     "--release", options["platform_release"],
                     "--state", options["platform_state"],
                     "--kubeconfig-out", str(kubeconfig)], env)
        deadline = time.monotonic() + 30
        while not kubeconfig.exists():
            if time.monotonic() > deadline or self.children[-1].poll() is not None:
                raise SystemExit("The simulated management cluster did not start.")
            time.sleep(0.1)
        env["KUBECONFIG"] = str(kubeconfig)

    def _banner(self, options, distributed: bool) -> None:
        url = f"http://{options['host']}:{options['port']}/"
        mode = "distributed (separate processes)" if distributed else "embedded"
        platform = settings.PLATFORM_KUBECONFIG if "KUBECONFIG" in os.environ else "simulated"
        self.stdout.write(self.style.SUCCESS(
            f"\n  Portal:   {url}\n  Login:    demo@example.org / demo-portal-2026\n"
            f"  Mode:     {mode}\n  Platform: {platform}\n  Ctrl-C stops everything.\n"))

    def _run_processes(self, options, env: dict[str, str]) -> None:
        py = sys.executable
        # The roles add up their metrics in one directory, empty at start (the web role's
        # /metrics then shows them all).
        metrics_dir = Path(env.get("PROMETHEUS_MULTIPROC_DIR")
                           or Path(settings.VAR_DIR) / "metrics")
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        self._spawn([py, "-m", "celery", "-A", "portal", "worker", "--pool=solo", "-l", "info",
                     "--without-gossip", "--without-mingle"], env)
        self._spawn([py, "-m", "celery", "-A", "portal", "beat", "-l", "info"], env)
        self._spawn([py, "manage.py", "watch_platform"], env)
        web = self._spawn(web_command(options["host"], options["port"]), env)
        while not self.stopping.is_set():
            for proc in self.children:
                if proc.poll() is not None:
                    self.stderr.write(f"A role exited ({proc.args[:4]}); stopping.")  # type: ignore[index,str-bytes-safe]  # _spawn starts each from a list of words
                    return
            if web.poll() is not None:
                return
            self.stopping.wait(1)

    def _run_embedded(self, options) -> None:
        metrics.set_role("embedded")
        app.loader.import_default_modules()
        worker = app.WorkController(pool_cls="solo", concurrency=1, hostname="embedded@local",
                                    without_heartbeat=True, without_mingle=True,
                                    without_gossip=True, loglevel="INFO")
        threading.Thread(target=worker.start, name="celery-worker", daemon=True).start()
        # The database scheduler from settings (Service would otherwise default to a shelve file).
        beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        beat.start()
        # The worker above also runs the outbox relay (a thread it starts at worker_init, see
        # clusters.outbox), which hands operations to the in-process broker.
        # The watcher: leads, or stands by while another process does, and survives database
        # errors (clusters.watcher.lead).
        watching = threading.Event()
        watcher = threading.Thread(target=lead, args=(watching,), name="watcher", daemon=True,
                                   kwargs={"say": lambda line: self.stdout.write(line)})
        watcher.start()
        # proxy_headers off: TRUSTED_PROXIES decides the client's address (portal.asgi);
        # log_config None: Django's LOGGING (redacting, no query strings) stays in force.
        config = uvicorn.Config("portal.asgi:application", host=options["host"],
                                port=options["port"], lifespan="off", log_level="info",
                                proxy_headers=False, log_config=None,
                                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS)
        try:
            uvicorn.Server(config).run()
        finally:
            watching.set()
            watcher.join(15)
            beat.stop()
            worker.stop(in_sighandler=False)

    def _stop_children(self) -> None:
        for proc in reversed(self.children):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    continue
        for proc in self.children:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
