"""The portal-side description of a cluster, as plain frozen dataclasses.

This is the portal's own, release-neutral model (SPEC-V16): its names are not any release's
field names. A dialect (``cozystack.dialects``) renders it for the contract the platform speaks
(``disk_gib`` becomes ``ephemeralStorage`` at v1.3 and ``diskSize`` at v1.6; control-plane presets
are named with the v1.6 families and mapped back to the old names for v1.3) and refuses what its
release cannot do. The Django models convert themselves to these; rendering, change wording
(``changes``) and validation work on them without touching the database or the network.
Quantity parsing lives here because sizing rules and rendering both need it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from cozystack import catalog

RELEASE_PREFIX = "kubernetes-"


# --------------------------------------------------------------------------- input dataclasses


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


@dataclass(frozen=True)
class KubeletSpec:
    """Kubelet reservations of a group's nodes (v1.6); ``""`` = the platform computes it.

    Memory values are quantities (``"512Mi"``), CPU values millicores or cores (``"100m"``),
    eviction thresholds a percentage (``"7%"``) or a quantity; hard must stay below soft.
    """

    system_reserved_memory: str = ""
    system_reserved_cpu: str = ""
    kube_reserved_memory: str = ""
    kube_reserved_cpu: str = ""
    eviction_hard_memory: str = ""
    eviction_soft_memory: str = ""

    def __post_init__(self) -> None:
        for name in KUBELET_FIELDS:
            object.__setattr__(self, name, str(getattr(self, name) or "").strip())

    @property
    def is_empty(self) -> bool:
        return not any(getattr(self, name) for name in KUBELET_FIELDS)


KUBELET_FIELDS = (
    "system_reserved_memory",
    "system_reserved_cpu",
    "kube_reserved_memory",
    "kube_reserved_cpu",
    "eviction_hard_memory",
    "eviction_soft_memory",
)


@dataclass(frozen=True)
class NodeGroupSpec:
    """One worker group. ``gpus`` has one entry per GPU per node (repeat for multi-GPU).

    ``roles`` and ``gpus`` are normalised to sorted tuples: their order has no meaning to the
    platform, but it is part of the VM template, so a different order would replace nodes.
    ``disk_gib`` is the node's disk. ``storage_class`` (``""``: the cluster's),
    ``max_unhealthy`` and ``node_startup_timeout`` (``""``: the cluster's auto-repair setting)
    and ``kubelet`` exist from v1.6; the v1.3 dialect refuses anything but their empty values.
    """

    name: str
    instance_type: str
    min_replicas: int
    max_replicas: int
    disk_gib: int
    roles: tuple[str, ...] = ()
    gpus: tuple[str, ...] = ()
    cpu: str | None = None
    memory: str | None = None
    storage_class: str = ""
    max_unhealthy: str = ""
    node_startup_timeout: str = ""
    kubelet: KubeletSpec = field(default_factory=KubeletSpec)

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(sorted(_as_tuple(self.roles))))
        object.__setattr__(self, "gpus", tuple(sorted(_as_tuple(self.gpus))))
        object.__setattr__(self, "cpu", _blank_to_none(self.cpu))
        object.__setattr__(self, "memory", _blank_to_none(self.memory))
        for name in ("storage_class", "max_unhealthy", "node_startup_timeout"):
            object.__setattr__(self, name, str(getattr(self, name) or "").strip())
        if isinstance(self.kubelet, dict):
            object.__setattr__(self, "kubelet", KubeletSpec(**self.kubelet))
        elif self.kubelet is None:
            object.__setattr__(self, "kubelet", KubeletSpec())

    @property
    def is_custom_size(self) -> bool:
        return not self.instance_type


def _blank_to_none(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, str) and not value.strip():
        return None
    return value


@dataclass(frozen=True)
class AddonSpec:
    """Settings of one ``spec.addons`` key; ``enabled`` is ignored for always-on add-ons."""

    key: str
    enabled: bool
    values_override: dict[str, Any] = field(default_factory=dict)
    expose_method: str = catalog.DEFAULT_EXPOSE_METHOD
    hosts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", _as_tuple(self.hosts))


@dataclass(frozen=True)
class ControlPlaneSpec:
    """Kamaji API-server replicas and a size preset per component (PLATFORM.md (a)).

    Presets carry the portal's names (the v1.6 families, ``catalog.control_plane_presets``);
    an old v1.3 name given here is read as its new name.
    """

    replicas: int = catalog.DEFAULT_CONTROL_PLANE_REPLICAS
    api_server_preset: str = catalog.DEFAULT_API_SERVER_PRESET
    controller_manager_preset: str = catalog.DEFAULT_COMPONENT_PRESET
    scheduler_preset: str = catalog.DEFAULT_COMPONENT_PRESET
    konnectivity_preset: str = catalog.DEFAULT_COMPONENT_PRESET

    def __post_init__(self) -> None:
        for component in catalog.control_plane_components():
            value = getattr(self, component.spec_field)
            if isinstance(value, str):
                object.__setattr__(self, component.spec_field, catalog.neutral_preset(value))


@dataclass(frozen=True)
class AutoRepairSpec:
    """Node auto-repair (v1.6 ``nodeHealthCheck``): a node that is unhealthy, or has not joined
    within ``node_startup_timeout``, is replaced, unless more than ``max_unhealthy`` of its group
    is unhealthy at once. ``enabled=False`` sends ``maxUnhealthy: "0%"`` (never repair)."""

    enabled: bool = True
    max_unhealthy: str = "50%"
    node_startup_timeout: str = "10m"


OIDC_ROLES = ("admin", "view")


@dataclass(frozen=True)
class OidcUserSpec:
    """A person given access to the tenant cluster with their own login (v1.6 ``oidc.users``)."""

    email: str
    role: str = "view"


@dataclass(frozen=True)
class ClusterSpec:
    """The whole desired cluster; ``node_groups`` order is the form's (rendering sorts).

    ``auto_repair`` None means the platform's default (v1.6: on at 50 %/10m; v1.3: no repair).
    ``oidc_users`` (sorted by email) non-empty means per-user OIDC access (v1.6 only).
    """

    name: str
    namespace: str
    version: str
    storage_class: str = catalog.DEFAULT_STORAGE_CLASS
    host: str = ""
    control_plane: ControlPlaneSpec = field(default_factory=ControlPlaneSpec)
    node_groups: tuple[NodeGroupSpec, ...] = ()
    addons: tuple[AddonSpec, ...] = ()
    auto_repair: AutoRepairSpec | None = None
    oidc_users: tuple[OidcUserSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "node_groups", _as_tuple(self.node_groups))
        object.__setattr__(self, "addons", _as_tuple(self.addons))
        users = tuple(OidcUserSpec(**u) if isinstance(u, dict) else u
                      for u in _as_tuple(self.oidc_users))
        object.__setattr__(self, "oidc_users", tuple(sorted(users, key=lambda u: u.email)))
        if isinstance(self.auto_repair, dict):
            object.__setattr__(self, "auto_repair", AutoRepairSpec(**self.auto_repair))

    @property
    def release_name(self) -> str:
        """Name of the HelmRelease, and of the CAPI cluster (``kubernetes-<name>``)."""
        return f"{RELEASE_PREFIX}{self.name}"

    def group(self, name: str) -> NodeGroupSpec | None:
        return next((g for g in self.node_groups if g.name == name), None)

    def addon(self, key: str) -> AddonSpec:
        """The add-on's settings, or the platform default (off, no custom values)."""
        found = next((a for a in self.addons if a.key == key), None)
        if found is not None:
            return found
        addon = catalog.get_addon(key)
        return AddonSpec(key=key, enabled=bool(addon and addon.always_installed))

    def addon_enabled(self, key: str) -> bool:
        addon = catalog.get_addon(key)
        if addon is not None and not addon.has_enabled:
            return addon.always_installed or (
                key == catalog.VERTICAL_POD_AUTOSCALER
                and self.addon_enabled(catalog.MONITORING_AGENTS)
            )
        return bool(self.addon(key).enabled)


# --------------------------------------------------------------------------- quantities

_QUANTITY_RE = re.compile(
    r"^(?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+))"
    r"(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?\d+)?$"
)
_MAX_QUANTITY = 2**63
_MAX_QUANTITY_TEXT = 64
_MAX_EXPONENT = 30
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}


