"""The `kubernetes` chart's values schema: defaulting, Helm-style merging and Helm-style errors.

The platform behaves in two steps that the portal must respect (PLATFORM.md a, gotcha 8): the
API fills schema defaults into what GET returns, and Helm later validates the *user values merged
over the chart's values.yaml* (each release's own, see `releases.py`). Both steps live in the
contract (`cozystack.helm`), which the portal validates with too; the Helm-worded errors are
here, so the simulator fails the same specs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cozystack.helm import apply_defaults, coalesce, prune_nulls

__all__ = [
    "apply_defaults",
    "coalesce",
    "helm_schema_failure",
    "load_schema",
    "prune_nulls",
    "validate",
]


def load_schema(path: str | Path) -> tuple[dict[str, Any], str]:
    """Return the schema and its JSON text (published verbatim in the ApplicationDefinition)."""
    text = Path(path).read_text(encoding="utf-8")
    return json.loads(text), text


# --- validation with Helm (gojsonschema) wording --------------------------------------------

JsonPath = tuple[Any, ...]


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_ok(expected: str | list[str], value: Any) -> bool:
    kinds = [expected] if isinstance(expected, str) else expected
    actual = _json_type(value)
    return any(k == actual or (k == "number" and actual == "integer") for k in kinds)


def _type_message(expected: str | list[str], value: Any) -> str:
    wanted = expected if isinstance(expected, str) else "/".join(expected)
    return f"Invalid type. Expected: {wanted}, given: {_json_type(value)}"


def _mini_errors(
    schema: dict[str, Any], value: Any, path: JsonPath
) -> Iterator[tuple[JsonPath, str]]:
    """Fallback validator for the keyword subset the chart schema uses (when no jsonschema)."""
    if "type" in schema and not _type_ok(schema["type"], value):
        yield path, _type_message(schema["type"], value)
        return
    if "enum" in schema and value not in schema["enum"]:
        yield path, _enum_message(path, schema["enum"])
    if "pattern" in schema and isinstance(value, str) and not re.search(schema["pattern"], value):
        yield path, f"Does not match pattern '{schema['pattern']}'"
    if "anyOf" in schema and not any(
        not list(_mini_errors(sub, value, path)) for sub in schema["anyOf"]
    ):
        yield path, "Must validate at least one schema (anyOf)"
    if isinstance(value, dict):
        yield from _mini_object_errors(schema, value, path)
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from _mini_errors(schema["items"], item, (*path, index))


def _mini_object_errors(
    schema: dict[str, Any], value: dict[str, Any], path: JsonPath
) -> Iterator[tuple[JsonPath, str]]:
    for key in schema.get("required", []):
        if key not in value:
            yield path, f"{key} is required"
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties", True)
    for key, item in value.items():
        if key in properties:
            yield from _mini_errors(properties[key], item, (*path, key))
        elif extra is False:
            yield path, f"Additional property {key} is not allowed"
        elif isinstance(extra, dict):
            yield from _mini_errors(extra, item, (*path, key))


def _enum_message(path: JsonPath, allowed: list[Any]) -> str:
    field = str(path[-1]) if path else "(root)"
    return f"{field} must be one of the following: " + ", ".join(json.dumps(v) for v in allowed)


def _jsonschema_errors(schema: dict[str, Any], value: Any) -> Iterator[tuple[JsonPath, str]] | None:
    try:
        import jsonschema  # noqa: PLC0415 - optional: without it, _mini_errors checks instead
    except ImportError:  # pragma: no cover - jsonschema is in the venv; keep the fallback honest
        return None
    validator_cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)
    validator = validator_cls(schema)

    def iterate() -> Iterator[tuple[JsonPath, str]]:
        for error in validator.iter_errors(value):
            path = tuple(error.absolute_path)
            kind = error.validator
            if kind == "type":
                yield path, _type_message(error.validator_value, error.instance)
            elif kind == "required":
                yield from (
                    (path, f"{k} is required")
                    for k in error.validator_value
                    if isinstance(error.instance, dict) and k not in error.instance
                )
            elif kind == "enum":
                yield path, _enum_message(path, error.validator_value)
            elif kind == "pattern":
                yield path, f"Does not match pattern '{error.validator_value}'"
            elif kind == "anyOf":
                yield path, "Must validate at least one schema (anyOf)"
            elif kind == "additionalProperties":
                yield path, error.message
            else:
                yield path, error.message

    return iterate()


def validate(schema: dict[str, Any], values: Any) -> list[str]:
    """Return Helm-formatted problems (`nodeGroups.md0.minReplicas: Invalid type. ...`), sorted."""
    errors = _jsonschema_errors(schema, values)
    if errors is None:
        errors = _mini_errors(schema, values, ())
    lines = {f"{'.'.join(str(p) for p in path) or '(root)'}: {message}" for path, message in errors}
    return sorted(lines)


def helm_schema_failure(errors: list[str], chart: str = "kubernetes") -> str:
    """The text Helm puts after `... with chart kubernetes@X: ` when values fail the schema."""
    lines = "\n".join(f"- {line}" for line in errors)
    return (
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        f"{chart}:\n{lines}\n"
    )
