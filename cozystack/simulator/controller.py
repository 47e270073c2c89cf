"""The platform side of a `Kubernetes` object: what Flux/Helm, Kamaji, CAPI and cozystack-api do.

Level-triggered and clock-driven: every `tick()` looks at all `Kubernetes` objects and moves each
one along the timeline below, writing only what changed (so watches see real transitions).

    create / spec change  -> Ready=Unknown Progressing ("Helm install in progress")
    +fail_after (invalid) -> Ready=False InstallFailed/UpgradeFailed with Helm's message
    v1.3: +ready_after    -> kubeconfig Secret, Ready=True InstallSucceeded, WorkloadsReady
    v1.6: +apply_after    -> Ready=True InstallSucceeded (manifests applied, nothing waited for)
          +ready_after    -> control plane up: kubeconfig Secret, then WorkloadsReady
    delete                -> Ready=False Deleting; +delete_after the object and dependents go

The release (`releases.py`) decides the chart values, the render guards and these behaviours;
a platform upgrade swaps it and every HelmRelease is rendered again with the new chart.
"""

from __future__ import annotations

import dataclasses
import secrets
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .clock import Clock, rfc3339
from .errors import ApiError
from .kubeconfig import (
    OIDC_PLACEHOLDER,
    admin_kubeconfig_secret,
    api_host,
    oidc_kubeconfig_secret,
    oidc_kubeconfig_yaml,
)
from .nodes import Machine, NodeEngine, NodeGroup, Timing
from .pools import PoolReconciler
from .quotas import refusal, update_quota_status
from .releases import InstanceType, Release
from .render import RenderContext, failure
from .resources import (
    CONFIG_MAPS,
    EVENTS,
    KUBERNETES,
    MACHINE_DEPLOYMENTS,
    RESOURCE_QUOTAS,
    SECRETS,
)
from .schema import coalesce, helm_schema_failure, validate
from .store import Store

Obj = dict[str, Any]
Cond = tuple[str, str, str]  # (status, reason, message)
HELM_COMPONENT = "helm-controller"
NOT_OPERATIONAL = "One or more workloads are not operational"
AWAITING_ETCD_MESSAGE = (
    "No DataStore is available for this tenant Kubernetes cluster. The parent\n"
    "Tenant application has not populated _namespace.etcd. Set spec.etcd: true\n"
    "on an ancestor Tenant (usually tenant-root) and wait for its HelmRelease\n"
    "to reconcile - this HelmRelease will pick up the DataStore on its next\n"
    "5m reconcile loop and provision the cluster.\n"
)


@dataclass
class Attempt:
    """One Helm install/upgrade run, decided when it starts and reported when it is due."""

    action: str  # "install" | "upgrade"
    due: float
    error: str | None
    revision: int
    values: Obj
    done: bool = False
    started: float = 0.0
    awaiting: bool = False  # the tenant has no etcd: only the beacon ConfigMap renders (v1.6)


@dataclass
class ClusterState:
    namespace: str
    name: str
    uid: str
    seen_generation: int = 0
    chart: str = ""  # the chart revision the current values were last rendered with
    rerender: bool = False  # render again without a spec change (the tenant's etcd changed)
    revision: int = 0
    attempt: Attempt | None = None
    installed: bool = False
    deployed_version: str | None = None
    applied: Obj | None = None
    awaiting: bool = False
    cp_ready_at: float | None = None
    ready: Cond | None = None
    released: Cond | None = None
    forced: Cond | None = None
    deleting_since: float | None = None
    uninstalled: bool = False
    oidc_due: float | None = None  # when the OIDC bootstrap Job next finishes
    oidc_bindings: dict[str, str] = field(default_factory=dict)  # email -> ClusterRole
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

    def to_dict(self) -> Obj:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Obj) -> ClusterState:
        """The inverse of `to_dict` (JSON turned the condition tuples into lists)."""
        values = dict(data)
        for key in ("ready", "released", "forced"):
            values[key] = tuple(values[key]) if values.get(key) else None
        if values.get("attempt"):
            values["attempt"] = Attempt(**values["attempt"])
        groups = {}
        for name, group in (values.get("groups") or {}).items():
            machines = [Machine(**machine) for machine in group.get("machines") or []]
            groups[name] = NodeGroup(**{**group, "machines": machines})
        values["groups"] = groups
        return cls(**values)


