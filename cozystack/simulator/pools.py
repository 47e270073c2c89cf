"""`KubernetesNodes` pools (v1.6, rows 23-24): worker pools attached to a cluster outside its spec.

A `KubernetesNodes` object `<cluster>-<pool>` with `spec.cluster: <cluster>` is its own Helm
release, `kubernetes-nodes-<cluster>-<pool>`, which renders a MachineDeployment named like one
of the cluster's groups (`kubernetes-<cluster>-<pool>`, label
`cluster.x-k8s.io/cluster-name=kubernetes-<cluster>`) but owned by the pool's release (its
`meta.helm.sh/release-name` annotation and `app.kubernetes.io/instance` label). The chart refuses
to render when the name does not start with `<cluster>-`, when the pool name is a group the
cluster's own chart still manages, or when the pool's Kubernetes minor is ahead of the cluster's
(upstream `kubernetes-nodes` `_helpers.tpl`).

The pool's machines follow the cluster's control plane like its own groups do (same node engine,
same autoscaler): they exist only while the cluster exists and has a control plane.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .clock import rfc3339
from .errors import ApiError
from .nodes import Machine, NodeGroup
from .resources import KUBERNETES_NODES, MACHINE_DEPLOYMENTS
from .schema import apply_defaults, prune_nulls

if TYPE_CHECKING:
    from .controller import ClusterState, PlatformController

Obj = dict[str, Any]
RELEASE_PREFIX = "kubernetes-nodes-"


@dataclass
class PoolState:
    """Controller-side state of one `KubernetesNodes` object."""

    namespace: str
    name: str
    uid: str
    group: NodeGroup | None = None
    ready: tuple[str, str, str] | None = None  # (status, reason, message)

    @property
    def release(self) -> str:
        return f"{RELEASE_PREFIX}{self.name}"

    def to_dict(self) -> Obj:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Obj) -> PoolState:
        values = dict(data)
        values["ready"] = tuple(values["ready"]) if values.get("ready") else None
        group = values.get("group")
        if group:
            machines = [Machine(**machine) for machine in group.get("machines") or []]
            values["group"] = NodeGroup(**{**group, "machines": machines})
        return cls(**values)


def _minor(version: Any) -> int | None:
    try:
        return int(str(version).removeprefix("v").split(".")[1])
    except (IndexError, ValueError):
        return None


class PoolReconciler:
    """Moves every `KubernetesNodes` object along; called from the controller's pass."""

    def __init__(self, controller: PlatformController) -> None:
        self.controller = controller
        self.pools: dict[tuple[str, str], PoolState] = {}

    @property
    def served(self) -> bool:
        return self.controller.store.registry.has(KUBERNETES_NODES)

    def values(self, spec: Obj) -> Obj:
        """The pool's spec with its chart's schema defaults (what the release renders from)."""
        schema = self.controller.release.nodes_schema
        values: Obj = apply_defaults(schema, prune_nulls(dict(spec)))
        return values

    def reconcile(self, now: float) -> None:
        if not self.served:
            return
        seen = set()
        store = self.controller.store
        for obj in store.raw_items(KUBERNETES_NODES):
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            seen.add(key)
            pool = self.pools.get(key)
            if pool is None or pool.uid != meta["uid"]:
                pool = self.pools[key] = PoolState(key[0], key[1], meta["uid"])
            if meta.get("deletionTimestamp"):
                self._remove_machines(pool)
                store.release(KUBERNETES_NODES, pool.namespace, pool.name)
                continue
            self._reconcile(pool, self.values(obj.get("spec") or {}), obj, now)
        for key in list(self.pools):
            if key not in seen:
                self._remove_machines(self.pools.pop(key))

    def _reconcile(self, pool: PoolState, values: Obj, obj: Obj, now: float) -> None:
        cluster = str(values.get("cluster") or "")
        parent = self.controller.states.get((pool.namespace, cluster)) if cluster else None
        problem = self._refusal(pool, cluster, values, parent)
        if problem is not None:
            self._remove_machines(pool)
            pool.ready = ("False", "InstallFailed", problem)
        elif parent is None or parent.applied is None or parent.deleting_since is not None:
            self._remove_machines(pool)
            pool.ready = ("Unknown", "Progressing",
                          f"waiting for Kubernetes cluster {cluster!r} in {pool.namespace}")
        else:
            self._render(pool, parent, cluster, values, now)
            pool.ready = ("True", "InstallSucceeded",
                          f"Helm install succeeded for release {pool.namespace}/{pool.release}")
        self._write_status(pool, obj, now)

    def _refusal(self, pool: PoolState, cluster: str, values: Obj,
                 parent: ClusterState | None) -> str | None:
        """The chart's `fail`s, worded as upstream's `kubernetes-nodes` helpers word them."""
        prefix = "execution error at (kubernetes-nodes/templates/nodegroup.yaml): "
        if not cluster:
            return prefix + (
                "kubernetes-nodes: .Values.cluster is required — set it to the parent "
                "Kubernetes CR name so the pool attaches to cluster kubernetes-<cluster>")
        if not pool.name.startswith(f"{cluster}-") or pool.name == f"{cluster}-":
            return prefix + (
                f'kubernetes-nodes: release name "{pool.release}" must start with '
                f'"{RELEASE_PREFIX}{cluster}-" — name the KubernetesNodes CR <cluster>-<pool> '
                f'(cluster="{cluster}")')
        name = pool.name[len(cluster) + 1:]
        if parent is not None and name in parent.groups:
            return prefix + (
                f'kubernetes-nodes: MachineDeployment "kubernetes-{cluster}-{name}" in namespace '
                f'"{pool.namespace}" is already managed by release "kubernetes-{cluster}", not '
                f'this pool release "{pool.release}" — the pool name collides with a nodeGroup '
                "still managed by the parent kubernetes chart. Rename the pool or remove it "
                "from the parent Kubernetes CR's nodeGroups first.")
        deployed = parent.deployed_version if parent is not None else None
        wanted = values.get("version")
        if (_minor(wanted) or 0) > (_minor(deployed) or 99):
            return prefix + (
                f'kubernetes-nodes: pool version "{wanted}" is ahead of parent cluster '
                f'"kubernetes-{cluster}" version "{deployed}" — a worker kubelet may not run '
                "ahead of the apiserver.")
        return None

    def _render(self, pool: PoolState, parent: ClusterState, cluster: str, values: Obj,
                now: float) -> None:
        controller = self.controller
        release = controller.release
        name = pool.name[len(cluster) + 1:]
        version = str(values.get("version") or "")
        group = pool.group
        if group is None or group.name != name or group.cluster != f"kubernetes-{cluster}":
            self._remove_machines(pool)
            low = values.get("minReplicas")
            low = low if isinstance(low, int) and not isinstance(low, bool) else 0
            group = pool.group = NodeGroup(
                pool.namespace, f"kubernetes-{cluster}", name, {}, version, now,
                replicas=release.initial_replicas(max(0, low)), last_change=now,
                release=pool.release)
        template = release.template_inputs(values, values)
        group.update(values, version, now, template, clamp=True)
        demand = controller.demand.get((pool.namespace, cluster, name))
        cp_ready_at = parent.cp_ready_at
        controller.nodes.autoscale(group, demand, cp_ready_at, now)
        controller.nodes.roll(group, cp_ready_at, now, controller.admits)
        patch = controller.patch_versions.get(version, version)
        bootstrap = release.bootstrap_ref(group.md_name, pool.namespace, group.md_name)
        owner = {"apiVersion": KUBERNETES_NODES.api_version, "kind": KUBERNETES_NODES.kind,
                 "name": pool.name, "uid": pool.uid, "controller": True,
                 "blockOwnerDeletion": True}
        written = controller.store.apply(
            MACHINE_DEPLOYMENTS, pool.namespace, group.md_name,
            controller.nodes.manifest(group, owner, patch, bootstrap))
        generation = int(written["metadata"].get("generation") or 1)
        status = controller.nodes.status(group, cp_ready_at, now, generation)
        controller.store.write_status(MACHINE_DEPLOYMENTS, pool.namespace, group.md_name, status)

    def _remove_machines(self, pool: PoolState) -> None:
        if pool.group is None:
            return
        group, pool.group = pool.group, None
        try:
            self.controller.store.delete(MACHINE_DEPLOYMENTS, pool.namespace, group.md_name)
        except ApiError:
            pass

    def _write_status(self, pool: PoolState, obj: Obj, now: float) -> None:
        if pool.ready is None:
            return
        status, reason, message = pool.ready
        current = (obj.get("status") or {}).get("conditions") or []
        before: Obj = next((c for c in current if c.get("type") == "Ready"), {})
        since = before.get("lastTransitionTime") if before.get("status") == status else None
        body = {"version": self.controller.chart_version, "conditions": [{
            "type": "Ready", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": since or rfc3339(now)}]}
        self.controller.store.write_status(KUBERNETES_NODES, pool.namespace, pool.name, body)

    # --- the controller's bookkeeping ----------------------------------------------------------

    def due_times(self) -> list[float]:
        times: list[float] = []
        for pool in self.pools.values():
            group = pool.group
            if group is None:
                continue
            cluster = group.cluster.removeprefix("kubernetes-")
            parent = self.controller.states.get((pool.namespace, cluster))
            demand = self.controller.demand.get((pool.namespace, cluster, group.name))
            times += self.controller.nodes.due_times(
                group, demand, parent.cp_ready_at if parent else None)
        return times

    def touch(self, namespace: str, cluster: str, name: str, now: float) -> None:
        """Pending pods changed the demand on a pool: the autoscaler looks again."""
        pool = self.pools.get((namespace, f"{cluster}-{name}"))
        if pool is not None and pool.group is not None:
            pool.group.last_change = now

    def snapshot(self) -> list[Obj]:
        return [pool.to_dict() for pool in self.pools.values()]

    def restore(self, data: list[Obj]) -> None:
        pools = [PoolState.from_dict(item) for item in data]
        self.pools = {(pool.namespace, pool.name): pool for pool in pools}
