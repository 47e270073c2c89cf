"""What the platform offers: instance types, GPUs, versions, presets, storage classes, add-ons.

Pure data, loaded once from the JSON files in ``data/`` (copied from the platform contract, see
PLATFORM.md and PLATFORM-v1.6.md). What depends on the release the platform runs (versions,
control-plane presets, instance types, GPUs, the add-on list) is a ``Catalogue``: each dialect
(``cozystack.dialects``) loads its own from its release's files, and every caller reaches it
through the dialect the live platform speaks. What does not depend on the release lives here at
module level: the add-on definitions (each dialect offers a subset), the control-plane preset
sizes under the portal's own names (the v1.6 families), storage classes, node roles, limits.

Tenants may not be allowed to list the cluster-scoped instance types, so the portal ships its
own catalogue; the Kubernetes version list is refreshed from the live schema
(``validation.allowed_versions_from_schema``) and passed to the validators.

Every text here is short plain English; the Django layer wraps it for translation.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

DATA_DIR = Path(__file__).resolve().parent / "data"


@functools.cache
def _load_json(filename: str) -> Any:
    """Parse a data file once; callers must not mutate the result (use the public copies)."""
    with (DATA_DIR / filename).open(encoding="utf-8") as fh:
        return json.load(fh)


@functools.cache
def _load_yaml(filename: str) -> Any:
    with (DATA_DIR / filename).open(encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def bundled_kubernetes_schema(release_dir: str = "") -> dict[str, Any]:
    """The upstream ``Kubernetes`` values schema of a release (a fresh copy).

    ``release_dir`` is the release's folder under ``data/`` (``""``: v1.3.6, ``"v1.6.2"``). The
    live platform publishes the schema it runs in its ``ApplicationDefinition``; these copies
    are what the dialects recognise it by, and the fallback for offline previews.
    """
    return copy.deepcopy(_load_json(_in(release_dir, "kubernetes.values.schema.json")))


def bundled_chart_values(release_dir: str = "") -> dict[str, Any]:
    """The chart's ``values.yaml`` of a release (a fresh copy): what Helm merges under a spec."""
    values = _load_yaml(_in(release_dir, "kubernetes.values.yaml"))
    return copy.deepcopy(values) if isinstance(values, dict) else {}


def bundled_tenant_schema(release_dir: str = "") -> dict[str, Any]:
    """The upstream ``Tenant`` values schema shipped with the portal (a fresh copy)."""
    return copy.deepcopy(_load_json(_in(release_dir, "tenant.values.schema.json")))


