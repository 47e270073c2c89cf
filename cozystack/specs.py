"""The portal-side description of a cluster, as plain frozen dataclasses.

The Django models convert themselves to these; rendering (``manifests``), change wording
(``changes``) and validation work on them without touching the database or the network.
Quantity parsing lives here because sizing rules and rendering both need it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
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
class NodeGroupSpec:
    """One worker group. ``gpus`` has one entry per GPU per node (repeat for multi-GPU).

    ``roles`` and ``gpus`` are normalised to sorted tuples: their order has no meaning to the
    platform, but it is part of the VM template, so a different order would replace nodes.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "roles", tuple(sorted(_as_tuple(self.roles))))
        object.__setattr__(self, "gpus", tuple(sorted(_as_tuple(self.gpus))))
        object.__setattr__(self, "cpu", _blank_to_none(self.cpu))
        object.__setattr__(self, "memory", _blank_to_none(self.memory))

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
    """Kamaji API-server replicas and a size preset per component (PLATFORM.md (a))."""

    replicas: int = catalog.DEFAULT_CONTROL_PLANE_REPLICAS
    api_server_preset: str = "large"
    controller_manager_preset: str = "micro"
    scheduler_preset: str = "micro"
    konnectivity_preset: str = "micro"


@dataclass(frozen=True)
class AutoRepairSpec:
    """Node auto-repair (the platform's node health check): a node that stays unhealthy, or
    never becomes ready within ``node_startup_timeout``, is replaced, as long as no more than
    ``max_unhealthy`` nodes of its group are unhealthy at once (``"N"`` or ``"N%"``)."""

    enabled: bool = True
    max_unhealthy: str = "50%"
    node_startup_timeout: str = "10m"


@dataclass(frozen=True)
class OidcUserSpec:
    """A person given access to the cluster through the platform's single sign-on."""

    email: str
    role: str  # "admin" | "view"


@dataclass(frozen=True)
class ClusterSpec:
    """The whole desired cluster; ``node_groups`` order is the form's (rendering sorts)."""

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
        object.__setattr__(
            self,
            "oidc_users",
            tuple(sorted(_as_tuple(self.oidc_users), key=lambda user: user.email)),
        )

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

    Returns None for anything the platform would reject, so callers can word their own error.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if not isinstance(value, str):
        return None
    match = _QUANTITY_RE.fullmatch(value)
    if not match:
        return None
    try:
        number = Decimal(match.group("num"))
    except InvalidOperation:
        return None
    suffix = match.group("suffix") or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * (Decimal(10) ** int(suffix[1:]))


def quantity_to_gib(value: Any) -> int | None:
    """A disk/memory quantity rounded up to whole GiB (the portal's unit)."""
    parsed = parse_quantity(value)
    if parsed is None:
        return None
    return int(math.ceil(parsed / (2**30)))


def gib(value: int) -> str:
    return f"{value}Gi"
