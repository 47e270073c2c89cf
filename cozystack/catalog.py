"""What the platform offers: instance types, GPUs, versions, presets, storage classes, add-ons.

Pure data, loaded once from the JSON files in ``data/`` (copied from the platform contract,
see PLATFORM.md). Tenants may not be allowed to list the cluster-scoped instance types, so the
portal ships its own catalogue; the Kubernetes version list can be refreshed from the live
schema (``validation.allowed_versions_from_schema``) and passed to the validators.

Every text here is short plain English; the Django layer wraps it for translation.
"""

from __future__ import annotations

import copy
import functools
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

DATA_DIR = Path(__file__).resolve().parent / "data"


@functools.cache
def _load_json(filename: str) -> Any:
    """Parse a data file once; callers must not mutate the result (use the public copies)."""
    with (DATA_DIR / filename).open(encoding="utf-8") as fh:
        return json.load(fh)


def bundled_kubernetes_schema() -> dict[str, Any]:
    """The upstream ``Kubernetes`` values schema shipped with the portal (a fresh copy).

    The live platform publishes the schema it runs in its ``ApplicationDefinition``; this copy
    is the fallback when that cannot be read (tests, simulator, offline preview).
    """
    return copy.deepcopy(_load_json("kubernetes.values.schema.json"))


def bundled_tenant_schema() -> dict[str, Any]:
    """The upstream ``Tenant`` values schema shipped with the portal (a fresh copy)."""
    return copy.deepcopy(_load_json("tenant.values.schema.json"))


# --------------------------------------------------------------------------- instance types


@dataclass(frozen=True)
class InstanceSeries:
    key: str
    label: str
    vcpu_to_ram: str


@dataclass(frozen=True)
class InstanceType:
    """A ``VirtualMachineClusterInstancetype`` a node group may use.

    ``documented`` is False for types that upstream Cozystack ships but Hikube does not document;
    they are listed last so forms can hide or de-emphasise them.
    """

    name: str
    series: str
    series_label: str
    vcpu: int
    memory_gib: Decimal
    documented: bool
    note: str = ""

    @property
    def memory_bytes(self) -> int:
        return int(self.memory_gib * 2**30)

    @property
    def label(self) -> str:
        return f"{self.name} · {self.vcpu} vCPU · {_fmt_decimal(self.memory_gib)} GiB"


def _fmt_decimal(value: Decimal) -> str:
    """``Decimal('4')`` → ``4``, ``Decimal('0.5')`` → ``0.5`` (no exponent, no trailing zeros)."""
    text = format(value.normalize(), "f")
    return text


@functools.cache
def instance_series() -> tuple[InstanceSeries, ...]:
    raw = _load_json("instance-types.json")["series"]
    return tuple(
        InstanceSeries(key=key, label=item["label"], vcpu_to_ram=item["vcpu_to_ram"])
        for key, item in raw.items()
    )


@functools.cache
def instance_types() -> tuple[InstanceType, ...]:
    """Hikube-documented types first (file order), then the upstream-only ones."""
    raw = _load_json("instance-types.json")
    labels = {series.key: series.label for series in instance_series()}

    def build(item: dict[str, Any], documented: bool) -> InstanceType:
        return InstanceType(
            name=item["name"],
            series=item["series"],
            series_label=labels.get(item["series"], item["series"]),
            vcpu=int(item["vcpu"]),
            memory_gib=Decimal(str(item["memory_gib"])),
            documented=documented,
            note=item.get("note", ""),
        )

    documented = [build(item, True) for item in raw["instance_types"]]
    upstream = [build(item, False) for item in raw["upstream_only_not_documented_by_hikube"]]
    return tuple(documented + upstream)


@functools.cache
def _instance_types_by_name() -> dict[str, InstanceType]:
    return {item.name: item for item in instance_types()}


def get_instance_type(name: str) -> InstanceType | None:
    return _instance_types_by_name().get(name)


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GpuModel:
    """A GPU that can be passed through to worker VMs; ``name`` is what the manifest carries."""

    name: str
    model: str
    memory_gb: int
    architecture: str
    typical_use: str

    @property
    def label(self) -> str:
        return f"{self.model} ({self.memory_gb} GB)"


