from __future__ import annotations

import signal
from typing import Any

from django.core.management.base import BaseCommand

from clusters.outbox import Relay


class Command(BaseCommand):
    help = ("Hand the outbox's pending operations to the broker and take over the operations of "
            "dead workers (what every worker does as a thread unless OUTBOX_RELAY_IN_WORKERS "
            "is off).")

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--once", action="store_true",
                            help="one round, then exit (what was sent and refused is printed)")

    def handle(self, *args: Any, **options: Any) -> None:
        relay = Relay()
        if options["once"]:
            result = relay.run_once()
            self.stdout.write(f"sent {result.sent}, refused {result.refused}"
                              + (f" ({result.error})" if result.error else ""))
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: relay.stopping.set())
        self.stdout.write("Relaying the outbox.")
        self.stdout.flush()
        relay.run()  # never stops on an error; returns once told to stop
