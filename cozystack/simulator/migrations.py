"""What upstream's platform migrations do to live `Kubernetes` objects on the way from v1.3 to v1.6.

Each migration reads the object through the API (the spec with the schema's defaults filled in),
transforms it, and writes back a JSON merge patch only when something changed, as the scripts in
`packages/core/platform/images/migrations/migrations/` do with kubectl and jq:

- 39: legacy `resourcesPreset` names become the new families (`large` -> `c1.medium`, ...),
  anywhere in the spec; the patch carries the whole transformed spec.
- 41: every node group's `ephemeralStorage` becomes `diskSize` (an explicit `diskSize` wins), and
  the old key is deleted with an explicit null.
- 46: `version: v1.30` becomes `v1.31` (Talos v1.13 does not run 1.30).
- 47: an object whose `nodeGroups` lacks `md0` gets the chart's default `md0` pinned, so the
  group Helm used to merge in is not pruned.

Upstream ran 39 and 41 before the releases that moved the schema to `diskSize`, and 46 and 47
under such a schema, so the simulator runs the first two while the old schema is published and
the last two after the new one is (`upgrade` in `platform.py`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .releases import DEFAULT_MD0_V16

Obj = dict[str, Any]

LEGACY_PRESETS = {
    "nano": "t1.nano",
    "micro": "t1.micro",
    "small": "t1.small",
    "medium": "c1.small",
    "large": "c1.medium",
    "xlarge": "c1.large",
    "2xlarge": "c1.xlarge",
}


def _walk(value: Any, change: Callable[[Obj], Obj]) -> Any:
    """jq's `walk`: children first, then `change` on every object."""
    if isinstance(value, dict):
        return change({key: _walk(item, change) for key, item in value.items()})
    if isinstance(value, list):
        return [_walk(item, change) for item in value]
    return value


def _presets(obj: Obj) -> Obj:
    preset = obj.get("resourcesPreset")
    if isinstance(preset, str) and preset in LEGACY_PRESETS:
        return {**obj, "resourcesPreset": LEGACY_PRESETS[preset]}
    return obj


def _disk_size(obj: Obj) -> Obj:
    groups = obj.get("nodeGroups")
    if not isinstance(groups, dict):
        return obj
    renamed = {}
    for name, group in groups.items():
        if isinstance(group, dict) and "ephemeralStorage" in group:
            group = dict(group)
            if not group.get("diskSize"):
                group["diskSize"] = group["ephemeralStorage"]
            group["ephemeralStorage"] = None
        renamed[name] = group
    return {**obj, "nodeGroups": renamed}


def migrate_39(spec: Obj) -> Obj | None:
    new = _walk(spec, _presets)
    return {"spec": new} if new != spec else None


def migrate_41(spec: Obj) -> Obj | None:
    new = _walk(spec, _disk_size)
    return {"spec": new} if new != spec else None


def migrate_46(spec: Obj) -> Obj | None:
    return {"spec": {"version": "v1.31"}} if spec.get("version") == "v1.30" else None


def migrate_47(spec: Obj) -> Obj | None:
    groups = spec.get("nodeGroups")
    if isinstance(groups, dict) and "md0" not in groups:
        return {"spec": {"nodeGroups": {"md0": copy.deepcopy(DEFAULT_MD0_V16)}}}
    return None


@dataclass(frozen=True)
class Migration:
    number: int
    transform: Callable[[Obj], Obj | None]
    # True: upstream ran it while the older (pre-diskSize) schema was still published.
    before_schema: bool


V13_TO_V16 = (
    Migration(39, migrate_39, before_schema=True),
    Migration(41, migrate_41, before_schema=True),
    Migration(46, migrate_46, before_schema=False),
    Migration(47, migrate_47, before_schema=False),
)


def between(old_dialect: str, new_dialect: str) -> tuple[Migration, ...]:
    """The migrations a platform upgrade from one contract to the next runs."""
    return V13_TO_V16 if (old_dialect, new_dialect) == ("v1.3", "v1.6") else ()
