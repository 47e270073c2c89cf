"""What the platform's release offers tenants, so that forms and the API show only that.

Some settings of the release-neutral spec exist on one Cozystack release only (a storage
class per node group, auto-repair, per-user access, fractional GPUs…). ``supports(feature)``
answers for the platform the portal talks to now, through the dialect chosen from the schema it
publishes (``clusters.platform_release``); the create form, the cluster page and the API ask it
before they offer a setting, and ``clusters.spec_rules`` refuses a setting the platform would
not understand. While the platform runs a release the portal does not know, pages show what the
newest dialect offers (nothing can be written then anyway).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from django.conf import settings

from clusters import platform_release
from cozystack import catalog, dialects
from cozystack.dialects import (
    AUTO_REPAIR,
    CREDENTIAL_ROTATION,
    FRACTIONAL_GPUS,
    OIDC,
    OUROBOROS,
    PER_GROUP_AUTO_REPAIR,
    PER_GROUP_STORAGE_CLASS,
    Dialect,
)

# The node's one persistent disk (OS, kubelet state, local volumes): v1.6's ``diskSize``,
# where v1.3 had a scratch disk. The dialects name no feature for it; the schema tells.
DISK_SIZE = "disk_size"
FEATURES = (DISK_SIZE, PER_GROUP_STORAGE_CLASS, AUTO_REPAIR, PER_GROUP_AUTO_REPAIR, OIDC,
            FRACTIONAL_GPUS, OUROBOROS, CREDENTIAL_ROTATION)

HAMI = catalog.HAMI
OUROBOROS_ADDON = catalog.OUROBOROS
DISK_DEFAULT_GIB = 20  # v1.6's diskSize default: the OS image lives on it too


def dialect_for(schema: Mapping[str, Any] | None = None) -> Dialect:
    """The dialect of ``schema``, or the one the pages speak for the live platform."""
    if schema is None:
        return platform_release.shown_dialect()
    return dialects.choose(schema) or dialects.newest()


def supports(feature: str, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether the live platform (or the release publishing ``schema``) offers ``feature``."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}")
    dialect = dialect_for(schema)
    if feature == DISK_SIZE:
        return _has_disk_size(dialect.name)
    return dialect.supports(feature)


@functools.cache
def _has_disk_size(name: str) -> bool:
    dialect = dialects.by_name(name)
    schema = dialect.bundled_schema() if dialect is not None else {}
    group = ((((schema.get("properties") or {}).get("nodeGroups") or {})
              .get("additionalProperties") or {}).get("properties") or {})
    return "diskSize" in group


def addon_offered(key: str, schema: Mapping[str, Any] | None = None) -> bool:
    """Whether tenants are offered the add-on ``key``: what the platform's release has, and
    ouroboros only where the platform's load balancers speak the PROXY protocol (it fixes
    hairpin traffic then, and nothing otherwise)."""
    if key == OUROBOROS_ADDON and not settings.PLATFORM_PROXY_PROTOCOL:
        return False
    return dialect_for(schema).catalogue.get_addon(key) is not None


def default_disk_gib() -> int:
    """The disk a new node group starts with: v1.6's default, else the portal's."""
    return DISK_DEFAULT_GIB if supports(DISK_SIZE) else catalog.DEFAULT_DISK_GIB


# --------------------------------------------------------------------------- control plane


def control_plane_presets() -> tuple[catalog.ControlPlanePreset, ...]:
    """The control-plane sizes the live platform takes, under the portal's names (the v1.6
    families; a v1.3 platform takes the seven that have an old name)."""
    return tuple(platform_release.shown_dialect().catalogue.presets)


def preset_families() -> tuple[catalog.PresetFamily, ...]:
    return catalog.PRESET_FAMILIES


def default_api_server_preset() -> str:
    return catalog.DEFAULT_API_SERVER_PRESET


def get_preset(name: str) -> catalog.ControlPlanePreset | None:
    return next((p for p in control_plane_presets() if p.name == name), None)