def _in(release_dir: str, filename: str) -> str:
    return f"{release_dir}/{filename}" if release_dir else filename


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
    they are listed last so forms can hide or de-emphasise them. ``dedicated_cpu`` (pinned vCPUs,
    the ``d1``/``cx1``/``n1``/``rt1`` series), ``hugepages`` (``"2Mi"``/``"1Gi"``) and
    ``deprecated`` come from the release's own instance types (v1.6).
    """

    name: str
    series: str
    series_label: str
    vcpu: int
    memory_gib: Decimal
    documented: bool
    note: str = ""
    dedicated_cpu: bool = False
    hugepages: str = ""
    deprecated: bool = False

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


def _instance_series(raw: dict[str, Any]) -> tuple[InstanceSeries, ...]:
    return tuple(
        InstanceSeries(key=key, label=item["label"], vcpu_to_ram=item["vcpu_to_ram"])
        for key, item in raw["series"].items()
    )


def _instance_types(
    raw: dict[str, Any], series: tuple[InstanceSeries, ...]
) -> tuple[InstanceType, ...]:
    """Hikube-documented types first (file order), then the upstream-only ones."""
    labels = {item.key: item.label for item in series}

    def build(item: dict[str, Any], documented: bool) -> InstanceType:
        return InstanceType(
            name=item["name"],
            series=item["series"],
            series_label=labels.get(item["series"], item["series"]),
            vcpu=int(item["vcpu"]),
            memory_gib=Decimal(str(item["memory_gib"])),
            documented=documented,
            note=item.get("note", ""),
            dedicated_cpu=bool(item.get("dedicated_cpu", False)),
            hugepages=str(item.get("hugepages") or ""),
            deprecated=bool(item.get("deprecated", False)),
        )

    documented = [build(item, True) for item in raw["instance_types"]]
    upstream = [build(item, False) for item in raw["upstream_only_not_documented_by_hikube"]]
    return tuple(documented + upstream)


@functools.cache
def _described_instance_types() -> dict[str, InstanceType]:
    described: dict[str, InstanceType] = {}
    for release_dir in ("v1.6.2", ""):
        raw = _load_json(_in(release_dir, "instance-types.json"))
        for item in _instance_types(raw, _instance_series(raw)):
            described.setdefault(item.name, item)
    return described


def describe_instance_type(name: str) -> InstanceType | None:
    """The size of an instance type, whichever supported release offers it (quotas and prices
    count what a group uses; what a platform offers is its catalogue's ``instance_types``)."""
    return _described_instance_types().get(name)


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class GpuModel:
    """A GPU that can be passed through to worker VMs; ``name`` is what the manifest carries.

    ``availability`` is what the platform says of its stock (the Option API's description,
    such as "8 available on gpu-node-1, gpu-node-2"); empty when the portal only knows the
    GPU from its catalogue.
    """

    name: str
    model: str
    memory_gb: int
    architecture: str
    typical_use: str
    availability: str = ""

    @property
    def label(self) -> str:
        if not self.memory_gb:
            return self.model
        return f"{self.model} ({self.memory_gb} GB)"


MIN_GPU_NODE_MEMORY_GIB = 4
"""The NVIDIA driver needs at least this much RAM per node (schema description)."""

RECOMMENDED_VCPU_PER_GPU = (8, 16)
_GPU_MEMORY = re.compile(r"_(\d+)GB$")


def _gpu_from_resource_name(name: str) -> GpuModel:
    """A GPU the platform permits that Hikube does not describe, named from its resource name
    (``nvidia.com/GH100_H200_SXM_141GB`` → "NVIDIA GH100 H200 SXM", 141 GB)."""
    device = name.split("/", 1)[-1]
    memory = _GPU_MEMORY.search(device)
    if memory:
        device = device[: memory.start()]
    return GpuModel(
        name=name,
        model="NVIDIA " + device.replace("_", " "),
        memory_gb=int(memory.group(1)) if memory else 0,
        architecture="",
        typical_use="",
    )


def _gpu_models(raw: dict[str, Any], passthrough: bool) -> tuple[GpuModel, ...]:
    """Hikube's GPUs; with ``passthrough`` (v1.6, where the platform's GPU operator owns the
    permitted devices) the upstream passthrough defaults, described from Hikube's list where it
    knows them."""
    described = {
        item["name"]: GpuModel(
            name=item["name"],
            model=item["model"],
            memory_gb=int(item["memory_gb"]),
            architecture=item["architecture"],
            typical_use=item["typical_use"],
        )
        for item in raw["gpus"]
    }
    if not passthrough:
        return tuple(described.values())
    names = [item["name"] for item in raw.get("gpus_upstream_passthrough_defaults") or []]
    return tuple(described.get(name) or _gpu_from_resource_name(name) for name in names)


@functools.cache
def _described_gpus() -> dict[str, GpuModel]:
    described: dict[str, GpuModel] = {}
    for release_dir in ("v1.6.2", ""):
        raw = _load_json(_in(release_dir, "instance-types.json"))
        for gpu in _gpu_models(raw, passthrough=bool(release_dir)) + _gpu_models(raw, False):
            described.setdefault(gpu.name, gpu)
    return described


def describe_gpu(name: str) -> GpuModel | None:
    """What the portal knows of a GPU resource name, whichever release offers it (for words;
    what a platform offers is its catalogue's ``gpu_models``)."""
    return _described_gpus().get(name)


def gpu_from_platform(name: str) -> GpuModel:
    """A GPU the platform offers (its Option API), in the portal's words: described where a
    catalogue knows it, else named from its resource name (``nvidia.com/GH100_H200_SXM_141GB``
    → "NVIDIA GH100 H200 SXM", 141 GB). The platform owns the list of GPUs it passes through."""
    return describe_gpu(name) or _gpu_from_resource_name(name)


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


def newest_first(names: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(names, key=lambda n: parse_version(n) or (0, 0), reverse=True))


def _versions(raw: dict[str, Any]) -> tuple[KubernetesVersion, ...]:
    """Allowed versions, newest first."""
    return tuple(
        KubernetesVersion(
            name=name,
            patch=raw.get("resolved_patch", {}).get(name, ""),
            is_default=name == raw["default"],
        )
        for name in newest_first(raw["allowed"])
    )


def next_minor(version: str, allowed: Iterable[str]) -> str | None:
    """The one version a cluster on ``version`` may move to, if ``allowed`` offers it.

    Kamaji refuses downgrades and jumps of more than one minor, so this is the only target.
    ``version`` itself need not be offered any more (a platform upgrade may drop it).
    """
    parsed = parse_version(version)
    if parsed is None:
        return None
    candidate = f"v{parsed[0]}.{parsed[1] + 1}"
    return candidate if candidate in tuple(allowed) else None


def upgrade_targets(version: str, allowed: Iterable[str]) -> list[str]:
    target = next_minor(version, allowed)
    return [target] if target else []


def is_allowed_upgrade(old: str, new: str, allowed: Iterable[str]) -> bool:
    """True when ``new`` is ``old`` (no change) or its next offered minor."""
    return new == old or new == next_minor(old, allowed)


# --------------------------------------------------------------------------- control plane


@dataclass(frozen=True)
class ControlPlanePreset:
    """Real limits of a ``resourcesPreset`` (the Hikube concepts page is stale).

    Presets are named by the portal with the v1.6 families (``t1`` "tiny", ``c1`` compute,
    ``s1``, ``u1``, ``m1``): a v1.3 platform takes the seven of them that have an old name
    (``LEGACY_PRESET_NAMES``), with the same sizes. A preset is not an instance type:
    preset ``u1.medium`` is 2 CPU / 8Gi, instance type ``u1.medium`` 1 vCPU / 4 GiB.

    CPU request = limit ÷ 10 (platform CPU allocation ratio); memory request = limit.
    """

    name: str
    cpu: str
    memory: str
    cpu_millicores: int
    memory_mib: int

    @property
    def family(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def label(self) -> str:
        return f"{self.name} · {self.cpu} CPU · {self.memory}"


@dataclass(frozen=True)
class PresetFamily:
    key: str
    label: str


PRESET_FAMILIES: tuple[PresetFamily, ...] = (
    PresetFamily("t1", "Tiny (little memory per CPU)"),
    PresetFamily("c1", "Compute (1 GiB per CPU)"),
    PresetFamily("s1", "Standard (2 GiB per CPU)"),
    PresetFamily("u1", "Universal (4 GiB per CPU)"),
    PresetFamily("m1", "Memory (8 GiB per CPU)"),
)


@dataclass(frozen=True)
class ControlPlaneComponent:
    key: str
    spec_field: str
    label: str
    default_preset: str


def _millicores(cpu: str) -> int:
    return int(cpu[:-1]) if cpu.endswith("m") else int(Decimal(cpu) * 1000)


def _mib(memory: str) -> int:
    return int(memory[:-2]) if memory.endswith("Mi") else int(memory[:-2]) * 1024


@functools.cache
def control_plane_presets() -> tuple[ControlPlanePreset, ...]:
    """Every preset under the portal's names, smallest family first (the v1.6 table)."""
    raw = _load_json("v1.6.2/control-plane-presets.json")["presets"]
    return tuple(
        ControlPlanePreset(name, item["cpu"], item["memory"], _millicores(item["cpu"]),
                           _mib(item["memory"]))
        for name, item in raw.items()
    )


def get_control_plane_preset(name: str) -> ControlPlanePreset | None:
    return next((p for p in control_plane_presets() if p.name == name), None)


LEGACY_PRESET_NAMES: dict[str, str] = {
    "t1.nano": "nano",
    "t1.micro": "micro",
    "t1.small": "small",
    "c1.small": "medium",
    "c1.medium": "large",
    "c1.large": "xlarge",
    "c1.xlarge": "2xlarge",
}
"""Portal name → the v1.3 name of the same size (upstream migration 39, reversed)."""

PRESET_FROM_LEGACY: dict[str, str] = {old: new for new, old in LEGACY_PRESET_NAMES.items()}


def neutral_preset(name: str) -> str:
    """The portal's name for a preset read from anywhere (an old v1.3 name is mapped)."""
    return PRESET_FROM_LEGACY.get(name, name)


DEFAULT_API_SERVER_PRESET = "c1.medium"
DEFAULT_COMPONENT_PRESET = "t1.micro"

CONTROL_PLANE_COMPONENTS: tuple[ControlPlaneComponent, ...] = (
    ControlPlaneComponent("apiServer", "api_server_preset", "API server",
                          DEFAULT_API_SERVER_PRESET),
    ControlPlaneComponent(
        "controllerManager", "controller_manager_preset", "Controller manager",
        DEFAULT_COMPONENT_PRESET,
    ),
    ControlPlaneComponent("scheduler", "scheduler_preset", "Scheduler", DEFAULT_COMPONENT_PRESET),
    ControlPlaneComponent("konnectivity", "konnectivity_preset", "Konnectivity server",
                          DEFAULT_COMPONENT_PRESET),
)

DEFAULT_CONTROL_PLANE_REPLICAS = 2
CPU_ALLOCATION_RATIO = 10


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
    ``requires`` are the add-ons that must be enabled with it (the chart fails to render
    otherwise); ``deprecated`` says why a release's catalogue no longer recommends it.
    """

    key: str
    label: str
    description: str
    has_enabled: bool
    value_roots: tuple[str, ...]
    notes: tuple[str, ...] = ()
    always_installed: bool = False
    extra_keys: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    deprecated: str = ""

    @property
    def has_values_override(self) -> bool:
        return bool(self.value_roots)


INGRESS_NGINX = "ingressNginx"
GPU_OPERATOR = "gpuOperator"
MONITORING_AGENTS = "monitoringAgents"
VERTICAL_POD_AUTOSCALER = "verticalPodAutoscaler"
GATEWAY_API = "gatewayAPI"
HAMI = "hami"
OUROBOROS = "ouroboros"
FLUXCD = "fluxcd"

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
        FLUXCD,
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
        HAMI,
        "HAMi fractional GPUs",
        "Shares each GPU between several pods (GPU memory and cores as resources).",
        True,
        ("hami",),
        notes=(
            "Needs the NVIDIA GPU operator; HAMi replaces its device plugin.",
        ),
        requires=(GPU_OPERATOR,),
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
        OUROBOROS,
        "Ouroboros",
        "Lets pods reach the cluster's own ingress hosts when the platform uses the PROXY "
        "protocol (hairpin NAT).",
        True,
        ("ouroboros",),
        notes=("Needs Ingress NGINX; only useful with the PROXY protocol.",),
        requires=(INGRESS_NGINX,),
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
    """Every ``spec.addons`` key any supported release knows, in the order the manifest writes
    them; a release's catalogue offers its own subset (``Catalogue.addons``)."""
    return ADDONS


def get_addon(key: str) -> Addon | None:
    return next((a for a in ADDONS if a.key == key), None)


def expose_methods() -> tuple[ExposeMethod, ...]:
    return EXPOSE_METHODS


# --------------------------------------------------------------------------- node groups and names
# (the range of every number is in ``limits``)

DEFAULT_DISK_GIB = 50
MAX_CLUSTER_NAME_LENGTH = 42
MAX_CLUSTER_AND_GROUP_NAME_LENGTH = 39
PRIMARY_NODE_GROUP = "md0"
"""The chart's built-in default group; the portal uses it as the first group's name."""


# --------------------------------------------------------------------------- one release's offer


@dataclass(frozen=True)
class Catalogue:
    """What one contract offers: its versions, presets, instance types, GPUs and add-ons.

    Each dialect owns one (``dialect.catalogue``), loaded from its release's files; callers
    never guess which release the platform runs.
    """

    release: str
    versions: tuple[KubernetesVersion, ...]
    presets: tuple[ControlPlanePreset, ...]
    instance_series: tuple[InstanceSeries, ...]
    instance_types: tuple[InstanceType, ...]
    gpu_models: tuple[GpuModel, ...]
    addons: tuple[Addon, ...]

    # -- versions
    def version_names(self) -> tuple[str, ...]:
        return tuple(v.name for v in self.versions)

    def get_version(self, name: str) -> KubernetesVersion | None:
        return next((v for v in self.versions if v.name == name), None)

    def default_version(self) -> KubernetesVersion:
        return next(v for v in self.versions if v.is_default)

    def next_minor(self, version: str, allowed: Iterable[str] | None = None) -> str | None:
        return next_minor(version, self.version_names() if allowed is None else allowed)

    def upgrade_targets(self, version: str, allowed: Iterable[str] | None = None) -> list[str]:
        return upgrade_targets(version, self.version_names() if allowed is None else allowed)

    def is_allowed_upgrade(self, old: str, new: str,
                           allowed: Iterable[str] | None = None) -> bool:
        return is_allowed_upgrade(old, new, self.version_names() if allowed is None else allowed)

    # -- presets, sizes, add-ons
    def get_control_plane_preset(self, name: str) -> ControlPlanePreset | None:
        return next((p for p in self.presets if p.name == name), None)

    def get_instance_type(self, name: str) -> InstanceType | None:
        return self._instance_types_by_name.get(name)

    @functools.cached_property
    def _instance_types_by_name(self) -> dict[str, InstanceType]:
        return {item.name: item for item in self.instance_types}

    def get_gpu_model(self, name: str) -> GpuModel | None:
        return next((gpu for gpu in self.gpu_models if gpu.name == name), None)

    def get_addon(self, key: str) -> Addon | None:
        return next((a for a in self.addons if a.key == key), None)


def load_catalogue(
    release: str,
    release_dir: str,
    *,
    addon_keys: Iterable[str],
    presets: Iterable[str],
    deprecated: dict[str, str] | None = None,
    gpu_passthrough: bool = False,
) -> Catalogue:
    """A release's catalogue from its files under ``data/<release_dir>``.

    ``addon_keys`` and ``presets`` are the add-ons and presets (portal names) the release
    offers; ``deprecated`` marks add-ons it still takes but no longer recommends.
    """
    raw_types = _load_json(_in(release_dir, "instance-types.json"))
    series = _instance_series(raw_types)
    keys = set(addon_keys)
    wanted = set(presets)
    notes = deprecated or {}
    return Catalogue(
        release=release,
        versions=_versions(_load_json(_in(release_dir, "versions.json"))),
        presets=tuple(p for p in control_plane_presets() if p.name in wanted),
        instance_series=series,
        instance_types=_instance_types(raw_types, series),
        gpu_models=_gpu_models(raw_types, gpu_passthrough),
        addons=tuple(
            dataclasses.replace(a, deprecated=notes.get(a.key, "")) for a in ADDONS
            if a.key in keys
        ),
    )
