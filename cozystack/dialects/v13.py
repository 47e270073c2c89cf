"""The v1.3 contract (Cozystack v1.3.x; PLATFORM.md, v1.3.6 as reference).

Every gotcha of that release is handled when rendering rather than discovered as ``Ready=False``
minutes later:

* the spec is always complete (every add-on and control-plane object with all required keys);
* every group carries ``resources`` (``{}`` unless custom-sized, then ``instanceType: ""``);
* ``roles`` and ``gpus`` are always sent, so the chart's default ``md0`` roles never leak in;
* the chart's hidden default group ``md0`` is removed with ``md0: null`` when the portal has no
  group of that name; the portal always PUTs a complete spec, so the null is re-sent each time;
* control-plane presets go out under their old names (``c1.medium`` is sent as ``large``).

What only v1.6 can do (per-group storage class and auto-repair, kubelet reservations,
auto-repair, OIDC users, fractional GPUs, ouroboros) is refused with a sentence.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from datetime import timedelta
from typing import Any

from cozystack import catalog
from cozystack.dialects.base import (
    DEGRADED,
    RUNNING,
    Dialect,
    Health,
    as_int,
    as_quantity_text,
    disk_gib,
    gpu_names,
    resources_of,
)
from cozystack.rules import FieldError
from cozystack.specs import AddonSpec, ClusterSpec, ControlPlaneSpec, NodeGroupSpec, gib

HIDDEN_MD0: dict[str, Any] = {
    "minReplicas": 0,
    "maxReplicas": 10,
    "instanceType": "u1.medium",
    "ephemeralStorage": "20Gi",
    "resources": {},
    "roles": ["ingress-nginx"],
}
"""The chart's default group (values.yaml at v1.3.6), merged by Helm into every release."""

V13_ADDONS = (
    "certManager", "cilium", "coredns", "fluxcd", "gatewayAPI", "gpuOperator", "ingressNginx",
    "monitoringAgents", "velero", "verticalPodAutoscaler",
)
_NEEDS_V16 = "needs a newer platform release (Cozystack v1.4 or later)"