def _minor(version: Any) -> int | None:
    try:
        return int(str(version).removeprefix("v").split(".")[1])
    except (IndexError, ValueError):
        return None


def _oidc(values: Obj | None) -> Obj:
    oidc = (values or {}).get("oidc")
    return oidc if isinstance(oidc, dict) else {}


class PlatformController:
    """Drives every `Kubernetes` object; thread-safe (`tick` may run from any thread)."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        release: Release,
        schema: Obj,
        timing: Timing,
        instance_types: Iterable[str] | None = None,
        root_host: str = "example.org",
        oidc_enabled: bool = True,
    ) -> None:
        self.store = store
        self.clock = clock
        self.timing = timing
        self.root_host = root_host
        self.oidc_enabled = oidc_enabled
        self.instance_type_names = None if instance_types is None else tuple(instance_types)
        self.nodes = NodeEngine(timing)
        self.states: dict[tuple[str, str], ClusterState] = {}
        self.demand: dict[tuple[str, str, str], int] = {}
        self.without_etcd: set[str] = set()
        # The last quota admission of a new machine per MachineDeployment: the refusal, or None.
        self.refusals: dict[tuple[str, str], str | None] = {}
        self.quotas: dict[str, list[Obj]] = {}
        self.lock = threading.RLock()
        self.set_release(release, schema)
        self.node_pools = PoolReconciler(self)

    def set_release(self, release: Release, schema: Obj) -> None:
        """Run `release`'s chart from now on; every cluster renders again at its next tick."""
        with self.lock:
            self.release = release
            self.schema = schema
            self.chart_values = release.chart_values()
            self.chart_version = release.chart_version
            self.patch_versions = dict(release.patch_versions)
            self.instance_types = self._instance_types(release)

    def _instance_types(self, release: Release) -> dict[str, InstanceType]:
        if self.instance_type_names is None:
            return dict(release.instance_types)
        return {
            name: release.instance_types.get(name) or InstanceType(name, 1.0, 4.0 * 2**30)
            for name in self.instance_type_names
        }

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
                times += [t for t in (state.cp_ready_at, state.oidc_due) if t is not None]
                for group in state.groups.values():
                    demand = self.demand.get((state.namespace, state.name, group.name))
                    times += self.nodes.due_times(group, demand, state.cp_ready_at)
            times += self.node_pools.due_times()
            future = [t for t in times if t > now]
            return min(future) if future else None

    def _pass(self, now: float) -> None:
        quotas = self.store.raw_items(RESOURCE_QUOTAS)
        by_namespace: dict[str, list[Obj]] = {}
        for quota in quotas:
            by_namespace.setdefault(quota["metadata"].get("namespace") or "", []).append(quota)
        self.quotas = by_namespace
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
        self.node_pools.reconcile(now)
        update_quota_status(self.store, self, quotas)

    def admits(self, group: NodeGroup) -> bool:
        """Does the namespace's ResourceQuota admit one more machine of `group`? A refusal
        leaves the group short (missing workers, no API error) and is remembered on it."""
        pod = f"virt-launcher-{group.md_name}-{group.template[:5]}-{group.serial + 1:05d}"
        message = refusal(self, self.quotas.get(group.namespace, []), group, pod)
        self.refusals[(group.namespace, group.md_name)] = message
        return message is None

    def _reconcile(self, state: ClusterState, obj: Obj, now: float) -> None:
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            self._reconcile_delete(state, now)
            return
        generation = int(meta.get("generation") or 1)
        if (
            generation != state.seen_generation
            or state.chart != self.chart_version
            or state.rerender
        ):
            state.seen_generation, state.chart = generation, self.chart_version
            state.rerender, state.forced = False, None
            self._start_attempt(state, obj.get("spec") or {}, now)
        attempt = state.attempt
        if attempt and not attempt.done and now >= attempt.due:
            self._finish_attempt(state, attempt)
        self._reconcile_groups(state, now)
        self._ensure_kubeconfig(state, now)
        self._run_oidc_job(state, now)
        self._write_status(state, now)

    # --- Helm ----------------------------------------------------------------------------------

    def _start_attempt(self, state: ClusterState, spec: Obj, now: float) -> None:
        values = coalesce(spec, self.chart_values)
        action = "upgrade" if state.installed else "install"
        state.revision += 1
        has_etcd = state.namespace not in self.without_etcd
        awaiting = not has_etcd and self.release.renders_etcd_beacon
        error = self._helm_error(state, values, action, has_etcd, awaiting)
        if error:
            delay = self.timing.fail_after
        else:
            if not self.release.ready_waits_for_control_plane:
                delay = self.timing.apply_after
            elif action == "install":
                delay = self.timing.ready_after
            else:
                delay = self.timing.upgrade_after
            state.applied, state.awaiting = values, awaiting
        state.attempt = Attempt(
            action, now + delay, error, state.revision, values, started=now, awaiting=awaiting
        )
        progressing = ("Unknown", "Progressing", f"Helm {action} in progress")
        state.ready = state.released = progressing

    def _helm_error(
        self, state: ClusterState, values: Obj, action: str, has_etcd: bool, awaiting: bool
    ) -> str | None:
        prefix = (
            f"Helm {action} failed for release {state.namespace}/{state.release} "
            f"with chart kubernetes@{self.chart_version}: "
        )
        problems = validate(self.schema, values)
        if problems:
            return prefix + helm_schema_failure(problems)
        context = RenderContext(state.namespace, has_etcd, self.oidc_enabled, self.instance_types)
        rendered = failure(self.release, values, context)
        if rendered:
            return prefix + rendered
        if awaiting:
            return None
        if not has_etcd:
            return (
                prefix + f'KamajiControlPlane "{state.release}" has an empty dataStoreName: no '
                "DataStore is available for this tenant (set etcd: true on an ancestor Tenant)"
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
        message = (
            f"Helm {attempt.action} succeeded for release {state.namespace}/{state.release}"
            f".v{attempt.revision} with chart kubernetes@{self.chart_version}"
        )
        state.ready = state.released = ("True", f"{verb}Succeeded", message)
        if attempt.awaiting:
            self._await_etcd(state)
        else:
            state.deployed_version = attempt.values.get("version")
            self._delete(CONFIG_MAPS, state.namespace, f"{state.release}-awaiting-etcd")
            if state.cp_ready_at is None:
                state.cp_ready_at = max(attempt.due, attempt.started + self.timing.ready_after)
        self._apply_oidc(state, attempt)
        self._release_event(state, "Normal", f"{verb}Succeeded", message)

    def _await_etcd(self, state: ClusterState) -> None:
        """v1.6 with no DataStore: the chart renders only a status ConfigMap (and no control
        plane, so a control plane that was running goes with its kubeconfig)."""
        body: Obj = {
            "metadata": {
                "name": f"{state.release}-awaiting-etcd",
                "namespace": state.namespace,
                "labels": {
                    "app.kubernetes.io/managed-by": "Helm",
                    "app.kubernetes.io/name": "kubernetes",
                    "app.kubernetes.io/instance": state.release,
                },
                "ownerReferences": [state.owner()],
            },
            "data": {"status": "awaiting-etcd", "message": AWAITING_ETCD_MESSAGE},
        }
        self.store.apply(CONFIG_MAPS, state.namespace, body["metadata"]["name"], body)
        if state.cp_ready_at is not None:
            state.cp_ready_at = None
            self._delete(SECRETS, state.namespace, f"{state.release}-admin-kubeconfig")

    def _delete(self, rtype: Any, namespace: str, name: str) -> None:
        try:
            self.store.delete(rtype, namespace, name)
        except ApiError:
            pass

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
        release = self.release
        wanted = {} if state.awaiting else release.node_groups(state.applied)
        version = str(state.applied.get("version") or "")
        patch = self.patch_versions.get(version, version)
        for name, spec in wanted.items():
            group = state.groups.get(name)
            if group is None:
                low = spec.get("minReplicas")
                low = low if isinstance(low, int) and not isinstance(low, bool) else 0
                group = state.groups[name] = NodeGroup(
                    state.namespace,
                    state.release,
                    name,
                    {},
                    version,
                    now,
                    replicas=release.initial_replicas(max(0, low)),
                    last_change=now,
                )
            template = release.template_inputs(spec, state.applied)
            group.update(spec, version, now, template, clamp=release.v16)
            self._step_group(state, group, now, patch)
        for name in list(state.groups):
            if name not in wanted:
                group = state.groups.pop(name)
                self._delete(MACHINE_DEPLOYMENTS, state.namespace, group.md_name)

    def _step_group(self, state: ClusterState, group: NodeGroup, now: float, patch: str) -> None:
        demand = self.demand.get((state.namespace, state.name, group.name))
        moved = self.nodes.autoscale(group, demand, state.cp_ready_at, now)
        self.refusals.pop((state.namespace, group.md_name), None)
        self.nodes.roll(group, state.cp_ready_at, now, self.admits)
        bootstrap = self.release.bootstrap_ref(
            group.md_name, state.namespace, f"{group.md_name}-{group.template}"
        )
        written = self.store.apply(
            MACHINE_DEPLOYMENTS,
            state.namespace,
            group.md_name,
            self.nodes.manifest(group, state.owner(), patch, bootstrap),
        )
        generation = int(written["metadata"].get("generation") or 1)
        status = self.nodes.status(group, state.cp_ready_at, now, generation)
        self.store.write_status(MACHINE_DEPLOYMENTS, state.namespace, group.md_name, status)
        refused = self.refusals.get((state.namespace, group.md_name))
        if refused and not group.refused:
            self._event(state.namespace, self._md_ref(written), "Warning", "FailedCreate",
                        refused, "virtualmachine-controller")
        group.refused = bool(refused)
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
            self.without_etcd.clear()
            self.node_pools.pools.clear()
            self.refusals.clear()
            self.quotas.clear()

    def set_demand(self, namespace: str, cluster: str, group: str, replicas: int) -> None:
        with self.lock:
            self.demand[(namespace, cluster, group)] = replicas
            state = self.states.get((namespace, cluster))
            if state and group in state.groups:
                state.groups[group].last_change = self.clock.time()
            self.node_pools.touch(namespace, cluster, group, self.clock.time())

    def set_tenant_etcd(self, namespace: str, has_etcd: bool) -> None:
        """The tenant (namespace) gains or loses its DataStore; its clusters render again, as
        Flux's periodic reconcile would pick it up."""
        with self.lock:
            if has_etcd:
                self.without_etcd.discard(namespace)
            else:
                self.without_etcd.add(namespace)
            for state in self.states.values():
                if state.namespace == namespace:
                    state.rerender = True

    # --- kubeconfigs and status ----------------------------------------------------------------

    def _host(self, state: ClusterState) -> str:
        spec_host = str((state.applied or {}).get("host") or "")
        return api_host(state.namespace, state.name, spec_host, self.root_host)

    def _ensure_kubeconfig(self, state: ClusterState, now: float) -> None:
        """Kamaji writes the admin kubeconfig once the control plane is up (404 before)."""
        if state.cp_ready_at is None or now < state.cp_ready_at:
            return
        name = f"{state.release}-admin-kubeconfig"
        if self.store.raw(SECRETS, state.namespace, name) is not None:
            return
        host = self._host(state)
        secret = admin_kubeconfig_secret(state.namespace, state.name, host, state.owner())
        self.store.apply(SECRETS, state.namespace, name, secret)

    def _apply_oidc(self, state: ClusterState, attempt: Attempt) -> None:
        """Manifests applied: `System` renders the OIDC kubeconfig Secret as a placeholder (kept
        if the Job filled it already); the bootstrap Job (a hook, run on every upgrade) is due
        once the admin kubeconfig exists. `None` removes the Secret and the bindings."""
        mode = _oidc(attempt.values).get("mode") or "None"
        name = f"{state.release}-oidc-kubeconfig"
        if mode == "System":
            if self.store.raw(SECRETS, state.namespace, name) is None:
                secret = oidc_kubeconfig_secret(
                    state.namespace, state.name, state.owner(), self.chart_version, OIDC_PLACEHOLDER
                )
                self.store.apply(SECRETS, state.namespace, name, secret)
        else:
            self._delete(SECRETS, state.namespace, name)
        if mode == "None":
            state.oidc_due, state.oidc_bindings = None, {}
            return
        state.oidc_due = attempt.due + self.timing.oidc_after

    def _run_oidc_job(self, state: ClusterState, now: float) -> None:
        """The OIDC bootstrap Job: waits for the admin kubeconfig, binds `oidc.users` inside the
        tenant cluster, then (`System`) replaces the placeholder with an `oidc-login` kubeconfig."""
        if state.oidc_due is None or state.cp_ready_at is None:
            return
        due = max(state.oidc_due, state.cp_ready_at + self.timing.oidc_after)
        if now < due:
            return
        state.oidc_due = None
        oidc = _oidc(state.applied)
        state.oidc_bindings = {
            str(user.get("email")): "cluster-admin" if user.get("role") == "admin" else "view"
            for user in oidc.get("users") or []
            if isinstance(user, dict)
        }
        if oidc.get("mode") != "System":
            return
        text = oidc_kubeconfig_yaml(
            state.namespace, state.name, self._host(state), state.uid, self.root_host
        )
        secret = oidc_kubeconfig_secret(
            state.namespace, state.name, state.owner(), self.chart_version, text
        )
        self.store.apply(SECRETS, state.namespace, secret["metadata"]["name"], secret)

    def _workloads(self, state: ClusterState, now: float) -> Cond | None:
        """cozystack-api's WorkloadsReady, from WorkloadMonitors (absent until they exist)."""
        if state.applied is None or state.awaiting:
            return None
        if state.cp_ready_at is None or now < state.cp_ready_at:
            if self.release.v16 and state.installed:
                # Manifests applied, so the monitors exist; the control plane is not up yet.
                return ("False", "WorkloadMonitorCheck", NOT_OPERATIONAL)
            return ("Unknown", "Pending", "Workload monitors are not reconciled yet")
        for group in state.groups.values():
            if self.nodes.ready_count(group, state.cp_ready_at, now) < group.bounds[0]:
                return ("False", "WorkloadMonitorCheck", NOT_OPERATIONAL)
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

    # --- saved state ---------------------------------------------------------------------------

    def snapshot(self) -> Obj:
        """Everything the controller knows beyond the stored objects (for a restart)."""
        with self.lock:
            return {
                "states": [state.to_dict() for state in self.states.values()],
                "demand": [[*key, replicas] for key, replicas in self.demand.items()],
                "withoutEtcd": sorted(self.without_etcd),
                "pools": self.node_pools.snapshot(),
            }

    def restore(self, data: Obj) -> None:
        with self.lock:
            states = [ClusterState.from_dict(item) for item in data.get("states") or []]
            self.states = {(state.namespace, state.name): state for state in states}
            self.demand = {tuple(item[:3]): int(item[3]) for item in data.get("demand") or []}
            self.without_etcd = set(data.get("withoutEtcd") or [])
            self.node_pools.restore(data.get("pools") or [])

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
