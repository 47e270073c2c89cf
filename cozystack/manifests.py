"""Render the portal's idea of a cluster into the platform's ``Kubernetes`` object, and back.

The platform (Cozystack v1.3.6) validates nothing synchronously, merges our values over the
chart's ``values.yaml`` and only then lets Helm check the schema, so every gotcha of
PLATFORM.md is handled here rather than discovered as ``Ready=False`` minutes later:

* the spec is always complete (every add-on and control-plane object with all required keys);
* every group carries ``resources`` (``{}`` unless custom-sized, then ``instanceType: ""``);
* ``roles`` and ``gpus`` are always sent, so the chart's default ``md0`` roles never leak in;
* the chart's hidden default group ``md0`` is removed with ``md0: null`` when the portal has no
  group of that name; the portal always PUTs a complete spec, so the null is re-sent each time.

Output key order is fixed, so previews and diffs are stable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import yaml

from cozystack import catalog
from cozystack.changes import Change, cluster_changes, requires_node_replacement
from cozystack.specs import (
    RELEASE_PREFIX,
    AddonSpec,
    ClusterSpec,
    ControlPlaneSpec,
    NodeGroupSpec,
    gib,
    parse_quantity,
    quantity_to_gib,
)

__all__ = [
    "API_VERSION",
    "KIND",
    "GROUP",
    "VERSION",
    "PLURAL",
    "RELEASE_PREFIX",
    "HIDDEN_MD0",
    "AddonSpec",
    "Change",
    "ClusterSpec",
    "ControlPlaneSpec",
    "NodeGroupSpec",
    "chart_defaults",
    "cluster_changes",
    "gib",
    "merge_with_defaults",
    "parse_quantity",
    "quantity_to_gib",
    "render_addons",
    "render_control_plane",
    "render_kubernetes",
    "render_node_group",
    "render_node_groups",
    "render_spec",
    "requires_node_replacement",
    "spec_from_platform",
    "to_yaml",
]

API_VERSION = "apps.cozystack.io/v1alpha1"
KIND = "Kubernetes"
GROUP = "apps.cozystack.io"
VERSION = "v1alpha1"
PLURAL = "kuberneteses"

HIDDEN_MD0: dict[str, Any] = {
    "minReplicas": 0,
    "maxReplicas": 10,
    "instanceType": "u1.medium",
    "ephemeralStorage": "20Gi",
    "resources": {},
    "roles": ["ingress-nginx"],
}
"""The chart's default group (values.yaml at v1.3.6), used when a schema carries no default."""


# --------------------------------------------------------------------------- rendering