MIN_GPU_NODE_MEMORY_GIB = 4
"""The NVIDIA driver needs at least this much RAM per node (schema description)."""

RECOMMENDED_VCPU_PER_GPU = (8, 16)


@functools.cache
def gpu_models() -> tuple[GpuModel, ...]:
    return tuple(
        GpuModel(
            name=item["name"],
            model=item["model"],
            memory_gb=int(item["memory_gb"]),
            architecture=item["architecture"],
            typical_use=item["typical_use"],
        )
        for item in _load_json("instance-types.json")["gpus"]
    )


def get_gpu_model(name: str) -> GpuModel | None:
    return next((gpu for gpu in gpu_models() if gpu.name == name), None)


# --------------------------------------------------------------------------- versions

_VERSION_RE = re.compile(r"^v(\d+)\.(\d+)$")


@dataclass(frozen=True)
class KubernetesVersion:
    """``name`` is what the manifest carries (major.minor); the platform pins ``patch``."""

    name: str
    patch: str
    is_default: bool

    @property
    def label(self) -> str:
        suffix = " (default)" if self.is_default else ""
        return f"{self.name} ({self.patch}){suffix}" if self.patch else f"{self.name}{suffix}"


def parse_version(name: str) -> tuple[int, int] | None:
    """``"v1.34"`` → ``(1, 34)``; anything else (patch versions, no ``v``) → None."""
    match = _VERSION_RE.match(name or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


@functools.cache
def versions() -> tuple[KubernetesVersion, ...]:
    """Allowed versions, newest first."""
    raw = _load_json("versions.json")
    names = sorted(raw["allowed"], key=lambda n: parse_version(n) or (0, 0), reverse=True)
    return tuple(
        KubernetesVersion(
            name=name,
            patch=raw.get("resolved_patch", {}).get(name, ""),
            is_default=name == raw["default"],
        )
        for name in names
    )


def version_names() -> tuple[str, ...]:
    return tuple(v.name for v in versions())


def get_version(name: str) -> KubernetesVersion | None:
    return next((v for v in versions() if v.name == name), None)


def default_version() -> KubernetesVersion:
    return next(v for v in versions() if v.is_default)


def next_minor(version: str, allowed: tuple[str, ...] | list[str] | None = None) -> str | None:
    """The one version a cluster on ``version`` may move to, if the platform offers it.

    Kamaji refuses downgrades and jumps of more than one minor, so this is the only target.
    ``version`` itself need not be offered any more (a platform upgrade may drop it).
    """
    parsed = parse_version(version)
    if parsed is None:
        return None
    candidate = f"v{parsed[0]}.{parsed[1] + 1}"
    offered = version_names() if allowed is None else tuple(allowed)
    return candidate if candidate in offered else None


def upgrade_targets(version: str, allowed: tuple[str, ...] | list[str] | None = None) -> list[str]:
    target = next_minor(version, allowed)
    return [target] if target else []


def is_allowed_upgrade(
    old: str, new: str, allowed: tuple[str, ...] | list[str] | None = None
) -> bool:
    """True when ``new`` is ``old`` (no change) or its next offered minor."""
    return new == old or new == next_minor(old, allowed)


# --------------------------------------------------------------------------- control plane


@dataclass(frozen=True)
class ControlPlanePreset:
    """Real limits of a ``resourcesPreset`` (PLATFORM.md (a); the Hikube concepts page is stale).

    CPU request = limit ÷ 10 (platform CPU allocation ratio); memory request = limit.
    """

    name: str
    cpu: str
    memory: str
    cpu_millicores: int
    memory_mib: int

    @property
    def label(self) -> str:
        return f"{self.name} · {self.cpu} CPU · {self.memory}"


@dataclass(frozen=True)
class ControlPlaneComponent:
    key: str
    spec_field: str
    label: str
    default_preset: str


CONTROL_PLANE_PRESETS: tuple[ControlPlanePreset, ...] = (
    ControlPlanePreset("nano", "250m", "128Mi", 250, 128),
    ControlPlanePreset("micro", "500m", "256Mi", 500, 256),
    ControlPlanePreset("small", "1", "512Mi", 1000, 512),
    ControlPlanePreset("medium", "1", "1Gi", 1000, 1024),
    ControlPlanePreset("large", "2", "2Gi", 2000, 2048),
    ControlPlanePreset("xlarge", "4", "4Gi", 4000, 4096),
    ControlPlanePreset("2xlarge", "8", "8Gi", 8000, 8192),
)

CONTROL_PLANE_COMPONENTS: tuple[ControlPlaneComponent, ...] = (
    ControlPlaneComponent("apiServer", "api_server_preset", "API server", "large"),
    ControlPlaneComponent(
        "controllerManager", "controller_manager_preset", "Controller manager", "micro"
    ),
    ControlPlaneComponent("scheduler", "scheduler_preset", "Scheduler", "micro"),
    ControlPlaneComponent("konnectivity", "konnectivity_preset", "Konnectivity server", "micro"),
)

DEFAULT_CONTROL_PLANE_REPLICAS = 2
CPU_ALLOCATION_RATIO = 10


def control_plane_presets() -> tuple[ControlPlanePreset, ...]:
    return CONTROL_PLANE_PRESETS


def get_control_plane_preset(name: str) -> ControlPlanePreset | None:
    return next((p for p in CONTROL_PLANE_PRESETS if p.name == name), None)


def control_plane_components() -> tuple[ControlPlaneComponent, ...]:
    return CONTROL_PLANE_COMPONENTS


# --------------------------------------------------------------------------- storage classes


@dataclass(frozen=True)
class StorageClass:
    name: str
    label: str
    description: str
    is_default: bool = False


STORAGE_CLASSES: tuple[StorageClass, ...] = (
    StorageClass(
        "replicated",
        "Replicated",
        "Volumes are copied synchronously to several servers; survives a server loss.",
        is_default=True,
    ),
    StorageClass(
        "replicated-async",
        "Replicated (async)",
        "Volumes are copied to other servers in the background; faster writes, "
        "the latest writes may be lost on a failure.",
    ),
    StorageClass(
        "local",
        "Local",
        "Volumes stay on the server that runs the node; fastest, but lost with that server.",
    ),
)
DEFAULT_STORAGE_CLASS = "replicated"


def storage_classes() -> tuple[StorageClass, ...]:
    return STORAGE_CLASSES


def get_storage_class(name: str) -> StorageClass | None:
    return next((s for s in STORAGE_CLASSES if s.name == name), None)


# --------------------------------------------------------------------------- node roles


@dataclass(frozen=True)
class NodeRole:
    name: str
    label: str
    description: str


INGRESS_NGINX_ROLE = "ingress-nginx"

NODE_ROLES: tuple[NodeRole, ...] = (
    NodeRole(
        INGRESS_NGINX_ROLE,
        "Ingress nodes",
        "Runs the Ingress NGINX controller: its DaemonSet and the Proxied service only use "
        "nodes with this role. At least one group needs it when Ingress NGINX is on.",
    ),
)


def node_roles() -> tuple[NodeRole, ...]:
    return NODE_ROLES


def get_node_role(name: str) -> NodeRole | None:
    return next((r for r in NODE_ROLES if r.name == name), None)


# --------------------------------------------------------------------------- add-ons


@dataclass(frozen=True)
class Addon:
    """A key of ``spec.addons``.

    ``has_enabled`` is False for the always-installed, tuning-only add-ons (cilium, coredns,
    verticalPodAutoscaler). ``value_roots`` are the only top-level keys of ``valuesOverride``
    the platform's wrapper chart reads; anything else is silently ignored. An empty
    ``value_roots`` means the add-on takes no ``valuesOverride`` at all (gatewayAPI).
    """

    key: str
    label: str
    description: str
    has_enabled: bool
    value_roots: tuple[str, ...]
    notes: tuple[str, ...] = ()
    always_installed: bool = False
    extra_keys: tuple[str, ...] = ()

    @property
    def has_values_override(self) -> bool:
        return bool(self.value_roots)


INGRESS_NGINX = "ingressNginx"
GPU_OPERATOR = "gpuOperator"
MONITORING_AGENTS = "monitoringAgents"
VERTICAL_POD_AUTOSCALER = "verticalPodAutoscaler"
GATEWAY_API = "gatewayAPI"

ADDONS: tuple[Addon, ...] = (
    Addon(
        "certManager",
        "cert-manager",
        "Issues and renews TLS certificates (installs its CRDs).",
        True,
        ("cert-manager",),
    ),
    Addon(
        "cilium",
        "Cilium",
        "The cluster network (CNI). Always installed; only its values can be tuned.",
        False,
        ("cilium",),
        always_installed=True,
    ),
    Addon(
        "coredns",
        "CoreDNS",
        "In-cluster DNS. Always installed; only its values can be tuned.",
        False,
        ("coredns",),
        always_installed=True,
    ),
    Addon(
        "fluxcd",
        "Flux",
        "GitOps: the Flux operator and a Flux instance.",
        True,
        ("flux-instance",),
    ),
    Addon(
        GATEWAY_API,
        "Gateway API",
        "Gateway API CRDs and the Cilium gateway.",
        True,
        (),
        notes=("Takes no custom values.",),
    ),
    Addon(
        GPU_OPERATOR,
        "NVIDIA GPU operator",
        "GPU drivers and device plugin inside the cluster.",
        True,
        ("gpu-operator",),
        notes=("Required when any node group has GPUs.",),
    ),
    Addon(
        INGRESS_NGINX,
        "Ingress NGINX",
        "Ingress controller running on the nodes with the ingress-nginx role.",
        True,
        ("ingress-nginx",),
        notes=(
            "Needs at least one node group with the ingress-nginx role.",
            "Proxied: the listed hosts are routed from the platform ingress to the cluster.",
            "LoadBalancer: takes a public IP address (billed and limited by quota).",
        ),
        extra_keys=("exposeMethod", "hosts"),
    ),
    Addon(
        MONITORING_AGENTS,
        "Monitoring agents",
        "Ships metrics and logs (vmagent, fluent-bit) to the tenant monitoring stack.",
        True,
        ("vmagent", "fluent-bit", "kube-state-metrics"),
        notes=(
            "Also installs the Vertical Pod Autoscaler and the VictoriaMetrics operator.",
            "Needs a monitoring stack in this tenant or a parent tenant.",
        ),
    ),
    Addon(
        "velero",
        "Velero",
        "Backup and restore of cluster resources and volumes.",
        True,
        ("velero",),
    ),
    Addon(
        VERTICAL_POD_AUTOSCALER,
        "Vertical Pod Autoscaler",
        "Tuning for the VPA that monitoring agents install.",
        False,
        ("vertical-pod-autoscaler",),
        notes=("Only takes effect when monitoring agents are enabled.",),
        always_installed=False,
    ),
)


@dataclass(frozen=True)
class ExposeMethod:
    name: str
    label: str
    description: str


EXPOSE_METHODS: tuple[ExposeMethod, ...] = (
    ExposeMethod(
        "Proxied",
        "Proxied",
        "Traffic for the listed hosts comes through the platform ingress (TLS passthrough). "
        "No public IP needed.",
    ),
    ExposeMethod(
        "LoadBalancer",
        "Load balancer",
        "The controller gets its own public IP address; hosts are not used.",
    ),
)
DEFAULT_EXPOSE_METHOD = "Proxied"


def addons() -> tuple[Addon, ...]:
    """All ``spec.addons`` keys, in the order the manifest writes them."""
    return ADDONS


def get_addon(key: str) -> Addon | None:
    return next((a for a in ADDONS if a.key == key), None)


def expose_methods() -> tuple[ExposeMethod, ...]:
    return EXPOSE_METHODS


# --------------------------------------------------------------------------- node groups and names
# (the range of every number is in ``limits``)

DEFAULT_EPHEMERAL_STORAGE_GIB = 50
MAX_CLUSTER_NAME_LENGTH = 42
MAX_CLUSTER_AND_GROUP_NAME_LENGTH = 39
PRIMARY_NODE_GROUP = "md0"
"""The chart's built-in default group; the portal uses it as the first group's name."""
