"""Worker node groups: MachineDeployments, their machines, the cluster-autoscaler and rollouts.

Reproduces what the portal must meter and display (PLATFORM.md e, gotchas 2 and 11): a group
starts at 2 machines at v1.3 (from `minReplicas` at v1.6), the autoscaler then moves
`spec.replicas` into [min, max], nodes become Ready some time after their machine exists, and a
template change replaces every node with a surge of up to 2x.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MIN_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
MAX_SIZE = "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
DEPLOYMENT_LABEL = "cluster.x-k8s.io/deployment-name"


@dataclass(frozen=True)
class Timing:
    """Delays of the simulated platform, in seconds of the platform's clock."""

    ready_after: float = 1.0
    node_ready_after: float = 0.5
    settle_after: float = 0.5
    delete_after: float = 0.5
    upgrade_after: float = 0.5
    fail_after: float = 0.2
    # v1.6 installs without waiting: Ready=True once the manifests are applied.
    apply_after: float = 0.2
    # The OIDC bootstrap Job fills the OIDC kubeconfig this long after the control plane is up.
    oidc_after: float = 0.5


@dataclass
class Machine:
    name: str
    template: str
    created: float


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


@dataclass
class NodeGroup:
    """Controller-side state of one MachineDeployment `kubernetes-<name>-<group>`."""

    namespace: str
    cluster: str
    name: str
    spec: dict[str, Any]
    version: str
    created: float
    replicas: int = 2
    template: str = ""
    machines: list[Machine] = field(default_factory=list)
    last_change: float = 0.0
    serial: int = 0
    # The Helm release that renders it when it is not the cluster's own: a `KubernetesNodes`
    # pool's (`kubernetes-nodes-<cluster>-<pool>`).
    release: str = ""
    # A machine the namespace's quota refused (its event is written once per refusal).
    refused: bool = False

    @property
    def md_name(self) -> str:
        return f"{self.cluster}-{self.name}"

    @property
    def bounds(self) -> tuple[int, int]:
        low = max(0, _int(self.spec.get("minReplicas"), 0))
        return low, max(low, _int(self.spec.get("maxReplicas"), 10))

    def target(self, demand: int | None) -> int:
        low, high = self.bounds
        wanted = low if demand is None else demand
        return max(low, min(high, wanted))

    def update(
        self,
        spec: dict[str, Any],
        version: str,
        now: float,
        template: dict[str, Any],
        clamp: bool = False,
    ) -> None:
        """Apply rendered values; min/max changes only re-arm the autoscaler (and, with `clamp`,
        CAPI keeps the live replicas inside the new bounds at once). `template` holds what the
        machine template is made of: any change replaces every node."""
        if (spec.get("minReplicas"), spec.get("maxReplicas")) != (
            self.spec.get("minReplicas"),
            self.spec.get("maxReplicas"),
        ):
            self.last_change = now
        self.spec = spec
        self.version = version
        if clamp:
            low, high = self.bounds
            self.replicas = max(low, min(high, self.replicas))
        inputs = {**template, "version": version}
        digest = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()
        self.template = digest[:8]


