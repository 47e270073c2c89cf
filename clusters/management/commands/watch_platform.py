from __future__ import annotations

import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand

from clusters.watcher import ADVISORY_LOCK_ID, lead
from portal import metrics
from portal.metrics.exposition import serve_on_port


class Command(BaseCommand):
    help = "Watch the management cluster and keep clusters, node counts and usage up to date."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--watch-timeout", type=int, default=300,
                            help="seconds before a watch is renewed (default 300)")
        parser.add_argument("--lock-poll", type=float, default=2.0,
                            help="seconds between attempts to take the leader lock")
        parser.add_argument("--lock-check", type=float, default=2.0,
                            help="seconds between checks that the leader still holds its lock")
        parser.add_argument("--lock-key", type=lambda text: int(text, 0),
                            default=ADVISORY_LOCK_ID,
                            help="advisory lock (and term) of the watchers that compete for "
                                 "the leadership; the default is the portal's (an isolated "
                                 "watcher, for a test, takes another)")

    def handle(self, *args: Any, **options: Any) -> None:
        stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: stopping.set())
        metrics.set_role("watcher")
        serve_on_port()
        metrics.watcher_leading(False)

        def say(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        # Never returns on a database error: stands by, re-leads and resumes (clusters.watcher).
        lead(stopping, key=options["lock_key"], lock_poll=options["lock_poll"],
             lock_check=options["lock_check"], watch_timeout=options["watch_timeout"], say=say)