def render_node_group(group: NodeGroupSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if group.cpu is not None:
        resources["cpu"] = group.cpu
    if group.memory is not None:
        resources["memory"] = group.memory
    return {
        "minReplicas": group.min_replicas,
        "maxReplicas": group.max_replicas,
        "instanceType": group.instance_type,
        "ephemeralStorage": gib(group.disk_gib),
        "resources": resources,
        "roles": list(group.roles),
        "gpus": [{"name": name} for name in group.gpus],
    }


def render_node_groups(groups: tuple[NodeGroupSpec, ...]) -> dict[str, Any]:
    """``md0`` first (a group, or null to drop the chart default), then groups by name."""
    by_name = {g.name: g for g in groups}
    primary = by_name.pop(catalog.PRIMARY_NODE_GROUP, None)
    rendered: dict[str, Any] = {
        catalog.PRIMARY_NODE_GROUP: render_node_group(primary) if primary else None
    }
    for name in sorted(by_name):
        rendered[name] = render_node_group(by_name[name])
    return rendered


def _component(preset: str) -> dict[str, Any]:
    return {"resources": {}, "resourcesPreset": preset}


def render_control_plane(control_plane: ControlPlaneSpec) -> dict[str, Any]:
    return {
        "replicas": control_plane.replicas,
        "apiServer": _component(control_plane.api_server_preset),
        "controllerManager": _component(control_plane.controller_manager_preset),
        "scheduler": _component(control_plane.scheduler_preset),
        "konnectivity": {"server": _component(control_plane.konnectivity_preset)},
    }


def render_addons(specs: tuple[AddonSpec, ...]) -> dict[str, Any]:
    """Every platform add-on with all its required keys; unknown keys are left to validation."""
    by_key = {s.key: s for s in specs}
    rendered: dict[str, Any] = {}
    for addon in catalog.addons():
        given = by_key.get(addon.key)
        obj: dict[str, Any] = {}
        if addon.has_enabled:
            obj["enabled"] = bool(given.enabled) if given else False
        if addon.key == catalog.INGRESS_NGINX:
            obj["exposeMethod"] = (given.expose_method if given else None) or (
                catalog.DEFAULT_EXPOSE_METHOD
            )
            obj["hosts"] = list(given.hosts) if given else []
        if addon.has_values_override:
            override = given.values_override if given else None
            obj["valuesOverride"] = {} if override is None else copy.deepcopy(override)
        rendered[addon.key] = obj
    return rendered


def render_spec(spec: ClusterSpec) -> dict[str, Any]:
    """The ``.spec`` of the ``Kubernetes`` object: complete, deterministic key order."""
    return {
        "version": spec.version,
        "host": spec.host,
        "storageClass": spec.storage_class,
        "nodeGroups": render_node_groups(spec.node_groups),
        "controlPlane": render_control_plane(spec.control_plane),
        "addons": render_addons(spec.addons),
    }


def render_kubernetes(
    spec: ClusterSpec,
    *,
    labels: Mapping[str, str] | None = None,
    resource_version: str | None = None,
) -> dict[str, Any]:
    """The full object for create or replace (PUT).

    Pass ``resource_version`` on replace so a concurrent write answers 409 instead of being
    overwritten silently. ``labels`` is omitted when None (a PUT with ``{}`` would clear them).
    """
    metadata: dict[str, Any] = {"name": spec.name, "namespace": spec.namespace}
    if labels is not None:
        metadata["labels"] = dict(labels)
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": render_spec(spec),
    }


# --------------------------------------------------------------------------- chart defaults

_MISSING = object()


def _schema_defaults(node: Mapping[str, Any]) -> Any:
    """What ``values.yaml`` holds for ``node``: its default, completed with its children's."""
    value: Any = copy.deepcopy(node["default"]) if "default" in node else _MISSING
    properties = node.get("properties")
    if not properties or (value is not _MISSING and not isinstance(value, dict)):
        return value
    children = {}
    for key, child in properties.items():
        child_value = _schema_defaults(child)
        if child_value is not _MISSING:
            children[key] = child_value
    if not isinstance(value, dict):  # no default here (a non-object one returned above)
        return children if children else _MISSING
    for key, child_value in children.items():
        value.setdefault(key, child_value)
    return value


def chart_defaults(schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The chart defaults Helm merges under our values before validating.

    Built from the schema's ``default``s (so it follows the live schema), plus the hidden
    ``md0`` group if the schema does not describe it.
    """
    source = schema if schema is not None else catalog.bundled_kubernetes_schema()
    defaults = _schema_defaults(source)
    result: dict[str, Any] = defaults if isinstance(defaults, dict) else {}
    result.setdefault("nodeGroups", {catalog.PRIMARY_NODE_GROUP: copy.deepcopy(HIDDEN_MD0)})
    return result


def merge_with_defaults(
    spec_dict: Mapping[str, Any], defaults: Mapping[str, Any]
) -> dict[str, Any]:
    """Helm-style coalesce: maps merge recursively, other values replace, ``null`` removes.

    This is why an unsent ``md0`` reappears (maps merge) and why ``md0: null`` drops it.
    """
    result: dict[str, Any] = {}
    for key, value in spec_dict.items():
        if value is None:
            continue
        default = defaults.get(key, _MISSING)
        if isinstance(value, Mapping) and isinstance(default, Mapping):
            result[key] = merge_with_defaults(value, default)
        else:
            result[key] = copy.deepcopy(value)
    for key, default in defaults.items():
        if key not in spec_dict:
            result[key] = copy.deepcopy(default)
    return result


# --------------------------------------------------------------------------- YAML preview


class _PreviewDumper(yaml.SafeDumper):
    """Block style, no anchors/aliases (shared sub-objects would otherwise show as ``*id001``)."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


def _represent_decimal(dumper: yaml.SafeDumper, data: Decimal) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(data))


