"""The platform side of a `Kubernetes` object: what Flux/Helm, Kamaji, CAPI and cozystack-api do.

Level-triggered and clock-driven: every `tick()` looks at all `Kubernetes` objects and moves each
one along the timeline below, writing only what changed (so watches see real transitions).

    create / spec change  -> Ready=Unknown Progressing ("Helm install in progress")
    +fail_after (invalid) -> Ready=False InstallFailed/UpgradeFailed with Helm's message
    +ready_after (valid)  -> kubeconfig Secret, Ready=True InstallSucceeded, WorkloadsReady
    delete                -> Ready=False Deleting; +delete_after the object and dependents go
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, rfc3339
from .errors import ApiError
from .kubeconfig import admin_kubeconfig_secret, api_host
from .nodes import NodeEngine, NodeGroup, Timing
from .resources import EVENTS, KUBERNETES, MACHINE_DEPLOYMENTS, SECRETS
from .schema import chart_values, coalesce, helm_schema_failure, validate
from .store import Store

Obj = dict[str, Any]
Cond = tuple[str, str, str]  # (status, reason, message)
DEFAULT_PATCHES = {
    "v1.35": "v1.35.1",
    "v1.34": "v1.34.4",
    "v1.33": "v1.33.8",
    "v1.32": "v1.32.12",
    "v1.31": "v1.31.14",
    "v1.30": "v1.30.14",
}
HELM_COMPONENT = "helm-controller"


@dataclass
class Attempt:
    """One Helm install/upgrade run, decided when it starts and reported when it is due."""

    action: str  # "install" | "upgrade"
    due: float
    error: str | None
    revision: int
    values: Obj
    done: bool = False


@dataclass
class ClusterState:
    namespace: str
    name: str
    uid: str
    seen_generation: int = 0
    revision: int = 0
    attempt: Attempt | None = None
    installed: bool = False
    deployed_version: str | None = None
    applied: Obj | None = None
    cp_ready_at: float | None = None
    ready: Cond | None = None
    released: Cond | None = None
    forced: Cond | None = None
    deleting_since: float | None = None
    uninstalled: bool = False
    groups: dict[str, NodeGroup] = field(default_factory=dict)

    @property
    def release(self) -> str:
        return f"kubernetes-{self.name}"

    def owner(self) -> Obj:
        return {
            "apiVersion": KUBERNETES.api_version,
            "kind": KUBERNETES.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def _minor(version: Any) -> int | None:
    try:
        return int(str(version).removeprefix("v").split(".")[1])
    except (IndexError, ValueError):
        return None


class PlatformController:
    """Drives every `Kubernetes` object; thread-safe (`tick` may run from any thread)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        schema: Obj,
        timing: Timing,
        instance_types: Iterable[str],
        chart_version: str = "0.31.2",
        root_host: str = "example.org",
        patch_versions: dict[str, str] | None = None,
    ) -> None:
        self.store = store
        self.clock = clock
        self.schema = schema
        self.timing = timing
        self.instance_types = set(instance_types)
        self.chart_version = chart_version
        self.root_host = root_host
        self.patch_versions = patch_versions or dict(DEFAULT_PATCHES)
        self.chart_values = chart_values(schema)
        self.nodes = NodeEngine(timing)
        self.states: dict[tuple[str, str], ClusterState] = {}
        self.demand: dict[tuple[str, str, str], int] = {}
        self.lock = threading.RLock()

    # --- driving -----------------------------------------------------------------------------

    def tick(self) -> None:
        """Process everything due now, repeating until nothing changes (transitions chain)."""
        with self.lock:
            now = self.clock.time()
            for _ in range(8):
                before = self.store.resource_version
                self._pass(now)
                if self.store.resource_version == before:
                    break

    def next_due(self, now: float) -> float | None:
        """Earliest future time at which something will happen (for stepping a ManualClock)."""
        with self.lock:
            times: list[float] = []
            for state in self.states.values():
                if state.attempt and not state.attempt.done:
                    times.append(state.attempt.due)
                if state.deleting_since is not None and not state.uninstalled:
                    times.append(state.deleting_since + self.timing.delete_after)
                for group in state.groups.values():
                    demand = self.demand.get((state.namespace, state.name, group.name))
                    times += self.nodes.due_times(group, demand, state.cp_ready_at)
            future = [t for t in times if t > now]
            return min(future) if future else None

    def _pass(self, now: float) -> None:
        seen = set()
        for obj in self.store.raw_items(KUBERNETES):
            meta = obj["metadata"]
            key = (meta["namespace"], meta["name"])
            seen.add(key)
            state = self.states.get(key)
            if state is None or state.uid != meta["uid"]:
                state = self.states[key] = ClusterState(key[0], key[1], meta["uid"])
            self._reconcile(state, obj, now)
        for key in list(self.states):
            if key not in seen:
                del self.states[key]
                self.demand = {d: n for d, n in self.demand.items() if d[:2] != key}

    def _reconcile(self, state: ClusterState, obj: Obj, now: float) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            self._reconcile_delete(state, now)
            return
        generation = int(meta.get("generation") or 1)
        if generation != state.seen_generation:
            state.seen_generation = generation
            state.forced = None
            self._start_attempt(state, obj.get("spec") or {}, now)
        attempt = state.attempt
        if attempt and not attempt.done and now >= attempt.due:
            self._finish_attempt(state, attempt)
        self._reconcile_groups(state, now)
        self._ensure_kubeconfig(state)
        self._write_status(state, now)

    # --- Helm ----------------------------------------------------------------------------------

    def _start_attempt(self, state: ClusterState, spec: Obj, now: float) -> None:
        values = coalesce(spec, self.chart_values)
        action = "upgrade" if state.installed else "install"
        state.revision += 1
        error = self._helm_error(state, values, action)
        if error:
            delay = self.timing.fail_after
        else:
            delay = self.timing.ready_after if action == "install" else self.timing.upgrade_after
            state.applied = values
        state.attempt = Attempt(action, now + delay, error, state.revision, values)
        progressing = ("Unknown", "Progressing", f"Helm {action} in progress")
        state.ready = state.released = progressing

    def _helm_error(self, state: ClusterState, values: Obj, action: str) -> str | None:
        prefix = (
            f"Helm {action} failed for release {state.namespace}/{state.release} "
            f"with chart kubernetes@{self.chart_version}: "
        )
        problems = validate(self.schema, values)
        if problems:
            return prefix + helm_schema_failure(problems)
        for group in (values.get("nodeGroups") or {}).values():
            kind = group.get("instanceType") if isinstance(group, dict) else None
            if kind and kind not in self.instance_types:
                return (
                    prefix + "execution error at (kubernetes/templates/cluster.yaml:213:10): "
                    f"Specified instancetype not exists in cluster: {kind}"
                )
        refusal = self._version_refusal(state.deployed_version, values.get("version"))
        if refusal:
            return (
                prefix + f'cannot patch "{state.release}" with kind TenantControlPlane: '
                'admission webhook "vtenantcontrolplane.kb.io" denied the request: ' + refusal
            )
        return None

    def _version_refusal(self, current: Any, wanted: Any) -> str | None:
        """Kamaji's webhook: no downgrade, no skipping a minor (PLATFORM.md g)."""
        old, new = _minor(current), _minor(wanted)
        if old is None or new is None or new == old:
            return None
        old_patch = self.patch_versions.get(current, current)
        new_patch = self.patch_versions.get(wanted, wanted)
        if new < old:
            return f"unable to downgrade a TenantControlPlane from {old_patch} to {new_patch}"
        if new > old + 1:
            return (
                "unable to upgrade to a version greater than the next minor version "
                f"({old_patch} -> {new_patch})"
            )
        return None

    def _finish_attempt(self, state: ClusterState, attempt: Attempt) -> None:
        attempt.done = True
        verb = attempt.action.capitalize()
        if attempt.error:
            state.ready = state.released = ("False", f"{verb}Failed", attempt.error)
            self._release_event(state, "Warning", f"{verb}Failed", attempt.error)
            return
        state.installed = True
        state.deployed_version = attempt.values.get("version")
        message = (
            f"Helm {attempt.action} succeeded for release {state.namespace}/{state.release}"
            f".v{attempt.revision} with chart kubernetes@{self.chart_version}"
        )
        state.ready = state.released = ("True", f"{verb}Succeeded", message)
        if state.cp_ready_at is None:
            state.cp_ready_at = attempt.due
        self._release_event(state, "Normal", f"{verb}Succeeded", message)

    # --- deletion ------------------------------------------------------------------------------

    def _reconcile_delete(self, state: ClusterState, now: float) -> None:
        if state.uninstalled:
            return
        if state.deleting_since is None:
            state.deleting_since = now
            state.forced = None
            state.ready = (
                "False",
                "Deleting",
                f"Uninstalling release {state.namespace}/{state.release}: removing addons, "
                "control plane and volumes",
            )
            self._release_event(state, "Normal", "UninstallStarted", state.ready[2])
            self._write_status(state, now)
        if now >= state.deleting_since + self.timing.delete_after:
            state.uninstalled = True
            self._release_event(
                state,
                "Normal",
                "UninstallSucceeded",
                f"Helm uninstall succeeded for release "
                f"{state.namespace}/{state.release}.v{state.revision}",
            )
            self.store.release(KUBERNETES, state.namespace, state.name)

    # --- node groups ---------------------------------------------------------------------------

    def _reconcile_groups(self, state: ClusterState, now: float) -> None:
        if state.applied is None:
            return
        wanted = state.applied.get("nodeGroups") or {}
        version = str(state.applied.get("version") or "")
        patch = self.patch_versions.get(version, version)
        for name, spec in wanted.items():
            group = state.groups.get(name)
            if group is None:
                group = state.groups[name] = NodeGroup(
                    state.namespace, state.release, name, {}, version, now, last_change=now
                )
            group.update(spec, version, now)
            self._step_group(state, group, now, patch)
        for name in list(state.groups):
            if name not in wanted:
                group = state.groups.pop(name)
                try:
                    self.store.delete(MACHINE_DEPLOYMENTS, state.namespace, group.md_name)
                except ApiError:
                    pass

    def _step_group(self, state: ClusterState, group: NodeGroup, now: float, patch: str) -> None:
        demand = self.demand.get((state.namespace, state.name, group.name))
        moved = self.nodes.autoscale(group, demand, state.cp_ready_at, now)
        self.nodes.roll(group, state.cp_ready_at, now)
        written = self.store.apply(
            MACHINE_DEPLOYMENTS,
            state.namespace,
            group.md_name,
            self.nodes.manifest(group, state.owner(), patch),
        )
        generation = int(written["metadata"].get("generation") or 1)
        status = self.nodes.status(group, state.cp_ready_at, now, generation)
        self.store.write_status(MACHINE_DEPLOYMENTS, state.namespace, group.md_name, status)
        if moved:
            before, after = moved
            direction = "up" if after > before else "down"
            self._event(
                state.namespace,
                self._md_ref(written),
                "Normal",
                "ScalingReplicaSet",
                f"Scaled {direction} MachineSet {group.md_name}-{group.template[:5]} "
                f"from {before} to {after}",
                "machinedeployment-controller",
            )

    def reset(self) -> None:
        with self.lock:
            self.states.clear()
            self.demand.clear()

    def set_demand(self, namespace: str, cluster: str, group: str, replicas: int) -> None:
        with self.lock:
            self.demand[(namespace, cluster, group)] = replicas
            state = self.states.get((namespace, cluster))
            if state and group in state.groups:
                state.groups[group].last_change = self.clock.time()

    # --- kubeconfig and status -----------------------------------------------------------------

    def _ensure_kubeconfig(self, state: ClusterState) -> None:
        """Kamaji writes the admin kubeconfig once the control plane is up (404 before)."""
        if state.cp_ready_at is None:
            return
        name = f"{state.release}-admin-kubeconfig"
        if self.store.raw(SECRETS, state.namespace, name) is not None:
            return
        spec_host = str((state.applied or {}).get("host") or "")
        host = api_host(state.namespace, state.name, spec_host, self.root_host)
        secret = admin_kubeconfig_secret(state.namespace, state.name, host, state.owner())
        self.store.apply(SECRETS, state.namespace, name, secret)

    def _workloads(self, state: ClusterState, now: float) -> Cond | None:
        """cozystack-api's WorkloadsReady, from WorkloadMonitors (absent until they exist)."""
        if state.applied is None:
            return None
        if state.cp_ready_at is None or now < state.cp_ready_at:
            return ("Unknown", "Pending", "Workload monitors are not reconciled yet")
        for group in state.groups.values():
            if self.nodes.ready_count(group, state.cp_ready_at, now) < group.bounds[0]:
                return (
                    "False",
                    "WorkloadMonitorCheck",
                    "One or more workloads are not operational",
                )
        return ("True", "WorkloadMonitorCheck", "All workloads are operational")

    def _write_status(self, state: ClusterState, now: float) -> None:
        current = self.store.raw(KUBERNETES, state.namespace, state.name)
        if current is None:
            return
        previous = {c.get("type"): c for c in (current.get("status") or {}).get("conditions", [])}
        wanted = [
            ("Ready", state.forced or state.ready),
            ("Released", state.released),
            ("WorkloadsReady", self._workloads(state, now)),
        ]
        conditions = []
        for kind, cond in wanted:
            if cond is None:
                continue
            status, reason, message = cond
            before = previous.get(kind) or {}
            since = before.get("lastTransitionTime") if before.get("status") == status else None
            conditions.append(
                {
                    "type": kind,
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": since or rfc3339(now),
                }
            )
        status_body = {"version": self.chart_version, "conditions": conditions}
        self.store.write_status(KUBERNETES, state.namespace, state.name, status_body)

    def fail_cluster(self, namespace: str, name: str, reason: str, message: str) -> None:
        """Force Ready=False until the spec changes (tests of failure display)."""
        with self.lock:
            state = self.states.get((namespace, name))
            if state is None:
                raise KeyError(f"no Kubernetes {namespace}/{name}")
            state.forced = ("False", reason, message)
            self._release_event(state, "Warning", reason, message)
            self._write_status(state, self.clock.time())

    # --- events --------------------------------------------------------------------------------

    def _release_event(self, state: ClusterState, kind: str, reason: str, message: str) -> None:
        ref = {
            "apiVersion": "helm.toolkit.fluxcd.io/v2",
            "kind": "HelmRelease",
            "name": state.release,
            "namespace": state.namespace,
        }
        self._event(state.namespace, ref, kind, reason, message, HELM_COMPONENT)

    def _md_ref(self, md: Obj) -> Obj:
        meta = md["metadata"]
        return {
            "apiVersion": MACHINE_DEPLOYMENTS.api_version,
            "kind": MACHINE_DEPLOYMENTS.kind,
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        }

    def _event(
        self, namespace: str, ref: Obj, kind: str, reason: str, message: str, component: str
    ) -> None:
        stamp = rfc3339(self.clock.time())
        name = f"{ref['name']}.{secrets.token_hex(8)}"
        body = {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "type": kind,
            "count": 1,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": f"{component}-sim",
        }
        self.store.apply(EVENTS, namespace, name, body)
