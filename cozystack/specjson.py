"""ClusterSpec <-> JSON, for operation records (what was asked, what to restore on cancel).

Records written before the release-neutral model still read: a group's
``ephemeral_storage_gib`` is its ``disk_gib``, an old preset name (``large``) its new one
(``c1.medium``), and fields a record does not carry take their defaults.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
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


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {key: value for key, value in data.items() if key in names}


def _group_from_json(data: dict[str, Any]) -> NodeGroupSpec:
    data = dict(data)
    if "disk_gib" not in data and "ephemeral_storage_gib" in data:
        data["disk_gib"] = data["ephemeral_storage_gib"]
    kubelet = data.pop("kubelet", None) or {}
    return NodeGroupSpec(**_known(NodeGroupSpec, data),
                         kubelet=KubeletSpec(**_known(KubeletSpec, kubelet)))


def spec_from_json(data: dict[str, Any]) -> ClusterSpec:
    repair = data.get("auto_repair")
    return ClusterSpec(
        name=data["name"],
        namespace=data["namespace"],
        version=data["version"],
        storage_class=data["storage_class"],
        host=data["host"],
        control_plane=ControlPlaneSpec(**_known(ControlPlaneSpec, data["control_plane"])),
        node_groups=tuple(_group_from_json(g) for g in data["node_groups"]),
        addons=tuple(AddonSpec(**a) for a in data["addons"]),
        auto_repair=AutoRepairSpec(**_known(AutoRepairSpec, repair)) if repair else None,
        oidc_users=tuple(OidcUserSpec(**u) for u in data.get("oidc_users") or ()),
    )