_PreviewDumper.add_representer(str, _represent_str)
_PreviewDumper.add_representer(Decimal, _represent_decimal)
_PreviewDumper.add_representer(tuple, yaml.SafeDumper.represent_list)


def to_yaml(obj: Any) -> str:
    """A read-only YAML rendering that keeps our key order (no sorting)."""
    return yaml.dump(
        obj,
        Dumper=_PreviewDumper,
        sort_keys=False,
        default_flow_style=False,
        allow_unicode=True,
        width=100,
    )


# --------------------------------------------------------------------------- parsing back


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def _as_quantity_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def _group_from_platform(name: str, raw: Mapping[str, Any]) -> NodeGroupSpec:
    resources = raw.get("resources") or {}
    disk = quantity_to_gib(raw.get("ephemeralStorage", HIDDEN_MD0["ephemeralStorage"]))
    gpus = [g.get("name", "") for g in raw.get("gpus") or [] if isinstance(g, Mapping)]
    return NodeGroupSpec(
        name=name,
        instance_type=str(raw.get("instanceType", HIDDEN_MD0["instanceType"]) or ""),
        min_replicas=_as_int(raw.get("minReplicas"), 0),
        max_replicas=_as_int(raw.get("maxReplicas"), 10),
        disk_gib=disk if disk is not None else 20,
        roles=tuple(str(r) for r in raw.get("roles") or []),
        gpus=tuple(gpus),
        cpu=_as_quantity_text(resources.get("cpu")),
        memory=_as_quantity_text(resources.get("memory")),
    )


def _preset(raw: Any, default: str) -> str:
    if isinstance(raw, Mapping) and raw.get("resourcesPreset"):
        return str(raw["resourcesPreset"])
    return default


def _control_plane_from_platform(raw: Mapping[str, Any]) -> ControlPlaneSpec:
    konnectivity = raw.get("konnectivity") or {}
    return ControlPlaneSpec(
        replicas=_as_int(raw.get("replicas"), catalog.DEFAULT_CONTROL_PLANE_REPLICAS),
        api_server_preset=_preset(raw.get("apiServer"), "large"),
        controller_manager_preset=_preset(raw.get("controllerManager"), "micro"),
        scheduler_preset=_preset(raw.get("scheduler"), "micro"),
        konnectivity_preset=_preset(konnectivity.get("server"), "micro"),
    )


def _addons_from_platform(raw: Mapping[str, Any]) -> tuple[AddonSpec, ...]:
    """One AddonSpec per known add-on, in catalogue order; always-on ones read as enabled."""
    result = []
    for addon in catalog.addons():
        item = raw.get(addon.key) or {}
        enabled = bool(item.get("enabled", False)) if addon.has_enabled else addon.always_installed
        override = item.get("valuesOverride")
        result.append(
            AddonSpec(
                key=addon.key,
                enabled=enabled,
                values_override=copy.deepcopy(override) if isinstance(override, dict) else {},
                expose_method=str(item.get("exposeMethod") or catalog.DEFAULT_EXPOSE_METHOD),
                hosts=tuple(str(h) for h in item.get("hosts") or []),
            )
        )
    return tuple(result)


def spec_from_platform(obj: Mapping[str, Any]) -> ClusterSpec:
    """Read a GET'd ``Kubernetes`` object (schema defaults filled in, ``md0: null`` skipped)."""
    metadata = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    groups = tuple(
        _group_from_platform(str(name), raw)
        for name, raw in (spec.get("nodeGroups") or {}).items()
        if isinstance(raw, Mapping)
    )
    return ClusterSpec(
        name=str(metadata.get("name", "")),
        namespace=str(metadata.get("namespace", "")),
        version=str(spec.get("version") or catalog.default_version().name),
        storage_class=str(spec.get("storageClass") or catalog.DEFAULT_STORAGE_CLASS),
        host=str(spec.get("host") or ""),
        control_plane=_control_plane_from_platform(spec.get("controlPlane") or {}),
        node_groups=groups,
        addons=_addons_from_platform(spec.get("addons") or {}),
    )
