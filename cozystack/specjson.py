"""ClusterSpec <-> JSON, for operation records (what was asked, what to restore on cancel).

Records written before a field existed still load: a missing field takes its default, and the
node's disk recorded under its former name (``ephemeral_storage_gib``) is read as ``disk_gib``.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    NodeGroupSpec,
    OidcUserSpec,
)


def spec_to_json(spec: ClusterSpec) -> dict[str, Any]:
    data = asdict(spec)
    for group in data["node_groups"]:
        group["roles"] = list(group["roles"])
        group["gpus"] = list(group["gpus"])
    for addon in data["addons"]:
        addon["hosts"] = list(addon["hosts"])
    data["node_groups"] = list(data["node_groups"])
    data["addons"] = list(data["addons"])
    data["oidc_users"] = list(data["oidc_users"])
    return data


def _group_from_json(data: dict[str, Any]) -> NodeGroupSpec:
    fields = dict(data)
    if "disk_gib" not in fields and "ephemeral_storage_gib" in fields:
        fields["disk_gib"] = fields.pop("ephemeral_storage_gib")
    return NodeGroupSpec(**fields)


def spec_from_json(data: dict[str, Any]) -> ClusterSpec:
    auto_repair = data.get("auto_repair")
    return ClusterSpec(
        name=data["name"],
        namespace=data["namespace"],
        version=data["version"],
        storage_class=data["storage_class"],
        host=data["host"],
        control_plane=ControlPlaneSpec(**data["control_plane"]),
        node_groups=tuple(_group_from_json(g) for g in data["node_groups"]),
        addons=tuple(AddonSpec(**a) for a in data["addons"]),
        auto_repair=AutoRepairSpec(**auto_repair) if auto_repair is not None else None,
        oidc_users=tuple(OidcUserSpec(**u) for u in data.get("oidc_users") or ()),
    )
