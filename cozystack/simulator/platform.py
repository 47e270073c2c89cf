"""`SimulatedPlatform`: the whole simulated management cluster behind one object.

Runs in-process (tests) or standalone (`manage.py simulate_platform`); it never imports Django.
It runs one Cozystack release at a time (`releases.py`) and can be upgraded to a newer one while
it serves (`upgrade`); with a `state_path` it keeps its objects across restarts (`persist.py`).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import threading
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from . import migrations
from .clock import Clock, ManualClock, RealClock
from .controller import PlatformController
from .errors import ApiError, not_found
from .faults import Fault, FaultSet
from .kubeconfig import kubeconfig_yaml
from .nodes import Timing
from .patch import merge_patch
from .persist import FORMAT, StateError, StateWriter, read_state
from .quotas import QUOTA_NAMES, parent_quota_refusal, quota_body, update_quota_status
from .releases import DEFAULT_RELEASE, Release, load_release
from .resources import (
    APPLICATION_DEFINITIONS,
    KUBERNETES,
    KUBERNETES_NODES,
    OPTION_SOURCES,
    OPTIONS,
    RESOURCE_QUOTAS,
    build_registry,
)
from .schema import apply_defaults, load_schema, prune_nulls
from .server import RequestRecord, SimulatorHTTPServer
from .store import Selection, Store

Obj = dict[str, Any]
# GPUs the simulated nodes advertise as allocatable (node -> resource name -> count).
DEFAULT_GPU_NODES: dict[str, dict[str, int]] = {
    "gpu-node-1": {"nvidia.com/AD102GL_L40S": 4},
    "gpu-node-2": {"nvidia.com/AD102GL_L40S": 4, "nvidia.com/GA100_A100_PCIE_80GB": 2},
    "gpu-node-3": {"nvidia.com/GH100_H100L_94GB": 8},
}
# StorageClasses of the simulated platform; the flag marks the cluster default.
DEFAULT_STORAGE_CLASSES: tuple[tuple[str, bool], ...] = (
    ("local", True),
    ("replicated", False),
    ("replicated-async", False),
)


class SimulatedPlatform:
    """A Kubernetes-API server over loopback HTTP plus a Cozystack-like controller.

    With a `ManualClock` nothing moves until `advance()`/`tick()`; with the real clock (default)
    a background thread ticks every `tick_interval` seconds.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = "simulator-token",  # noqa: S107 - a loopback test double, not a secret
        release: str = DEFAULT_RELEASE,
        schema_path: str | Path | None = None,
        state_path: str | Path | None = None,
        clock: Clock | None = None,
        ready_after: float = 1.0,
        node_ready_after: float = 0.5,
        settle_after: float = 0.5,
        delete_after: float = 0.5,
        upgrade_after: float = 0.5,
        fail_after: float = 0.2,
        apply_after: float = 0.2,
        oidc_after: float = 0.5,
        instance_types: Iterable[str] | None = None,
        root_host: str = "example.org",
        oidc_enabled: bool = True,
        gpu_nodes: dict[str, dict[str, int]] | None = None,
        storage_classes: Iterable[tuple[str, bool]] = DEFAULT_STORAGE_CLASSES,
        history_size: int = 1000,
        watch_timeout: float = 1800.0,
        tick_interval: float = 0.05,
        tick_on_write: bool = True,
        request_log_limit: int = 100_000,
        state_interval: float = 0.5,
    ) -> None:
        self.host, self.port, self.token = host, port, token
        self.clock: Clock = clock or RealClock()
        self.state_path = Path(state_path) if state_path is not None else None
        saved = read_state(self.state_path) if self.state_path is not None else None
        wanted = load_release(release)
        self.release, self.notice = self._saved_release(saved, wanted)
        if schema_path is not None:
            self.schema, self.schema_text = load_schema(schema_path)
        else:
            self.schema, self.schema_text = self.release.schema, self.release.schema_text
        self.registry = build_registry(self._present_kubernetes)
        self._serve_release_apis(self.release)
        self.store = Store(self.clock, self.registry, history_size)
        self.timing = Timing(
            ready_after,
            node_ready_after,
            settle_after,
            delete_after,
            upgrade_after,
            fail_after,
            apply_after,
            oidc_after,
        )
        self.controller = PlatformController(
            self.store,
            self.clock,
            self.release,
            self.schema,
            self.timing,
            instance_types,
            root_host=root_host,
            oidc_enabled=oidc_enabled,
        )
        self.gpu_nodes = copy.deepcopy(DEFAULT_GPU_NODES if gpu_nodes is None else gpu_nodes)
        self.storage_classes = tuple(storage_classes)
        # What the Option API answers a namespace instead of the platform's catalogue
        # (`set_options`): (namespace, source) -> items.
        self.option_overrides: dict[tuple[str, str], list[Obj]] = {}
        self.faults = FaultSet()
        self.server_errors: list[Obj] = []
        self.request_log: list[RequestRecord] = []
        self.down = False
        self.down_mode = "drop"
        self.stopping = False
        self.watch_timeout = watch_timeout
        self.tick_interval = tick_interval
        self.tick_on_write = tick_on_write
        self.request_log_limit = request_log_limit
        self.kubeconfig_path: Path | None = None
        self._server: SimulatorHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._stop_ticking = threading.Event()
        self._wake = False
        self._writer: StateWriter | None = None
        self.state_interval = state_interval
        if saved is not None:
            self._restore(saved)
        self._publish_application_definition()
        if wanted.key > self.release.key:
            self.upgrade(wanted.name)

    def _saved_release(self, saved: Obj | None, wanted: Release) -> tuple[Release, str]:
        """The release to start with: a saved platform keeps its own (it may have been
        upgraded, and never goes back); a newer `wanted` one is an upgrade done at start."""
        if saved is None:
            return wanted, ""
        try:
            release = load_release(str(saved.get("release")))
        except ValueError as error:
            raise StateError(f"{self.state_path}: {error}") from error
        if release.key <= wanted.key:
            return release, ""
        return release, (
            f"The saved platform in {self.state_path} runs Cozystack {release.name} (it was "
            f"upgraded); it cannot go back to {wanted.name}. Move the file away to start an "
            "empty platform."
        )

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> SimulatedPlatform:
        self._server = SimulatorHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        serve = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"simulator-http-{self.port}",
            daemon=True,
        )
        serve.start()
        self._threads.append(serve)
        if self.state_path is not None and self._writer is None:
            self._writer = StateWriter(
                self.state_path, self.snapshot, self._state_marker, self.state_interval
            )
            self._writer.start()
        if not getattr(self.clock, "manual", False):
            ticker = threading.Thread(target=self._tick_forever, name="simulator-tick", daemon=True)
            ticker.start()
            self._threads.append(ticker)
        return self

    def stop(self) -> None:
        """Stop serving, end open watches and join the threads (idempotent)."""
        self.stopping = True
        self._stop_ticking.set()
        self.store.close()
        if self._server is not None:
            self._server.shutdown()
            self._server.close_connections()
            self._server.server_close()
            self._server = None
        for thread in self._threads:
            thread.join(timeout=5)
        self._threads.clear()
        if self._writer is not None:
            self._writer.stop()
            self._writer = None

    def __enter__(self) -> SimulatedPlatform:
        return self.start() if self._server is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig for the real client (plain HTTP, bearer token).

        Written atomically: a parent process may poll for the file to appear.
        """
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(f".{target.name}.tmp")
        partial.write_text(kubeconfig_yaml("simulated-platform", self.url, "portal", self.token))
        os.replace(partial, target)
        self.kubeconfig_path = target
        return target

    # --- time ----------------------------------------------------------------------------------

    def tick(self) -> None:
        """Let the controller process everything due at the clock's current time."""
        self.controller.tick()

    def advance(self, seconds: float) -> None:
        """ManualClock only: move time forward, stopping at every due moment on the way."""
        clock = self.clock
        if not isinstance(clock, ManualClock):
            raise TypeError("advance() needs a ManualClock; the real clock advances by itself")
        target = clock.time() + seconds
        for _ in range(100_000):
            due = self.controller.next_due(clock.time())
            if due is None or due > target:
                break
            clock.set(due)
            self.tick()
        clock.set(target)
        self.tick()

    def after_write(self) -> None:
        """Controllers react to writes within milliseconds; do it synchronously here."""
        if self.tick_on_write:
            self._safe_tick()

    def _tick_forever(self) -> None:
        """Tick only when something was written or falls due, so an idle simulator stays idle."""
        seen_rv, due = -1, None
        while not self._stop_ticking.wait(self.tick_interval):
            now = self.clock.time()
            woken, self._wake = self._wake, False
            if not woken and self.store.resource_version == seen_rv and (due is None or now < due):
                continue
            self._safe_tick()
            seen_rv = self.store.resource_version
            due = self.controller.next_due(self.clock.time())

    def _safe_tick(self) -> None:
        try:
            self.tick()
        except Exception as error:  # noqa: BLE001 - a controller bug must be visible in tests
            self.record_server_error("TICK", "<controller>", error, traceback.format_exc())

    # --- test helpers --------------------------------------------------------------------------

    def set_down(self, down: bool = True, mode: str = "drop") -> None:
        """Platform unreachable: `drop` hangs up on every API request, `503` answers 503.

        `/_sim/` control endpoints keep working so a subprocess can be brought back up.
        """
        if mode not in ("drop", "503"):
            raise ValueError("mode must be 'drop' or '503'")
        self.down, self.down_mode = down, mode

    def set_demand(self, namespace: str, cluster: str, group: str, replicas: int) -> None:
        """Pending pods ask the autoscaler for `replicas` nodes (clamped to [min, max])."""
        self.controller.set_demand(namespace, cluster, group, replicas)
        self._wake = True

    def fail_cluster(
        self,
        namespace: str,
        name: str,
        reason: str = "InstallFailed",
        message: str | None = None,
    ) -> None:
        """Force Ready=False with this reason/message until the spec next changes."""
        self.tick()
        text = message or (
            f"Helm install failed for release {namespace}/kubernetes-{name} with chart "
            f"kubernetes@{self.controller.chart_version}: simulated platform failure"
        )
        self.controller.fail_cluster(namespace, name, reason, text)

    def reset(self) -> None:
        """Back to an empty platform (for session-scoped fixtures): objects, faults, outage and
        request log go; the ApplicationDefinition stays; `server_errors` are kept on purpose."""
        with self.controller.lock:
            self.store.reset(keep=(APPLICATION_DEFINITIONS.key,))
            self.controller.reset()
        self.option_overrides.clear()
        self.faults.clear()
        self.set_down(False)
        self.request_log.clear()

    def compact(self) -> None:
        """Drop the watch history: resuming from any older resourceVersion now gets 410."""
        self.store.compact()

    def publish_schema(self, schema: Obj) -> None:
        """Publish (and validate against) another schema with the same chart values, e.g. a
        schema a release of the portal does not know; `upgrade` moves to a real release."""
        with self.controller.lock:
            self.schema, self.schema_text = schema, json.dumps(schema, indent=2)
            self.controller.schema = schema
            self._publish_application_definition()

    def get_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """What the API shows for one object (`kind` may be a Kind or a plural), or None."""
        rtype = self.registry.lookup(kind)
        try:
            return self.store.get(rtype, namespace, name)
        except ApiError:
            return None

    def raw_object(self, kind: str, namespace: str | None, name: str) -> Obj | None:
        """The stored object, e.g. a `Kubernetes` spec exactly as sent (no defaults)."""
        return self.store.raw(self.registry.lookup(kind), namespace, name)

    def objects(self, kind: str, namespace: str | None = None) -> list[Obj]:
        rtype = self.registry.lookup(kind)
        return self.store.list(rtype, Selection(namespace))[0]

    def events(self, namespace: str, involved_name: str | None = None) -> list[Obj]:
        """Core Events in a namespace, optionally only those about one object."""
        return [
            event
            for event in self.objects("Event", namespace)
            if involved_name is None or event["involvedObject"]["name"] == involved_name
        ]

    def requests(self, method: str | None = None, path_contains: str = "") -> list[RequestRecord]:
        return [
            r
            for r in list(self.request_log)
            if (method is None or r.method == method) and path_contains in r.path
        ]

    def log_request(self, record: RequestRecord) -> None:
        """Append to `request_log`, trimming the oldest half past `request_log_limit`."""
        self.request_log.append(record)
        if len(self.request_log) > self.request_log_limit:
            del self.request_log[: len(self.request_log) // 2]

    def record_server_error(self, method: str, path: str, error: BaseException, trace: str) -> None:
        self.server_errors.append(
            {"method": method, "path": path, "message": repr(error), "traceback": trace}
        )

    # --- releases ------------------------------------------------------------------------------

    def upgrade(self, release: str) -> Obj:
        """Upgrade the running platform to a newer Cozystack release, as the platform chart does:
        the migrations rewrite live objects (`migrations.py`), the ApplicationDefinition then
        publishes the new schema, and every HelmRelease renders again with the new chart."""
        target = load_release(release)
        with self.controller.lock:
            current = self.release
            if target.key <= current.key:
                raise ValueError(
                    f"the platform runs Cozystack {current.name}; it can only be upgraded to a "
                    "newer release"
                )
            steps = migrations.between(current.dialect, target.dialect)
            migrated: dict[str, list[str]] = {}
            for step in (s for s in steps if s.before_schema):
                migrated[str(step.number)] = self._migrate(step)
            self._use_release(target)
            for step in (s for s in steps if not s.before_schema):
                migrated[str(step.number)] = self._migrate(step)
        self._wake = True
        self.after_write()
        return {
            "from": current.name,
            "release": target.name,
            "chartVersion": target.chart_version,
            "migrated": migrated,
        }

    def _migrate(self, step: migrations.Migration) -> list[str]:
        """One migration over every `Kubernetes` object, read and patched through the API."""
        rtype = self.registry.lookup(KUBERNETES.kind)
        patched = []
        for raw in self.store.raw_items(rtype):
            meta = raw["metadata"]
            shown = self.store.get(rtype, meta["namespace"], meta["name"])
            change = step.transform(shown.get("spec") or {})
            if change is None:
                continue
            self.store.patch(rtype, meta["namespace"], meta["name"], _merge_with(change))
            patched.append(f"{meta['namespace']}/{meta['name']}")
        return patched

    def _use_release(self, release: Release) -> None:
        self.release = release
        self.schema, self.schema_text = release.schema, release.schema_text
        self.controller.set_release(release, self.schema)
        self._serve_release_apis(release)
        self._publish_application_definition()

    def _serve_release_apis(self, release: Release) -> None:
        """The APIs a release adds: the Option API and `KubernetesNodes` (v1.6)."""
        if release.serves_options:
            self.registry.add(OPTIONS)
        if release.serves_kubernetes_nodes:
            self.registry.add(dataclasses.replace(KUBERNETES_NODES, present=self._present_pool))

    def _present_pool(self, obj: Obj) -> Obj:
        """GET of a `KubernetesNodes` object shows its spec with the chart's defaults."""
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            return obj
        shown = dict(obj)
        shown["spec"] = apply_defaults(self.release.nodes_schema,
                                       prune_nulls(copy.deepcopy(spec or {})))
        return shown

    def set_tenant_etcd(self, namespace: str, has_etcd: bool = True) -> None:
        """Give or take a tenant's etcd DataStore. Without one, v1.6 renders only the
        `kubernetes-<name>-awaiting-etcd` ConfigMap and still reports Ready; v1.3 fails."""
        self.controller.set_tenant_etcd(namespace, has_etcd)
        self._wake = True
        self.after_write()

    def oidc_bindings(self, namespace: str, name: str) -> dict[str, str]:
        """The ClusterRoleBindings the OIDC bootstrap Job made inside the tenant cluster
        (email -> ClusterRole), as of its last run."""
        with self.controller.lock:
            state = self.controller.states.get((namespace, name))
            return dict(state.oidc_bindings) if state else {}

    # --- tenant quotas -------------------------------------------------------------------------

    def set_quota(
        self, namespace: str, hard: dict[str, str] | None, name: str = "tenant-quota"
    ) -> Obj | None:
        """The tenant's ResourceQuota `name` (`tenant-quota`, or the hierarchical quota's
        `tenant-quota-allocated`) limits `hard` from now on (None: the quota goes). Its
        `status.used` follows what the namespace's clusters run; the ResourceQuota as the API
        shows it is returned."""
        if name not in QUOTA_NAMES:
            raise ValueError(f"unknown tenant quota {name!r}")
        with self.controller.lock:
            if hard is None:
                try:
                    self.store.delete(RESOURCE_QUOTAS, namespace, name)
                except ApiError:
                    pass
            else:
                body = quota_body(namespace, name, {str(k): str(v) for k, v in hard.items()})
                self.store.apply(RESOURCE_QUOTAS, namespace, name, body)
                update_quota_status(self.store, self.controller)
        self._wake = True
        self.after_write()  # machines the old quota refused start at once
        if hard is None:
            return None
        return self.store.get(RESOURCE_QUOTAS, namespace, name)

    def refuse_for_parent_quota(
        self,
        *,
        method: str = "POST",
        path: str = "kuberneteses",
        tenant: str = "dev",
        resource: str = "cpu",
        requested: str = "8",
        remaining: str = "4",
        parent_limit: str = "16",
        allocated: str = "8",
        used: str | None = "4",
        times: int | None = 1,
    ) -> Fault:
        """Answer the next matching write with the hierarchical quota's synchronous 422 (a
        quota above the parent tenant's remaining budget), in cozystack-api's words."""
        message = parent_quota_refusal(
            tenant, resource, requested, remaining, parent_limit, allocated, used
        )
        return self.faults.add(
            Fault(method=method, path=path, status=422, message=message, times=times)
        )

    # --- Option API (v1.6) ---------------------------------------------------------------------

    def option(self, namespace: str, name: str) -> Obj:
        """`core.cozystack.io/v1alpha1` Option `name`, computed on read like cozystack-api does."""
        if name not in OPTION_SOURCES:
            raise not_found(OPTIONS.qualified, OPTIONS.plural, name)
        override = self.option_overrides.get((namespace, name))
        items = copy.deepcopy(override) if override is not None else self._option_items(name)
        return {
            "apiVersion": OPTIONS.api_version,
            "kind": OPTIONS.kind,
            "metadata": {"name": name, "namespace": namespace, "resourceVersion": "0"},
            "spec": {"items": items},
        }

    def set_options(self, namespace: str, source: str, items: list[Obj] | None) -> None:
        """What the Option API answers `namespace` for `source` from now on (a tenant offered
        less than the platform has, a platform-only storage class…); None: the platform's own
        list again."""
        if source not in OPTION_SOURCES:
            raise ValueError(f"unknown option source {source!r}")
        if items is None:
            self.option_overrides.pop((namespace, source), None)
        else:
            self.option_overrides[(namespace, source)] = copy.deepcopy(list(items))

    def _option_items(self, name: str) -> list[Obj]:
        items: list[Obj]
        if name == "instancetype":
            items = [{"value": kind} for kind in self.controller.instance_types]
        elif name == "storageclass":
            items = [
                {"value": klass, "label": f"{klass} (default)", "default": True}
                if default
                else {"value": klass}
                for klass, default in self.storage_classes
            ]
        else:
            items = [self._gpu_item(resource) for resource in self.release.gpu_names]
        return sorted(items, key=lambda item: item["value"])

    def _gpu_item(self, resource: str) -> Obj:
        """Permitted GPU with what the nodes advertise: "N available on node-a, node-b"."""
        nodes = sorted(node for node, gpus in self.gpu_nodes.items() if gpus.get(resource, 0) > 0)
        total = sum(self.gpu_nodes[node][resource] for node in nodes)
        if not total:
            return {"value": resource, "description": "not currently available on any node"}
        return {"value": resource, "description": f"{total} available on {', '.join(nodes)}"}

    # --- saved state ---------------------------------------------------------------------------

    def snapshot(self) -> Obj:
        """Everything a restart needs, taken consistently (controller, then store)."""
        with self.controller.lock, self.store.cond:
            return {
                "format": FORMAT,
                "release": self.release.name,
                "clock": self.clock.time(),
                "store": self.store.dump(),
                "controller": self.controller.snapshot(),
            }

    def save_state(self) -> bool:
        """Write the state file now if anything changed (the writer also does it every
        `state_interval` seconds and at stop)."""
        return self._writer.save_if_changed() if self._writer is not None else False

    def _state_marker(self) -> tuple[Any, ...]:
        with self.controller.lock, self.store.cond:
            controller = json.dumps(self.controller.snapshot(), sort_keys=True)
            return self.release.name, self.store.resource_version, controller

    def _restore(self, saved: Obj) -> None:
        if isinstance(self.clock, ManualClock):
            self.clock.set(float(saved.get("clock") or 0.0))
        self.store.load(saved.get("store") or {})
        self.controller.restore(saved.get("controller") or {})

    # --- internals -----------------------------------------------------------------------------

    def _present_kubernetes(self, obj: Obj) -> Obj:
        """GET shows the spec with schema defaults filled in, never the nulls Helm saw."""
        spec = obj.get("spec")
        if spec is not None and not isinstance(spec, dict):
            return obj
        shown = dict(obj)
        shown["spec"] = apply_defaults(self.schema, prune_nulls(copy.deepcopy(spec or {})))
        return shown

    def _publish_application_definition(self) -> None:
        body = self.release.application_definition_body(self.schema_text)
        self.store.apply(APPLICATION_DEFINITIONS, None, "kubernetes", body)

    # --- HTTP control endpoints (/_sim/...) ----------------------------------------------------

    def control(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        """Operate the simulator from another process; same effects as the methods above."""
        action = path.removeprefix("/_sim/")
        data = body if isinstance(body, dict) else {}
        try:
            return self._control(method, action, data)
        except (KeyError, TypeError, ValueError) as error:
            raise ApiError(400, f"bad simulator control request: {error!r}", "BadRequest")

    def _control(self, method: str, action: str, data: Obj) -> tuple[int, Any]:
        simple = {
            ("POST", "compact"): self.compact,
            ("POST", "tick"): self.tick,
            ("DELETE", "faults"): self.faults.clear,
            ("DELETE", "requests"): self.request_log.clear,
            ("DELETE", "errors"): self.server_errors.clear,
        }
        if (method, action) in simple:
            simple[(method, action)]()
            return 200, {"ok": True}
        if (method, action) == ("GET", "faults"):
            return 200, [fault.to_dict() for fault in self.faults.list()]
        if (method, action) == ("POST", "faults"):
            return 201, self.faults.add(Fault.from_dict(data)).to_dict()
        if (method, action) == ("GET", "errors"):
            return 200, list(self.server_errors)
        if (method, action) == ("GET", "requests"):
            return 200, [record._asdict() for record in list(self.request_log)]
        if (method, action) == ("POST", "down"):
            self.set_down(bool(data.get("down", True)), str(data.get("mode", "drop")))
            return 200, {"down": self.down, "mode": self.down_mode}
        if (method, action) == ("POST", "demand"):
            self.set_demand(
                data["namespace"], data["cluster"], data["group"], int(data["replicas"])
            )
            return 200, {"ok": True}
        if (method, action) == ("POST", "fail"):
            self.fail_cluster(
                data["namespace"],
                data["name"],
                data.get("reason", "InstallFailed"),
                data.get("message"),
            )
            return 200, {"ok": True}
        if (method, action) == ("POST", "advance"):
            self.advance(float(data["seconds"]))
            return 200, {"time": self.clock.time()}
        if (method, action) == ("GET", "release"):
            return 200, {"release": self.release.name, "chartVersion": self.release.chart_version}
        if (method, action) == ("POST", "upgrade"):
            return 200, self.upgrade(str(data["release"]))
        if (method, action) == ("POST", "etcd"):
            self.set_tenant_etcd(str(data["namespace"]), bool(data.get("etcd", True)))
            return 200, {"namespace": data["namespace"], "etcd": bool(data.get("etcd", True))}
        if (method, action) == ("POST", "save"):
            return 200, {"saved": self.save_state()}
        if (method, action) == ("POST", "quota"):
            hard = data.get("hard")
            shown = self.set_quota(str(data["namespace"]),
                                   dict(hard) if isinstance(hard, dict) else None,
                                   str(data.get("name") or "tenant-quota"))
            return 200, shown or {"deleted": True}
        if (method, action) == ("POST", "options"):
            items = data.get("items")
            self.set_options(str(data["namespace"]), str(data["source"]),
                             list(items) if isinstance(items, list) else None)
            return 200, {"ok": True}
        raise ApiError(
            404, f"unknown simulator control endpoint {method} /_sim/{action}", "NotFound"
        )


def _merge_with(change: Obj) -> Callable[[Obj], Obj]:
    """A store patch that merge-patches ``change`` into the current object."""

    def apply(current: Obj) -> Obj:
        merged: Obj = merge_patch(current, change)  # an object patched with an object
        return merged

    return apply
