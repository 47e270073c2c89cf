"""`manage.py simulate_platform`: run the simulated management cluster until Ctrl-C."""

from __future__ import annotations

import signal
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from clusters.platform.simulator import SimulatedPlatform


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve a simulated Cozystack management cluster (Kubernetes API over HTTP)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
        parser.add_argument("--token", default="simulator-token", help="bearer token to accept")
        parser.add_argument("--schema", default=None, help="values schema JSON (default: built-in)")
        parser.add_argument("--kubeconfig-out", default=None, help="write a kubeconfig here")
        parser.add_argument("--ready-after", type=float, default=8.0, help="control plane up (s)")
        parser.add_argument("--node-ready-after", type=float, default=5.0, help="node Ready (s)")
        parser.add_argument("--settle-after", type=float, default=5.0, help="autoscaler delay (s)")
        parser.add_argument("--delete-after", type=float, default=5.0, help="terminating (s)")
        parser.add_argument("--upgrade-after", type=float, default=5.0, help="Helm upgrade (s)")

    def handle(self, *args: Any, **options: Any) -> None:
        platform = SimulatedPlatform(
            host=options["host"],
            port=options["port"],
            token=options["token"],
            schema_path=options["schema"],
            ready_after=options["ready_after"],
            node_ready_after=options["node_ready_after"],
            settle_after=options["settle_after"],
            delete_after=options["delete_after"],
            upgrade_after=options["upgrade_after"],
            root_host=settings.PLATFORM_ROOT_HOST or "example.org",
        ).start()
        if options["kubeconfig_out"]:
            path = platform.kubeconfig(options["kubeconfig_out"])
            self.stdout.write(f"kubeconfig written to {path}")
        self.stdout.write(f"Simulated management cluster listening on {platform.url}")
        self.stdout.flush()
        signal.signal(signal.SIGTERM, _interrupt)  # a parent stopping us = Ctrl-C
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            platform.stop()
