"""Render the portal's idea of a cluster into the platform's ``Kubernetes`` object, and back.

How a spec is written depends on the contract the platform speaks: each function takes the
``Dialect`` (``cozystack.dialects``) chosen from the live platform's schema. This module holds
what all contracts share: the object's envelope, Helm's coalesce for previews and tests, and
the read-only YAML preview. Output key order is fixed, so previews and diffs are stable.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import yaml

from cozystack import catalog
from cozystack.changes import Change, cluster_changes, requires_node_replacement
from cozystack.dialects.v13 import HIDDEN_MD0
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

if TYPE_CHECKING:
    from cozystack.dialects import Dialect

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
    "render_kubernetes",
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



# --------------------------------------------------------------------------- rendering


def render_spec(spec: ClusterSpec, dialect: Dialect) -> dict[str, Any]:
    """The ``.spec`` of the ``Kubernetes`` object in ``dialect``'s contract."""
    return dialect.render_spec(spec)


def render_kubernetes(
    spec: ClusterSpec,
    dialect: Dialect,
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
        "spec": dialect.render_spec(spec),
    }


def spec_from_platform(obj: Mapping[str, Any], dialect: Dialect) -> ClusterSpec:
    """Read a GET'd ``Kubernetes`` object of ``dialect``'s contract (defaults filled in)."""
    return dialect.spec_from_platform(obj)


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


def chart_defaults(schema: Mapping[str, Any]) -> dict[str, Any]:
    """The chart defaults a schema describes (so they follow the live schema), plus v1.3's
    hidden ``md0`` group when the schema describes no default groups (at v1.6 it defaults
    ``nodeGroups`` to ``{}``). Validation merges the dialect's own ``values.yaml`` instead
    (``Dialect.merged_values``); this is what a schema alone tells."""
    defaults = _schema_defaults(schema)
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
