"""The contracts of the platform's ``Kubernetes`` resource the portal speaks, one dialect each.

* ``V13``: Cozystack v1.3.x (v1.3.6 as reference; PLATFORM.md).
* ``V16``: Cozystack v1.4.0 to v1.6.x (v1.6.2 as reference; PLATFORM-v1.6.md).

The dialect is chosen from what the live platform publishes, never from a setting: ``choose``
takes the schema of the ``kubernetes`` ApplicationDefinition (and, when known, the chart
revision the platform reports as ``status.version``) and answers the one dialect whose contract
it is, or None. None means a release the portal does not know: every write stops (reads and
billing go on) until the portal learns it.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from cozystack import catalog
from cozystack.dialects.base import (
    AUTO_REPAIR,
    CREDENTIAL_ROTATION,
    DEGRADED,
    FEATURES,
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
    UNKNOWN_RELEASE_MESSAGE,
    Dialect,
    Health,
    parse_chart_version,
)
from cozystack.dialects.v13 import HIDDEN_MD0, V13, V13_ADDONS
from cozystack.dialects.v16 import DEPRECATED, V16, V16_ADDONS

__all__ = [
    "AUTO_REPAIR",
    "CREDENTIAL_ROTATION",
    "DEGRADED",
    "FEATURES",
    "FRACTIONAL_GPUS",
    "HIDDEN_MD0",
    "KUBELET_RESERVATIONS",
    "OIDC",
    "OPTION_API",
    "OUROBOROS",
    "PER_GROUP_AUTO_REPAIR",
    "PER_GROUP_STORAGE_CLASS",
    "RUNNING",
    "STARTING",
    "STUCK",
    "UNKNOWN_RELEASE_MESSAGE",
    "Dialect",
    "Health",
    "by_name",
    "choose",
    "dialects",
    "newest",
    "parse_chart_version",
    "v13",
    "v16",
]


@functools.cache
def v13() -> V13:
    """The v1.3 dialect with its catalogue (loaded once)."""
    return V13(catalog.load_catalogue(
        V13.label, V13.release_dir, addon_keys=V13_ADDONS,
        presets=catalog.LEGACY_PRESET_NAMES))


@functools.cache
def v16() -> V16:
    """The v1.6 dialect with its catalogue (loaded once)."""
    return V16(catalog.load_catalogue(
        V16.label, V16.release_dir, addon_keys=V16_ADDONS,
        presets=[p.name for p in catalog.control_plane_presets()], deprecated=DEPRECATED,
        gpu_passthrough=True))


def dialects() -> tuple[Dialect, ...]:
    """Every dialect the portal speaks, oldest first."""
    return (v13(), v16())


def newest() -> Dialect:
    return dialects()[-1]


def by_name(name: str) -> Dialect | None:
    return next((d for d in dialects() if d.name == name), None)


def _fingerprint(schema: Mapping[str, Any]) -> str:
    return json.dumps(schema, sort_keys=True)


@functools.lru_cache(maxsize=8)
def _choose(fingerprint: str) -> Dialect | None:
    schema = json.loads(fingerprint)
    matching = [d for d in dialects() if d.matches(schema)]
    return matching[0] if len(matching) == 1 else None


def choose(schema: Mapping[str, Any] | None, chart_version: str = "") -> Dialect | None:
    """The dialect whose contract ``schema`` is, or None for a release the portal does not know.

    ``chart_version`` (the newest ``status.version`` the platform reports) only refuses: a chart
    newer than the matching dialect knows is a release the portal has not learnt, even if its
    schema looks familiar.
    """
    if not isinstance(schema, Mapping):
        return None
    dialect = _choose(_fingerprint(schema))
    if dialect is None or not dialect.accepts_chart(chart_version):
        return None
    return dialect
