"""`manage.py simulate_platform`: run the simulated management cluster until Ctrl-C.

    manage.py simulate_platform --release 1.6.2
        serve Cozystack 1.6.2
"""

from __future__ import annotations

import signal
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from cozystack.simulator import DEFAULT_RELEASE, RELEASES, SimulatedPlatform


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve a simulated Cozystack management cluster (Kubernetes API over HTTP)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8001, help="0 picks a free port")
        parser.add_argument("--token", default="simulator-token", help="bearer token to accept")
        parser.add_argument("--release", choices=RELEASES, default=DEFAULT_RELEASE,
                            help=f"Cozystack release to run (default {DEFAULT_RELEASE})")
        parser.add_argument("--schema", default=None,
                            help="publish this values schema JSON instead of the release's")
        parser.add_argument("--kubeconfig-out", default=None, help="write a kubeconfig here")
        parser.add_argument("--ready-after", type=float, default=8.0, help="control plane up (s)")
        parser.add_argument("--node-ready-after", type=float, default=5.0, help="node Ready (s)")
        parser.add_argument("--settle-after", type=float, default=5.0, help="autoscaler delay (s)")
        parser.add_argument("--delete-after", type=float, default=5.0, help="terminating (s)")
        parser.add_argument("--upgrade-after", type=float, default=5.0, help="Helm upgrade (s)")
        parser.add_argument("--apply-after", type=float, default=2.0,
                            help="v1.6: manifests applied, Ready=True (s)")

    def handle(self, *args: Any, **options: Any) -> None:
        platform = SimulatedPlatform(
            host=options["host"],
            port=options["port"],
            token=options["token"],
            release=options["release"],
            schema_path=options["schema"],
            ready_after=options["ready_after"],
            node_ready_after=options["node_ready_after"],
            settle_after=options["settle_after"],
            delete_after=options["delete_after"],
            upgrade_after=options["upgrade_after"],
            apply_after=options["apply_after"],
        ).start()
        if options["kubeconfig_out"]:
            path = platform.kubeconfig(options["kubeconfig_out"])
            self.stdout.write(f"kubeconfig written to {path}")
        self.stdout.write(
            f"Simulated management cluster (Cozystack {platform.release.name}) listening on "
            f"{platform.url}"
        )
        self.stdout.flush()
        signal.signal(signal.SIGTERM, _interrupt)  # a parent stopping us = Ctrl-C
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            self.stdout.write("stopping")
        finally:
            platform.stop()

