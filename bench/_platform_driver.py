"""A simulated platform in its own process, filled with clusters, that changes on command.

Used by ``bench_watcher.py`` and ``bench_live.py`` (not run on its own). The simulator serves
the API; its controller is idle (manual clock, no tick on write), and this driver plays the
autoscaler: it writes MachineDeployment changes straight into the store, at a given rate, and
records when each change happened (the instant a real platform would have changed).

Two kinds of change (``--scale``): by default a group's status flips between one and two
ready nodes; with ``--scale`` the group is scaled (spec and status in one write, as a settled
autoscaler step: the cluster stays Running, its node count and status line change).

Protocol on stdin/stdout, one line each:
  → (start)                      ← READY <port> <kubeconfig> <inventory.json>
  → GO <rate per s> <seconds>    ← DONE <times.json>   (``{seq: [wall time, namespace, name]}``
                                                        with ``--scale``, else ``{seq: time}``)
  → QUIT
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cozystack.simulator import ManualClock, SimulatedPlatform  # noqa: E402
from cozystack.simulator.kubeconfig import admin_kubeconfig_secret  # noqa: E402
from cozystack.simulator.resources import (  # noqa: E402
    MACHINE_DEPLOYMENTS,
    SECRETS,
)

GROUPS = ("md0", "md1", "md2")
CHART_VERSION = "1.6.2"  # status.version of the default release's clusters
TENANTS = 100


def md_status(ready: int, seq: int = 0) -> dict:
    return {"replicas": ready, "readyReplicas": ready, "updatedReplicas": ready,
            "availableReplicas": ready, "unavailableReplicas": 0, "phase": "Running",
            "observedGeneration": seq}


def populate(platform: SimulatedPlatform, clusters: int, tenants: int = TENANTS) -> list[dict]:
    """``clusters`` Running clusters of 3 groups (1 ready node each) over ``tenants``."""
    store = platform.store
    kubernetes = platform.registry.lookup("Kubernetes")
    now = "2026-01-01T00:00:00Z"
    inventory = []
    for i in range(clusters):
        namespace = f"tenant-t{i % tenants:03d}"
        name = f"c{i:05d}"
        release = f"kubernetes-{name}"
        # The spec the portal sends to the default release (v1.6.2).
        spec = {"version": "v1.34", "nodeGroups": {
            g: {"minReplicas": 1, "maxReplicas": 5, "instanceType": "u1.large",
                "diskSize": "30Gi", "roles": [], "gpus": []}
            for g in GROUPS}}
        obj = store.apply(kubernetes, namespace, name, {
            "metadata": {"name": name, "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": "kube-portal"}},
            "spec": spec})
        conditions = [
            {"type": "Ready", "status": "True", "reason": "InstallSucceeded",
             "message": "Helm install succeeded", "lastTransitionTime": now},
            {"type": "WorkloadsReady", "status": "True", "reason": "WorkloadMonitorCheck",
             "message": "All workloads are operational", "lastTransitionTime": now}]
        written = store.write_status(kubernetes, namespace, name,
                                     {"version": CHART_VERSION, "conditions": conditions})
        owner = {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
                 "name": name, "uid": obj["metadata"]["uid"]}
        for group in GROUPS:
            md = f"{release}-{group}"
            store.apply(MACHINE_DEPLOYMENTS, namespace, md, {
                "metadata": {"name": md, "namespace": namespace,
                             "labels": {"cluster.x-k8s.io/cluster-name": release}},
                "spec": {"clusterName": release, "replicas": 1}})
            store.write_status(MACHINE_DEPLOYMENTS, namespace, md, md_status(1))
        secret = admin_kubeconfig_secret(namespace, name, f"{name}.example.org", owner)
        store.apply(SECRETS, namespace, secret["metadata"]["name"], secret)
        inventory.append({"namespace": namespace, "name": name,
                          "rv": written["metadata"]["resourceVersion"],
                          "conditions": conditions})
    return inventory


_READY: dict[tuple[str, str], int] = {}  # each group's ready nodes, across the loads


def scale(platform: SimulatedPlatform, namespace: str, name: str, replicas: int,
          seq: int) -> None:
    """One write of a MachineDeployment's spec and status together (one watch event)."""
    store = platform.store
    with store.cond:
        key = store._key(MACHINE_DEPLOYMENTS, namespace, name)
        old = store._objects[key]
        new = json.loads(json.dumps(old))
        new["spec"]["replicas"] = replicas
        new["status"] = md_status(replicas, seq)
        store._bump(new)
        store._objects[key] = new
        store._record("MODIFIED", MACHINE_DEPLOYMENTS, new, old)


def drive(platform: SimulatedPlatform, inventory: list[dict], rate: float, seconds: float,
          first_seq: int, *, scaling: bool = False) -> dict[str, object]:
    """Change one random group every 1/rate s; {seq: wall time of the write} (with
    ``scaling``: {seq: [wall time, namespace, cluster name]})."""
    store = platform.store
    ready = _READY
    times: dict[str, object] = {}
    interval = 1.0 / rate
    start = time.monotonic()
    seq = first_seq
    while time.monotonic() - start < seconds:
        target = start + (seq - first_seq) * interval
        delay = target - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        entry = random.choice(inventory)
        group = random.choice(GROUPS)
        md = f"kubernetes-{entry['name']}-{group}"
        key = (entry["namespace"], md)
        ready[key] = 2 if ready.get(key, 1) == 1 else 1
        seq += 1
        if scaling:
            times[str(seq)] = [time.time(), entry["namespace"], entry["name"]]
            scale(platform, entry["namespace"], md, ready[key], seq)
        else:
            times[str(seq)] = time.time()
            store.write_status(MACHINE_DEPLOYMENTS, entry["namespace"], md,
                               md_status(ready[key], seq))
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--tenants", type=int, default=TENANTS)
    parser.add_argument("--scale", action="store_true")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="bench-platform-"))
    platform = SimulatedPlatform(clock=ManualClock(), tick_on_write=False,
                                 history_size=200_000).start()
    kubeconfig = platform.kubeconfig(workdir / "kubeconfig")
    inventory = populate(platform, args.clusters, args.tenants)
    (workdir / "inventory.json").write_text(json.dumps(inventory))
    print(f"READY {platform.port} {kubeconfig} {workdir / 'inventory.json'}", flush=True)
    seq = 0
    for line in sys.stdin:
        parts = line.split()
        if not parts or parts[0] == "QUIT":
            break
        if parts[0] == "GO":
            times = drive(platform, inventory, float(parts[1]), float(parts[2]), seq,
                          scaling=args.scale)
            seq += len(times)
            out = workdir / f"times-{seq}.json"
            out.write_text(json.dumps(times))
            print(f"DONE {out}", flush=True)
    platform.stop()


if __name__ == "__main__":
    main()
