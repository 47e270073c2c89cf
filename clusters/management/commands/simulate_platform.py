"""`manage.py simulate_platform`: run the simulated management cluster until Ctrl-C.

    manage.py simulate_platform --release 1.6.2 --state var/simulator.json
        serve Cozystack 1.6.2; objects survive a restart through the state file

    manage.py simulate_platform --upgrade 1.6.2 [--kubeconfig var/platform.kubeconfig]
        upgrade the simulator that kubeconfig points at (e.g. the one `make run` started) to
        1.6.2 while it serves: migrations, new schema, every cluster re-rendered

    manage.py simulate_platform --quota tenant-acme:limits.cpu=16,limits.memory=64Gi \
            --allocated-quota tenant-acme:limits.cpu=8
        give a tenant its ResourceQuotas `tenant-quota` and `tenant-quota-allocated`
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from typing import Any

import yaml
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from cozystack.simulator import DEFAULT_RELEASE, RELEASES, SimulatedPlatform
from cozystack.simulator.persist import StateError
from cozystack.simulator.quotas import parse_quota_option


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
        parser.add_argument("--state", default=None,
                            help="keep the platform's objects in this file across restarts")
        parser.add_argument("--kubeconfig-out", default=None, help="write a kubeconfig here")
        parser.add_argument("--ready-after", type=float, default=8.0, help="control plane up (s)")
        parser.add_argument("--node-ready-after", type=float, default=5.0, help="node Ready (s)")
        parser.add_argument("--settle-after", type=float, default=5.0, help="autoscaler delay (s)")
        parser.add_argument("--delete-after", type=float, default=5.0, help="terminating (s)")
        parser.add_argument("--upgrade-after", type=float, default=5.0, help="Helm upgrade (s)")
        parser.add_argument("--apply-after", type=float, default=2.0,
                            help="v1.6: manifests applied, Ready=True (s)")
        parser.add_argument("--upgrade", choices=RELEASES, default=None, metavar="RELEASE",
                            help="do not serve: upgrade the running simulator to RELEASE")
        parser.add_argument("--quota", action="append", metavar="NAMESPACE:RESOURCE=AMOUNT,...",
                            help="the ResourceQuota tenant-quota of a namespace (repeatable)")
        parser.add_argument("--allocated-quota", action="append",
                            metavar="NAMESPACE:RESOURCE=AMOUNT,...",
                            help="the hierarchical quota's tenant-quota-allocated (repeatable)")
        parser.add_argument("--kubeconfig", default=None,
                            help="with --upgrade: the running simulator's kubeconfig "
                                 "(default: the portal's)")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            quotas = [(name, *parse_quota_option(text))
                      for key, name in (("quota", "tenant-quota"),
                                        ("allocated_quota", "tenant-quota-allocated"))
                      for text in options[key] or ()]
        except ValueError as error:
            raise CommandError(str(error)) from error
        if options["upgrade"]:
            self._upgrade_running(options["upgrade"], options["kubeconfig"])
            return
        try:
            platform = SimulatedPlatform(
                host=options["host"],
                port=options["port"],
                token=options["token"],
                release=options["release"],
                schema_path=options["schema"],
                state_path=options["state"],
                ready_after=options["ready_after"],
                node_ready_after=options["node_ready_after"],
                settle_after=options["settle_after"],
                delete_after=options["delete_after"],
                upgrade_after=options["upgrade_after"],
                apply_after=options["apply_after"],
                root_host=settings.PLATFORM_ROOT_HOST or "example.org",
            ).start()
        except StateError as error:
            raise CommandError(str(error)) from error
        if platform.notice:
            self.stderr.write(platform.notice)
        for name, namespace, hard in quotas:
            platform.set_quota(namespace, hard, name)
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

    def _upgrade_running(self, release: str, kubeconfig: str | None) -> None:
        """POST /_sim/upgrade to the simulator a kubeconfig points at."""
        path = kubeconfig or settings.PLATFORM_KUBECONFIG
        try:
            with open(path, encoding="utf-8") as handle:
                config = yaml.safe_load(handle)
            server = config["clusters"][0]["cluster"]["server"]
            token = config["users"][0]["user"]["token"]
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as error:
            raise CommandError(f"no simulator kubeconfig at {path}: {error}") from error
        if not str(server).startswith(("http://", "https://")):
            raise CommandError(f"{path} does not point at an HTTP server: {server}")
        request = urllib.request.Request(  # noqa: S310 - the scheme is checked just above
            f"{server}/_sim/upgrade",
            data=json.dumps({"release": release}).encode(),
            method="POST",
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                answer = json.loads(response.read())
        except urllib.error.HTTPError as error:
            detail = json.loads(error.read() or b"{}").get("message", error.reason)
            raise CommandError(f"the simulator refused the upgrade: {detail}") from error
        except (urllib.error.URLError, OSError) as error:
            raise CommandError(f"no simulator answers at {server}: {error}") from error
        self.stdout.write(
            f"Upgraded the simulated platform from Cozystack {answer['from']} to "
            f"{answer['release']} (chart {answer['chartVersion']})."
        )
        for number, names in answer["migrated"].items():
            self.stdout.write(f"  migration {number}: {len(names)} object(s) {' '.join(names)}")
