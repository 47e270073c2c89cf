from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from clusters.watcher import LeaderLock, Watcher


class Command(BaseCommand):
    help = "Watch the management cluster and keep clusters, node counts and usage up to date."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--watch-timeout", type=int, default=300,
                            help="seconds before a watch is renewed (default 300)")

    def handle(self, *args, **options) -> None:
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        lock = LeaderLock()
        if not lock.try_acquire():
            self.stdout.write("Another watcher is active; waiting for its lock.")
            if not lock.wait(stopping):
                return
        self.stdout.write("Watching the management cluster.")
        watcher = Watcher(watch_timeout=options["watch_timeout"]).start()
        try:
            stopping.wait()
        finally:
            watcher.stop()
            lock.release()
