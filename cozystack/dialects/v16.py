"""The v1.6 contract (Cozystack v1.4.0 to v1.6.x; PLATFORM-v1.6.md, v1.6.2 as reference).

Rendering sends the portal's desired state and nothing else (row 18): never ``talos`` or
``images``, no ``resources: {}``, no ``md0: null`` (``nodeGroups`` no longer merges with a default
group, row 4), and none of the chart's defaults the tenant did not set: an add-on at its
defaults, auto-repair left at the platform's setting and OIDC without users are left out, so
Helm fills them from the chart the platform runs. A PUT of such a spec can never pin a cluster
to one Talos release.

The chart's render-time ``fail``s (PLATFORM-v1.6.md 3, 7, 8, 12) are refused before sending
(``check``), with a sentence beside the field.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping
from datetime import timedelta
from decimal import Decimal
from typing import Any

from cozystack import catalog
from cozystack.dialects.base import (
    AUTO_REPAIR,
    DEGRADED,
    FRACTIONAL_GPUS,
    KUBELET_RESERVATIONS,
    OIDC,
    OPTION_API,
    OUROBOROS,
    PER_GROUP_AUTO_REPAIR,
    PER_GROUP_STORAGE_CLASS,
    RUNNING,
    STARTING,
    STUCK,
    Dialect,
    Health,
    as_int,
    as_quantity_text,
    disk_gib,
    gpu_names,
    ordered_groups,
)
from cozystack.rules import FieldError, join, quote
from cozystack.specs import (
    OIDC_ROLES,
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
    NodeGroupSpec,
    OidcUserSpec,
    gib,
    parse_quantity,
)

DEFAULT_MAX_UNHEALTHY = "50%"
DEFAULT_NODE_STARTUP_TIMEOUT = "10m"
DEFAULT_EVICTION_HARD = "7%"
DEFAULT_EVICTION_SOFT = "10%"
NEVER_REPAIR = "0%"
DEFAULT_DISK = "20Gi"
DEFAULT_INSTANCE_TYPE = "u1.medium"

_KUBELET_KEYS = {
    "system_reserved_memory": "systemReservedMemory",
    "system_reserved_cpu": "systemReservedCpu",
    "kube_reserved_memory": "kubeReservedMemory",
    "kube_reserved_cpu": "kubeReservedCpu",
    "eviction_hard_memory": "evictionHardMemory",
    "eviction_soft_memory": "evictionSoftMemory",
}
_KUBELET_DEFAULTS = {"evictionHardMemory": DEFAULT_EVICTION_HARD,
                     "evictionSoftMemory": DEFAULT_EVICTION_SOFT}
_MAX_UNHEALTHY = re.compile(r"^[0-9]+%?$")
_DURATION = re.compile(r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$")
_MEMORY = re.compile(r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")
_CPU = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
_PERCENT = re.compile(r"^[0-9]+(\.[0-9]+)?$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_MIB = Decimal(2**20)
_TRUTHY = ("true", "1", "yes", "on", "y")
# The chart's helper "kubernetes.nodeGroups" renders this group when ``nodeGroups`` is empty.
_CHART_DEFAULT_MD0: dict[str, Any] = {
    "minReplicas": 0, "maxReplicas": 10, "instanceType": "u1.medium", "diskSize": "20Gi",
    "roles": ["ingress-nginx"], "resources": {}, "gpus": [], "kubelet": {},
}

V16_ADDONS = tuple(a.key for a in catalog.addons())
DEPRECATED = {
    catalog.FLUXCD: "Removed from the platform after v1.6.2: the key is then ignored and Flux "
                    "stays in the cluster, unmanaged. Manage Flux yourself instead.",
}


class V16(Dialect):
    name = "v1.6"
    label = "Cozystack v1.6"
    release_dir = "v1.6.2"
    reference_release = "1.6.2"
    newest_chart = (1, 6)
    waits_for_workloads = True
    features = frozenset({
        PER_GROUP_STORAGE_CLASS, AUTO_REPAIR, PER_GROUP_AUTO_REPAIR, KUBELET_RESERVATIONS, OIDC,
        FRACTIONAL_GPUS, OUROBOROS, OPTION_API,
    })
    # Not CREDENTIAL_ROTATION: no release so far rotates the admin kubeconfig on request.

    # -- rendering ------------------------------------------------------------------------------

    def render_group(self, group: NodeGroupSpec) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "minReplicas": group.min_replicas,
            "maxReplicas": group.max_replicas,
            "instanceType": group.instance_type,
            "diskSize": gib(group.disk_gib),
        }
        resources = {key: value for key, value in (("cpu", group.cpu),
                                                   ("memory", group.memory)) if value is not None}
        if resources:
            rendered["resources"] = resources
        rendered["roles"] = list(group.roles)
        rendered["gpus"] = [{"name": name} for name in group.gpus]
        if group.storage_class:
            rendered["storageClass"] = group.storage_class
        if group.max_unhealthy:
            rendered["maxUnhealthy"] = group.max_unhealthy
        if group.node_startup_timeout:
            rendered["nodeStartupTimeout"] = group.node_startup_timeout
        # A threshold equal to the chart's default is the default: a GET could not tell them
        # apart, so it is not sent (reading the object back gives the same spec).
        kubelet = {key: getattr(group.kubelet, attr) for attr, key in _KUBELET_KEYS.items()
                   if getattr(group.kubelet, attr)
                   and getattr(group.kubelet, attr) != _KUBELET_DEFAULTS.get(key)}
        if kubelet:
            rendered["kubelet"] = kubelet
        return rendered

    def render_control_plane(self, control_plane: ControlPlaneSpec) -> dict[str, Any]:
        return {
            "replicas": control_plane.replicas,
            "apiServer": {"resourcesPreset": control_plane.api_server_preset},
            "controllerManager": {"resourcesPreset": control_plane.controller_manager_preset},
            "scheduler": {"resourcesPreset": control_plane.scheduler_preset},
            "konnectivity": {"server": {"resourcesPreset": control_plane.konnectivity_preset}},
        }

    def render_addons(self, specs: tuple[AddonSpec, ...]) -> dict[str, Any]:
        """Only what differs from the chart's defaults (on, custom values, ingress settings)."""
        by_key = {s.key: s for s in self.offered_addons(specs)}
        rendered: dict[str, Any] = {}
        for addon in self.catalogue.addons:
            given = by_key.get(addon.key)
            if given is None:
                continue
            obj: dict[str, Any] = {}
            if addon.has_enabled and given.enabled:
                obj["enabled"] = True
            if addon.key == catalog.INGRESS_NGINX:
                if given.expose_method and given.expose_method != catalog.DEFAULT_EXPOSE_METHOD:
                    obj["exposeMethod"] = given.expose_method
                if given.hosts:
                    obj["hosts"] = list(given.hosts)
            if given.values_override:
                obj["valuesOverride"] = copy.deepcopy(given.values_override)
            if obj:
                rendered[addon.key] = obj
        return rendered

    def render_spec(self, spec: ClusterSpec) -> dict[str, Any]:
        rendered: dict[str, Any] = {
            "version": spec.version,
            "host": spec.host,
            "storageClass": spec.storage_class,
            "nodeGroups": {g.name: self.render_group(g) for g in ordered_groups(spec.node_groups)},
            "controlPlane": self.render_control_plane(spec.control_plane),
            "addons": self.render_addons(spec.addons),
        }
        if spec.auto_repair is not None:
            repair = spec.auto_repair
            rendered["nodeHealthCheck"] = {
                "maxUnhealthy": repair.max_unhealthy if repair.enabled else NEVER_REPAIR,
                "nodeStartupTimeout": repair.node_startup_timeout,
            }
        if spec.oidc_users:
            rendered["oidc"] = {"mode": "System", "users": [
                {"email": user.email, "role": user.role} for user in spec.oidc_users]}
        return rendered

    def probe(self) -> ClusterSpec:
        kubelet = KubeletSpec("512Mi", "100m", "512Mi", "100m", "5%", "10%")
        groups = (
            NodeGroupSpec("md0", "u1.large", 1, 3, 50, roles=(catalog.INGRESS_NGINX_ROLE,),
                          storage_class="replicated", max_unhealthy="1",
                          node_startup_timeout="15m", kubelet=kubelet),
            NodeGroupSpec("custom", "", 1, 2, 100, gpus=("nvidia.com/AD102GL_L40S",),
                          cpu="8", memory="32Gi"),
        )
        addons = tuple(
            AddonSpec(a.key, True, {a.value_roots[0]: {}} if a.value_roots else {},
                      expose_method="LoadBalancer" if a.key == catalog.INGRESS_NGINX
                      else catalog.DEFAULT_EXPOSE_METHOD,
                      hosts=("app.example.com",) if a.key == catalog.INGRESS_NGINX else ())
            for a in self.catalogue.addons
        )
        return ClusterSpec("probe", "tenant-probe", self.catalogue.default_version().name,
                           host="k8s.example.com", node_groups=groups, addons=addons,
                           auto_repair=AutoRepairSpec(True, "40%", "20m"),
                           oidc_users=(OidcUserSpec("a@example.com", "admin"),))

    # -- reading back ---------------------------------------------------------------------------

    def group_from_platform(self, name: str, raw: Mapping[str, Any]) -> NodeGroupSpec:
        resources = raw.get("resources") or {}
        given = raw.get("kubelet")
        kubelet_raw: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        kubelet = KubeletSpec(**{
            attr: str(kubelet_raw.get(key) or "") for attr, key in _KUBELET_KEYS.items()
            if str(kubelet_raw.get(key) or "") != _KUBELET_DEFAULTS.get(key)
        })
        return NodeGroupSpec(
            name=name,
            instance_type=str(raw.get("instanceType", DEFAULT_INSTANCE_TYPE) or ""),
            min_replicas=as_int(raw.get("minReplicas"), 0),
            max_replicas=as_int(raw.get("maxReplicas"), 10),
            disk_gib=disk_gib(raw.get("diskSize", DEFAULT_DISK), 20),
            roles=tuple(str(r) for r in raw.get("roles") or []),
            gpus=gpu_names(raw),
            cpu=as_quantity_text(resources.get("cpu")),
            memory=as_quantity_text(resources.get("memory")),
            storage_class=str(raw.get("storageClass") or ""),
            max_unhealthy=str(raw.get("maxUnhealthy") or ""),
            node_startup_timeout=str(raw.get("nodeStartupTimeout") or ""),
            kubelet=kubelet,
        )

    def cluster_extras_from_platform(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """Auto-repair and OIDC users; the chart's own defaults read as "not set"."""
        extras: dict[str, Any] = {}
        health = spec.get("nodeHealthCheck")
        if isinstance(health, Mapping):
            limit = str(health.get("maxUnhealthy") or DEFAULT_MAX_UNHEALTHY)
            timeout = str(health.get("nodeStartupTimeout") or DEFAULT_NODE_STARTUP_TIMEOUT)
            if limit in (NEVER_REPAIR, "0"):
                extras["auto_repair"] = AutoRepairSpec(False, DEFAULT_MAX_UNHEALTHY, timeout)
            elif (limit, timeout) != (DEFAULT_MAX_UNHEALTHY, DEFAULT_NODE_STARTUP_TIMEOUT):
                extras["auto_repair"] = AutoRepairSpec(True, limit, timeout)
        oidc = spec.get("oidc")
        if isinstance(oidc, Mapping) and oidc.get("mode") == "System":
            extras["oidc_users"] = tuple(
                OidcUserSpec(str(u.get("email") or ""), str(u.get("role") or "view"))
                for u in oidc.get("users") or [] if isinstance(u, Mapping))
        return extras

    # -- the chart's render guards and the release's rules ---------------------------------------

    def check(self, spec: ClusterSpec, previous: ClusterSpec | None, *,
              storage_classes: Iterable[str] | None = None) -> list[FieldError]:
        errors: list[FieldError] = []
        if spec.auto_repair is not None:
            errors += _check_repair("auto_repair", spec.auto_repair.max_unhealthy,
                                    spec.auto_repair.node_startup_timeout)
        errors += _check_oidc_users(spec)
        known_classes = list(storage_classes) if storage_classes is not None else \
            [s.name for s in catalog.storage_classes()]
        for index, group in enumerate(spec.node_groups):
            prefix = f"node_groups[{index}]"
            if group.storage_class and group.storage_class not in known_classes:
                errors.append(FieldError(
                    f"{prefix}.storage_class",
                    f"Storage class {quote(group.storage_class)} does not exist; choose one of "
                    f"{join(known_classes)}, or leave it empty to use the cluster's.",
                    "invalid_choice"))
            errors += _check_repair(prefix, group.max_unhealthy, group.node_startup_timeout)
            errors += self._check_kubelet(prefix, group)
        errors += _check_ouroboros_gateway(spec)
        return errors

    def _check_kubelet(self, prefix: str, group: NodeGroupSpec) -> list[FieldError]:
        if group.kubelet.is_empty:
            return []
        memory, cpu = self._node_size(group)
        return _check_kubelet(f"{prefix}.kubelet", group.kubelet, memory, cpu)

    def _node_size(self, group: NodeGroupSpec) -> tuple[Decimal | None, Decimal | None]:
        """The node's memory (bytes) and CPU (millicores), as the chart computes them."""
        if group.cpu is not None and group.memory is not None:
            cpu, memory = parse_quantity(group.cpu), parse_quantity(group.memory)
            return memory, cpu * 1000 if cpu is not None else None
        found = self.catalogue.get_instance_type(group.instance_type)
        if found is None:
            return None, None
        return Decimal(found.memory_bytes), Decimal(found.vcpu * 1000)

    # -- status ---------------------------------------------------------------------------------

    def health(self, *, ready: bool, workloads_ready: str | None, kubeconfig: bool,
               settled: bool, ready_for: timedelta | None) -> Health:
        """Ready=True only says the manifests were applied (row 19): running needs
        WorkloadsReady=True and the node counts; Ready without workloads nor kubeconfig for a
        few minutes is stuck on the platform's side (e.g. the tenant has no etcd)."""
        if workloads_ready == "True":
            return Health(RUNNING) if settled else Health(DEGRADED)
        if workloads_ready == "False":
            return Health(DEGRADED)
        if not kubeconfig and ready_for is not None and ready_for >= self.stuck_after:
            return Health(STUCK, "no control plane")
        return Health(STARTING)

    def control_plane_up(self, *, ready: bool, kubeconfig: bool) -> bool:
        return ready and kubeconfig

    def first_nodes(self, group: NodeGroupSpec) -> int:
        return group.min_replicas  # CAPI seeds the MachineDeployment from the minimum

    def follow_platform_upgrade(self, desired: ClusterSpec, observed: ClusterSpec
                                ) -> tuple[ClusterSpec, list[str]]:
        """Upstream's migrations from v1.3: 46 moved ``v1.30`` to ``v1.31`` (Talos does not run
        v1.30) and 47 pinned the chart's default ``md0`` into objects without one (39 and 41
        renamed presets and the disk field, which the portal's spec does not name)."""
        after, said = desired, []
        offered = self.catalogue.version_names()
        if desired.version not in offered and observed.version in offered \
                and observed.version == self.catalogue.next_minor(desired.version):
            after = dataclasses.replace(after, version=observed.version)
            said.append(f"Kubernetes {desired.version} → {observed.version}: the platform "
                        f"upgrade moved the cluster, as {desired.version} is no longer run.")
        md0 = observed.group(catalog.PRIMARY_NODE_GROUP)
        if desired.group(catalog.PRIMARY_NODE_GROUP) is None and md0 is not None \
                and md0 == self.default_group():
            after = dataclasses.replace(after, node_groups=(*after.node_groups, md0))
            said.append(f"node group {md0.name} ({md0.min_replicas}–{md0.max_replicas} nodes of "
                        f"{md0.instance_type}) added by the platform upgrade, which keeps the "
                        "chart's former default group; remove it if the cluster does not need "
                        "it.")
        return after, said

    def default_group(self) -> NodeGroupSpec:
        """The group the chart renders for an empty ``nodeGroups`` (and migration 47 pins)."""
        raw = self.chart_values().get("nodeGroups") or {}
        return self.group_from_platform(catalog.PRIMARY_NODE_GROUP, raw.get(
            catalog.PRIMARY_NODE_GROUP) or _CHART_DEFAULT_MD0)


# --------------------------------------------------------------------------- guard helpers


def _check_repair(prefix: str, limit: str, timeout: str) -> list[FieldError]:
    errors = []
    if limit:
        number = limit.rstrip("%")
        if not _MAX_UNHEALTHY.match(limit) or (limit.endswith("%") and int(number) > 100):
            errors.append(FieldError(
                f"{prefix}.max_unhealthy",
                f"The auto-repair limit {quote(limit)} must be a whole number of nodes (like 1) "
                "or a percentage of the group from 0% to 100% (like 50%).", "invalid"))
    if timeout and not _DURATION.match(timeout):
        errors.append(FieldError(
            f"{prefix}.node_startup_timeout",
            f"The start-up time {quote(timeout)} must be a duration such as 10m or 1h30m.",
            "invalid"))
    return errors


def _check_oidc_users(spec: ClusterSpec) -> list[FieldError]:
    errors = []
    seen: set[str] = set()
    for index, user in enumerate(spec.oidc_users):
        path = f"oidc_users[{index}]"
        if not _EMAIL.match(user.email):
            errors.append(FieldError(f"{path}.email", f"{quote(user.email)} is not an email "
                                     "address.", "invalid"))
        elif user.email.lower() in seen:
            errors.append(FieldError(f"{path}.email", f"{user.email} is listed twice.",
                                     "duplicate"))
        seen.add(user.email.lower())
        if user.role not in OIDC_ROLES:
            errors.append(FieldError(f"{path}.role", f"Role {quote(user.role)} does not exist; "
                                     f"choose {' or '.join(OIDC_ROLES)}.", "invalid_choice"))
    return errors


def _check_ouroboros_gateway(spec: ClusterSpec) -> list[FieldError]:
    """Ouroboros asked to watch Gateway API objects needs the Gateway API add-on (its CRDs)."""
    given = spec.addon(catalog.OUROBOROS)
    override = given.values_override if isinstance(given.values_override, dict) else {}
    controller = (override.get("ouroboros") or {}).get("controller") \
        if isinstance(override.get("ouroboros"), dict) else None
    gateway = controller.get("gatewayApi") if isinstance(controller, dict) else None
    wanted = isinstance(gateway, dict) and "enabled" in gateway \
        and str(gateway["enabled"]).lower() in _TRUTHY
    if wanted and given.enabled and not spec.addon(catalog.GATEWAY_API).enabled:
        return [FieldError(
            f"addons.{catalog.OUROBOROS}.values_override",
            "Ouroboros is set to follow Gateway API routes, which needs the Gateway API add-on; "
            "enable Gateway API or remove that setting.", "ouroboros_needs_gateway_api")]
    return []


def _quantity_ok(value: str, pattern: re.Pattern[str]) -> bool:
    return bool(pattern.match(value))


def _check_kubelet(path: str, kubelet: KubeletSpec, memory: Decimal | None,
                   cpu: Decimal | None) -> list[FieldError]:
    """The chart's kubelet guards: formats, positive values, hard eviction below soft in the
    same unit, and the reservations leaving room on the node."""
    errors = []
    for attr, pattern, example in (
        ("system_reserved_memory", _MEMORY, "512Mi"), ("kube_reserved_memory", _MEMORY, "512Mi"),
        ("system_reserved_cpu", _CPU, "100m or 0.5"), ("kube_reserved_cpu", _CPU, "100m or 0.5"),
    ):
        value = getattr(kubelet, attr)
        if value and (not pattern.match(value) or (parse_quantity(value) or 0) <= 0):
            errors.append(FieldError(f"{path}.{attr}", f"{quote(value)} is not a positive "
                                     f"amount; write it like {example}.", "invalid_quantity"))
    hard = kubelet.eviction_hard_memory or DEFAULT_EVICTION_HARD
    soft = kubelet.eviction_soft_memory or DEFAULT_EVICTION_SOFT
    errors += _check_eviction(path, kubelet, hard, soft)
    if errors:
        return errors
    if memory is None and any(getattr(kubelet, a) for a in (
            "system_reserved_memory", "kube_reserved_memory", "eviction_hard_memory",
            "eviction_soft_memory")):
        return [FieldError(f"{path}.system_reserved_memory", "Memory reservations need a known "
                           "node size; choose an instance type or a custom memory size.",
                           "kubelet_needs_size")]
    if memory:
        auto = min(max(int(memory / _MIB * Decimal("0.05")), 256), 1024) * _MIB
        system = parse_quantity(kubelet.system_reserved_memory) or auto
        kube = parse_quantity(kubelet.kube_reserved_memory) or auto
        hard_bytes = memory * Decimal(hard[:-1]) / 100 if hard.endswith("%") \
            else parse_quantity(hard) or Decimal(0)
        if system + kube + hard_bytes >= memory:
            errors.append(FieldError(
                f"{path}.system_reserved_memory",
                "The reserved memory (system + kubelet + hard eviction) must leave room on the "
                f"node ({_gib_words(memory)}); reserve less.", "kubelet_exceeds_node"))
    if cpu:
        auto_cpu = Decimal(min(max(int(cpu * Decimal("0.05")), 50), 500))
        system_cpu = _millicores(kubelet.system_reserved_cpu) or auto_cpu
        kube_cpu = _millicores(kubelet.kube_reserved_cpu) or auto_cpu
        if system_cpu + kube_cpu >= cpu:
            errors.append(FieldError(
                f"{path}.system_reserved_cpu",
                f"The reserved CPU (system + kubelet) must leave room on the node ({cpu / 1000:g} "
                "CPU); reserve less.", "kubelet_exceeds_node"))
    elif kubelet.system_reserved_cpu or kubelet.kube_reserved_cpu:
        errors.append(FieldError(f"{path}.system_reserved_cpu", "CPU reservations need a known "
                                 "node size; choose an instance type or a custom CPU size.",
                                 "kubelet_needs_size"))
    return errors


def _check_eviction(path: str, kubelet: KubeletSpec, hard: str, soft: str) -> list[FieldError]:
    for attr, value in (("eviction_hard_memory", hard), ("eviction_soft_memory", soft)):
        percent = value.endswith("%")
        if (percent and not (_PERCENT.match(value[:-1]) and 0 < Decimal(value[:-1]) <= 100)) \
                or (not percent and not _MEMORY.match(value)):
            return [FieldError(f"{path}.{attr}", f"{quote(value)} must be a percentage above 0 "
                               "and at most 100% (like 7%) or an amount (like 500Mi).",
                               "invalid_quantity")]
    if hard.endswith("%") != soft.endswith("%"):
        return [FieldError(f"{path}.eviction_hard_memory", f"The hard ({hard}) and soft ({soft}) "
                           "eviction thresholds must both be percentages or both be amounts.",
                           "eviction_units")]
    if hard.endswith("%"):
        below = Decimal(hard[:-1]) < Decimal(soft[:-1])
    else:
        below = (parse_quantity(hard) or 0) < (parse_quantity(soft) or 0)
    if not below:
        return [FieldError(f"{path}.eviction_hard_memory", f"The hard eviction threshold ({hard})"
                           f" must be below the soft one ({soft}).", "eviction_order")]
    return []


def _millicores(value: str) -> Decimal | None:
    parsed = parse_quantity(value) if value else None
    return parsed * 1000 if parsed is not None else None


def _gib_words(memory: Decimal) -> str:
    return f"{memory / 2**30:g} GiB"