class V13(Dialect):
    name = "v1.3"
    label = "Cozystack v1.3"
    release_dir = ""
    reference_release = "1.3.6"
    newest_chart = (1, 3)
    features = frozenset()

    # -- rendering ------------------------------------------------------------------------------

    def render_group(self, group: NodeGroupSpec) -> dict[str, Any]:
        return {
            "minReplicas": group.min_replicas,
            "maxReplicas": group.max_replicas,
            "instanceType": group.instance_type,
            "ephemeralStorage": gib(group.disk_gib),
            "resources": resources_of(group),
            "roles": list(group.roles),
            "gpus": [{"name": name} for name in group.gpus],
        }

    def render_groups(self, groups: tuple[NodeGroupSpec, ...]) -> dict[str, Any]:
        """``md0`` first (a group, or null to drop the chart default), then groups by name."""
        by_name = {g.name: g for g in groups}
        primary = by_name.pop(catalog.PRIMARY_NODE_GROUP, None)
        rendered: dict[str, Any] = {
            catalog.PRIMARY_NODE_GROUP: self.render_group(primary) if primary else None
        }
        for name in sorted(by_name):
            rendered[name] = self.render_group(by_name[name])
        return rendered

    def render_control_plane(self, control_plane: ControlPlaneSpec) -> dict[str, Any]:
        def component(preset: str) -> dict[str, Any]:
            return {"resources": {},
                    "resourcesPreset": catalog.LEGACY_PRESET_NAMES.get(preset, preset)}

        return {
            "replicas": control_plane.replicas,
            "apiServer": component(control_plane.api_server_preset),
            "controllerManager": component(control_plane.controller_manager_preset),
            "scheduler": component(control_plane.scheduler_preset),
            "konnectivity": {"server": component(control_plane.konnectivity_preset)},
        }

    def render_addons(self, specs: tuple[AddonSpec, ...]) -> dict[str, Any]:
        """Every add-on of the release with all its required keys."""
        by_key = {s.key: s for s in specs}
        rendered: dict[str, Any] = {}
        for addon in self.catalogue.addons:
            given = by_key.get(addon.key)
            obj: dict[str, Any] = {}
            if addon.has_enabled:
                obj["enabled"] = bool(given.enabled) if given else False
            if addon.key == catalog.INGRESS_NGINX:
                obj["exposeMethod"] = (given.expose_method if given else None) or (
                    catalog.DEFAULT_EXPOSE_METHOD
                )
                obj["hosts"] = list(given.hosts) if given else []
            if addon.has_values_override:
                override = given.values_override if given else None
                obj["valuesOverride"] = {} if override is None else copy.deepcopy(override)
            rendered[addon.key] = obj
        return rendered

    def render_spec(self, spec: ClusterSpec) -> dict[str, Any]:
        return {
            "version": spec.version,
            "host": spec.host,
            "storageClass": spec.storage_class,
            "nodeGroups": self.render_groups(spec.node_groups),
            "controlPlane": self.render_control_plane(spec.control_plane),
            "addons": self.render_addons(spec.addons),
        }

    def chart_defaults(self) -> dict[str, Any]:
        """values.yaml, whose ``md0`` Helm merges into every release unless nulled."""
        values = self.chart_values()
        values.setdefault("nodeGroups", {catalog.PRIMARY_NODE_GROUP: copy.deepcopy(HIDDEN_MD0)})
        return values

    def probe(self) -> ClusterSpec:
        groups = (
            NodeGroupSpec("md0", "u1.large", 1, 3, 50, roles=(catalog.INGRESS_NGINX_ROLE,)),
            NodeGroupSpec("custom", "", 1, 2, 100, gpus=("nvidia.com/AD102GL_L40S",),
                          cpu="8", memory="32Gi"),
        )
        addons = tuple(
            AddonSpec(a.key, True, {a.value_roots[0]: {}} if a.value_roots else {},
                      hosts=("app.example.com",) if a.key == catalog.INGRESS_NGINX else ())
            for a in self.catalogue.addons
        )
        return ClusterSpec("probe", "tenant-probe", self.catalogue.default_version().name,
                           host="k8s.example.com", node_groups=groups, addons=addons)

    # -- reading back ---------------------------------------------------------------------------

    def group_from_platform(self, name: str, raw: Mapping[str, Any]) -> NodeGroupSpec:
        resources = raw.get("resources") or {}
        return NodeGroupSpec(
            name=name,
            instance_type=str(raw.get("instanceType", HIDDEN_MD0["instanceType"]) or ""),
            min_replicas=as_int(raw.get("minReplicas"), 0),
            max_replicas=as_int(raw.get("maxReplicas"), 10),
            disk_gib=disk_gib(raw.get("ephemeralStorage", HIDDEN_MD0["ephemeralStorage"]), 20),
            roles=tuple(str(r) for r in raw.get("roles") or []),
            gpus=gpu_names(raw),
            cpu=as_quantity_text(resources.get("cpu")),
            memory=as_quantity_text(resources.get("memory")),
        )

    # -- what it cannot do ----------------------------------------------------------------------

    def check(self, spec: ClusterSpec, previous: ClusterSpec | None, *,
              storage_classes: Iterable[str] | None = None) -> list[FieldError]:
        errors = []
        if spec.auto_repair is not None:
            errors.append(FieldError(
                "auto_repair", f"Node auto-repair {_NEEDS_V16}; leave it at the platform "
                "default.", "not_supported"))
        if spec.oidc_users:
            errors.append(FieldError(
                "oidc_users", f"Per-user cluster access (OIDC) {_NEEDS_V16}; remove the users.",
                "not_supported"))
        for index, group in enumerate(spec.node_groups):
            prefix = f"node_groups[{index}]"
            if group.storage_class:
                errors.append(FieldError(
                    f"{prefix}.storage_class", f"A storage class per node group {_NEEDS_V16}; "
                    "leave it empty to use the cluster's.", "not_supported"))
            for attr, words in (("max_unhealthy", "An auto-repair limit per node group"),
                                ("node_startup_timeout", "A node start-up time per group")):
                if getattr(group, attr):
                    errors.append(FieldError(f"{prefix}.{attr}", f"{words} {_NEEDS_V16}; leave "
                                             "it empty.", "not_supported"))
            if not group.kubelet.is_empty:
                errors.append(FieldError(
                    f"{prefix}.kubelet", f"Kubelet reservations {_NEEDS_V16}; leave them empty.",
                    "not_supported"))
        return errors

    # -- status ---------------------------------------------------------------------------------

    def health(self, *, ready: bool, workloads_ready: str | None, kubeconfig: bool,
               settled: bool, ready_for: timedelta | None) -> Health:
        """Helm waited for the control plane, so Ready=True means it answers; running when the
        node counts settled and no workload is reported down."""
        if not settled or workloads_ready == "False":
            return Health(DEGRADED)
        return Health(RUNNING)

    def first_nodes(self, group: NodeGroupSpec) -> int:
        return 2  # MachineDeployment replicas hard-coded at v1.3 (gotcha 2)