class NodeEngine:
    """Pure simulation of machines for one timing configuration (no store access)."""

    def __init__(self, timing: Timing) -> None:
        self.timing = timing

    def ready_at(self, machine: Machine, cp_ready_at: float | None) -> float | None:
        if cp_ready_at is None:
            return None
        return max(machine.created, cp_ready_at) + self.timing.node_ready_after

    def is_ready(self, machine: Machine, cp_ready_at: float | None, now: float) -> bool:
        when = self.ready_at(machine, cp_ready_at)
        return when is not None and now >= when

    def ready_count(self, group: NodeGroup, cp_ready_at: float | None, now: float) -> int:
        return sum(self.is_ready(m, cp_ready_at, now) for m in group.machines)

    def autoscale_at(
        self, group: NodeGroup, demand: int | None, cp_ready_at: float | None
    ) -> float | None:
        """When the autoscaler will next move `spec.replicas` (it needs the tenant API)."""
        if cp_ready_at is None or group.replicas == group.target(demand):
            return None
        return max(group.last_change, cp_ready_at) + self.timing.settle_after

    def autoscale(
        self, group: NodeGroup, demand: int | None, cp_ready_at: float | None, now: float
    ) -> tuple[int, int] | None:
        when = self.autoscale_at(group, demand, cp_ready_at)
        if when is None or now < when:
            return None
        before, group.replicas = group.replicas, group.target(demand)
        group.last_change = now
        return before, group.replicas

    def roll(
        self,
        group: NodeGroup,
        cp_ready_at: float | None,
        now: float,
        admit: Callable[[NodeGroup], bool] | None = None,
    ) -> None:
        """RollingUpdate with maxSurge = maxReplicas: new nodes first, old ones once replaced.
        `admit` (the namespace's quotas) may refuse a new machine: it is then not created and
        the group stays short until a later pass admits it."""
        surge = max(group.bounds[1], 1)
        self._create_new(group, surge, now, admit)
        current = [m for m in group.machines if m.template == group.template]
        outdated = [m for m in group.machines if m.template != group.template]
        ranked = sorted(current, key=lambda m: (self.is_ready(m, cp_ready_at, now), -m.created))
        excess = ranked[: max(0, len(current) - group.replicas)]
        ready_current = sum(self.is_ready(m, cp_ready_at, now) for m in current if m not in excess)
        keep_old = max(0, group.replicas - ready_current)
        old_ranked = sorted(outdated, key=lambda m: (self.is_ready(m, cp_ready_at, now), m.created))
        retired = old_ranked[: max(0, len(outdated) - keep_old)]
        gone = {id(m) for m in excess + retired}
        group.machines = [m for m in group.machines if id(m) not in gone]
        self._create_new(group, surge, now, admit)

    def _create_new(
        self,
        group: NodeGroup,
        surge: int,
        now: float,
        admit: Callable[[NodeGroup], bool] | None = None,
    ) -> None:
        current = sum(m.template == group.template for m in group.machines)
        while current < group.replicas and len(group.machines) < group.replicas + surge:
            if admit is not None and not admit(group):
                return
            group.serial += 1
            name = f"{group.md_name}-{group.template[:5]}-{group.serial:05d}"
            group.machines.append(Machine(name, group.template, now))
            current += 1

    def due_times(
        self, group: NodeGroup, demand: int | None, cp_ready_at: float | None
    ) -> list[float]:
        times = [self.ready_at(m, cp_ready_at) for m in group.machines]
        times.append(self.autoscale_at(group, demand, cp_ready_at))
        return [t for t in times if t is not None]

    def status(
        self, group: NodeGroup, cp_ready_at: float | None, now: float, generation: int
    ) -> dict[str, Any]:
        """CAPI MachineDeployment status, with CAPI's phase rules (based on readyReplicas)."""
        total = len(group.machines)
        ready = self.ready_count(group, cp_ready_at, now)
        updated = sum(m.template == group.template for m in group.machines)
        if ready > group.replicas:
            phase = "ScalingDown"
        elif ready < group.replicas:
            phase = "ScalingUp"
        else:
            phase = "Running"
        return {
            "observedGeneration": generation,
            "selector": f"{CLUSTER_LABEL}={group.cluster},{DEPLOYMENT_LABEL}={group.md_name}",
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": max(0, group.replicas - ready),
            "phase": phase,
        }

    def manifest(
        self,
        group: NodeGroup,
        owner: dict[str, Any],
        patch_version: str,
        bootstrap: dict[str, Any],
    ) -> dict[str, Any]:
        """The live MachineDeployment (replicas owned by the autoscaler); `bootstrap` is the
        release's bootstrap config reference."""
        low, high = group.bounds
        release = group.release or group.cluster
        selector = {CLUSTER_LABEL: group.cluster, DEPLOYMENT_LABEL: group.md_name}
        template_labels = dict(selector)
        for role in group.spec.get("roles") or []:
            template_labels[f"node-role.kubernetes.io/{role}"] = ""
        template_name = f"{group.md_name}-{group.template}"
        return {
            "metadata": {
                "name": group.md_name,
                "namespace": group.namespace,
                "labels": {
                    CLUSTER_LABEL: group.cluster,
                    "app.kubernetes.io/instance": release,
                    "app.kubernetes.io/managed-by": "Helm",
                    "helm.toolkit.fluxcd.io/name": release,
                    "helm.toolkit.fluxcd.io/namespace": group.namespace,
                },
                "annotations": {
                    MIN_SIZE: str(low),
                    MAX_SIZE: str(high),
                    "meta.helm.sh/release-name": release,
                    "meta.helm.sh/release-namespace": group.namespace,
                },
                "ownerReferences": [owner],
            },
            "spec": {
                "clusterName": group.cluster,
                "replicas": group.replicas,
                "selector": {"matchLabels": selector},
                "strategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": max(high, 1), "maxUnavailable": 1},
                },
                "template": {
                    "metadata": {"labels": template_labels},
                    "spec": {
                        "clusterName": group.cluster,
                        "version": patch_version,
                        "bootstrap": {"configRef": bootstrap},
                        "infrastructureRef": {
                            "apiVersion": "infrastructure.cluster.x-k8s.io/v1alpha1",
                            "kind": "KubevirtMachineTemplate",
                            "name": template_name,
                            "namespace": group.namespace,
                        },
                    },
                },
            },
        }
