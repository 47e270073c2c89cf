"""ClusterSpec <-> JSON, for operation records (what was asked, what to restore on cancel)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from cozystack.specs import AddonSpec, ClusterSpec, ControlPlaneSpec, NodeGroupSpec


def spec_to_json(spec: ClusterSpec) -> dict[str, Any]:
    data = asdict(spec)
    for group in data["node_groups"]:
        group["roles"] = list(group["roles"])
        group["gpus"] = list(group["gpus"])
    for addon in data["addons"]:
        addon["hosts"] = list(addon["hosts"])
    data["node_groups"] = list(data["node_groups"])
    data["addons"] = list(data["addons"])
    return data


def spec_from_json(data: dict[str, Any]) -> ClusterSpec:
    return ClusterSpec(
        name=data["name"],
        namespace=data["namespace"],
        version=data["version"],
        storage_class=data["storage_class"],
        host=data["host"],
        control_plane=ControlPlaneSpec(**data["control_plane"]),
        node_groups=tuple(NodeGroupSpec(**g) for g in data["node_groups"]),
        addons=tuple(AddonSpec(**a) for a in data["addons"]),
    )
