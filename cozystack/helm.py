"""How the platform turns a spec into the values Helm validates and renders.

Two steps every client of the ``Kubernetes`` resource must reproduce (PLATFORM.md a, gotcha 8):
the API fills schema defaults into what GET returns (``apply_defaults``, after dropping the nulls
only Helm ever sees: ``prune_nulls``), and Helm merges the user values over the chart's
``values.yaml`` before it checks the schema (``coalesce``). The portal validates with them before
it sends anything; the simulator uses the same functions to behave like the platform.
"""

from __future__ import annotations

import copy
from typing import Any


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the apiserver does it: fill missing keys that have a default."""
    if isinstance(value, dict):
        return _apply_object_defaults(schema, value)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    return value


def _apply_object_defaults(schema: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    result = dict(value)
    properties = schema.get("properties") or {}
    for key, sub in properties.items():
        if key not in result and "default" in sub:
            result[key] = copy.deepcopy(sub["default"])
        if key in result:
            result[key] = apply_defaults(sub, result[key])
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for key in result:
            if key not in properties:
                result[key] = apply_defaults(extra, result[key])
    return result


def prune_nulls(value: Any) -> Any:
    """The API drops `key: null` when it serialises; only Helm ever sees the null."""
    if isinstance(value, dict):
        return {k: prune_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [prune_nulls(item) for item in value]
    return value


def coalesce(user: Any, chart: Any) -> Any:
    """Helm's merge of user values over chart values: maps merge, `null` deletes the key.

    This is why, at v1.3, an unsent ``md0`` reappears (the chart's map merges in) and why
    ``md0: null`` drops it.
    """
    if not isinstance(user, dict) or not isinstance(chart, dict):
        return copy.deepcopy(user)
    result = copy.deepcopy(chart)
    for key, value in user.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = coalesce(value, result[key])
        else:
            result[key] = copy.deepcopy(value)
    return result
