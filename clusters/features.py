"""What the platform's release offers tenants, so that forms and the API show only that.

Some settings of the release-neutral spec exist on one Cozystack release only (a storage
class per node group, auto-repair, per-user access, fractional GPUs…). ``supports(feature)``
answers for the platform the portal talks to now; the create form, the detail page and the API
ask it before they offer a setting, and ``clusters.spec_rules`` refuses a setting the platform
would not understand.

The answer is read from the schema the platform publishes (``clusters.schema``), which names
every setting it accepts: this is the one place to switch to the dialect's own
``supports()`` once the dialect chosen from that schema answers it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.conf import settings

from clusters.schema import platform_schema
from cozystack import catalog
from cozystack.specs import parse_quantity

DISK_SIZE = "disk_size"  # one persistent disk per node (OS, kubelet state, local volumes)
PER_GROUP_STORAGE_CLASS = "per_group_storage_class"
AUTO_REPAIR = "auto_repair"
PER_GROUP_AUTO_REPAIR = "per_group_auto_repair"
OIDC = "oidc"
FRACTIONAL_GPUS = "fractional_gpus"
OUROBOROS = "ouroboros"
PRESET_FAMILIES = "preset_families"
# Rotating the admin kubeconfig's credentials: no release offers it yet (v1.6.2 included).
CREDENTIAL_ROTATION = "credential_rotation"
FEATURES = (DISK_SIZE, PER_GROUP_STORAGE_CLASS, AUTO_REPAIR, PER_GROUP_AUTO_REPAIR, OIDC,
            FRACTIONAL_GPUS, OUROBOROS, PRESET_FAMILIES, CREDENTIAL_ROTATION)

HAMI = "hami"
OUROBOROS_ADDON = "ouroboros"
# The add-ons only some releases have, and the feature that offers each.
ADDON_FEATURES = {HAMI: FRACTIONAL_GPUS, OUROBOROS_ADDON: OUROBOROS}

DISK_DEFAULT_GIB = 20  # v1.6's diskSize default: the OS image lives on it too
PRESETS_FILE = catalog.DATA_DIR / "v1.6.2" / "control-plane-presets.json"
PRESET_FAMILY_KEYS = ("t1", "c1", "s1", "u1", "m1")


def supports(feature: str, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether the live platform (or ``schema``) accepts ``feature``."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")
    return schema_supports(platform_schema() if schema is None else schema, feature)


def schema_supports(schema: Mapping[str, Any], feature: str) -> bool:
    properties = schema.get("properties") or {}
    group = ((properties.get("nodeGroups") or {}).get("additionalProperties") or {}
             ).get("properties") or {}
    addons = (properties.get("addons") or {}).get("properties") or {}
    if feature == DISK_SIZE:
        return "diskSize" in group
    if feature == PER_GROUP_STORAGE_CLASS:
        return "storageClass" in group
    if feature == AUTO_REPAIR:
        return "nodeHealthCheck" in properties
    if feature == PER_GROUP_AUTO_REPAIR:
        return "maxUnhealthy" in group and "nodeStartupTimeout" in group
    if feature == OIDC:
        oidc = (properties.get("oidc") or {}).get("properties") or {}
        return "users" in oidc and "System" in ((oidc.get("mode") or {}).get("enum") or ())
    if feature == FRACTIONAL_GPUS:
        return HAMI in addons
    if feature == OUROBOROS:
        return OUROBOROS_ADDON in addons
    if feature == PRESET_FAMILIES:
        return "c1.medium" in _preset_enum(properties)
    return False


def _preset_enum(properties: Mapping[str, Any]) -> tuple[str, ...]:
    api_server = (((properties.get("controlPlane") or {}).get("properties") or {})
                  .get("apiServer") or {}).get("properties") or {}
    return tuple((api_server.get("resourcesPreset") or {}).get("enum") or ())


def addon_offered(key: str, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether tenants are offered the add-on ``key``: ouroboros only where the platform's
    load balancers speak the PROXY protocol (it fixes hairpin traffic then, and nothing
    otherwise)."""
    feature = ADDON_FEATURES.get(key)
    if feature is None:
        return True
    if key == OUROBOROS_ADDON and not settings.PLATFORM_PROXY_PROTOCOL:
        return False
    return supports(feature, schema)


def default_disk_gib() -> int:
    """The disk a new node group starts with: v1.6's default, else the portal's."""
    return DISK_DEFAULT_GIB if supports(DISK_SIZE) else catalog.DEFAULT_EPHEMERAL_STORAGE_GIB


# --------------------------------------------------------------------------- control plane


@dataclass(frozen=True)
class PresetFamily:
    key: str
    cpu_to_memory: str


@dataclass(frozen=True)
class Preset:
    """A control-plane size: limits of the component's pod on the platform (not a VM)."""

    name: str
    family: str
    cpu: str
    memory: str

    @property
    def memory_gib(self) -> Decimal:
        return (parse_quantity(self.memory) or Decimal(0)) / Decimal(2**30)


@functools.cache
def _family_presets() -> tuple[tuple[Preset, ...], dict[str, str]]:
    raw = json.loads(PRESETS_FILE.read_text(encoding="utf-8"))
    presets = tuple(Preset(name, name.split(".", 1)[0], str(item["cpu"]), str(item["memory"]))
                    for name, item in raw["presets"].items())
    return presets, dict(raw["defaults"])


def preset_families() -> tuple[PresetFamily, ...]:
    """The v1.6 families, each with its CPU-to-memory ratio (read from its ``medium``)."""
    families = []
    for key in PRESET_FAMILY_KEYS:
        medium = next(p for p in _family_presets()[0] if p.name == f"{key}.medium")
        cpu = parse_quantity(medium.cpu) or Decimal(1)
        ratio = (medium.memory_gib / cpu).normalize()
        families.append(PresetFamily(key, f"1:{ratio:f}"))
    return tuple(families)


def control_plane_presets() -> tuple[Preset, ...]:
    """The control-plane sizes the live platform accepts: the v1.6 families (``t1`` … ``m1``)
    where it has them, else the sizes of its release."""
    if supports(PRESET_FAMILIES):
        return _family_presets()[0]
    return tuple(Preset(p.name, "", p.cpu, p.memory) for p in catalog.control_plane_presets())


def default_api_server_preset() -> str:
    if supports(PRESET_FAMILIES):
        return _family_presets()[1]["apiServer"]
    return next(c.default_preset for c in catalog.control_plane_components()
                if c.key == "apiServer")


def get_preset(name: str) -> Preset | None:
    return next((p for p in control_plane_presets() if p.name == name), None)
