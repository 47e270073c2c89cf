from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from clusters.watcher import LeaderLock, Watcher
from portal import metrics
from portal.metrics.exposition import serve_on_port


class Command(BaseCommand):
    help = "Watch the management cluster and keep clusters, node counts and usage up to date."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--watch-timeout", type=int, default=300,
                            help="seconds before a watch is renewed (default 300)")
        parser.add_argument("--lock-poll", type=float, default=2.0,
                            help="seconds between attempts to take the leader lock")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        metrics.set_role("watcher")
        serve_on_port()
        metrics.watcher_leading(False)
        lock = LeaderLock()
        while not stopping.is_set():
            if not lock.try_acquire():
                self.stdout.write("Another watcher is active; waiting for its lock.")
                self.stdout.flush()
                if not lock.wait(stopping, poll=options["lock_poll"]):
                    return
            self.stdout.write("Watching the management cluster.")
            self.stdout.flush()
            watcher = Watcher(watch_timeout=options["watch_timeout"]).start()
            metrics.watcher_leading(True)
            try:
                # Keep checking that the lock's database session is alive: if it is lost,
                # another watcher may start, so this one steps down and waits its turn.
                while not stopping.wait(5.0):
                    if not lock.held():
                        self.stderr.write("Lost the leader lock; stepping down.")
                        break
                    # A heartbeat: the web role's metrics tell a quiet platform from a
                    # watcher that stopped (portal_watcher_heartbeat_age_seconds).
                    watcher.health.publish()
            finally:
                metrics.watcher_leading(False)
                watcher.stop()
                lock.release()