def parse_quantity(value: Any) -> Decimal | None:
    """A Kubernetes quantity (``"50Gi"``, ``"500m"``, ``4``) as a Decimal of base units.

    Returns None for anything the platform would reject, so callers can word their own error;
    that includes amounts of 2**63 base units or more (``1e30``, ``1e9999999``), which no
    node has and which would otherwise cost the portal time and memory to compute with.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value) if abs(value) < _MAX_QUANTITY else None
    if not isinstance(value, str) or len(value) > _MAX_QUANTITY_TEXT:
        return None
    match = _QUANTITY_RE.fullmatch(value)
    if not match:
        return None
    suffix = match.group("suffix") or ""
    try:
        number = Decimal(match.group("num"))
        if suffix in _BINARY:
            result = number * _BINARY[suffix]
        elif suffix in _DECIMAL:
            result = number * _DECIMAL[suffix]
        else:
            exponent = int(suffix[1:])
            if abs(exponent) > _MAX_EXPONENT:
                return None
            result = number * (Decimal(10) ** exponent)
    except (ArithmeticError, ValueError):
        return None
    return result if abs(result) < _MAX_QUANTITY else None


def quantity_to_gib(value: Any) -> int | None:
    """A disk/memory quantity rounded up to whole GiB (the portal's unit)."""
    parsed = parse_quantity(value)
    if parsed is None:
        return None
    return int(math.ceil(parsed / (2**30)))


def gib(value: int) -> str:
    return f"{value}Gi"
