"""Check a cluster spec before anything is sent to the platform.

The platform accepts almost any spec (201) and fails later inside Helm, where the tenant only
sees ``Ready=False``. So the portal runs two layers here, both answering with ``FieldError``s
that point at a form field and say in a sentence what to do:

* ``check_cluster_spec``: the portal's own rules (names, limits, immutability, add-on
  dependencies, things the platform would silently ignore);
* ``validate_against_schema``: the platform's published JSON schema, after merging the chart
  defaults exactly as Helm does.

Both speak the dialect of the platform's release (``cozystack.dialects``): its catalogue (what
it offers), what it cannot do, and its chart's render guards. ``validate_manifest`` runs both;
it is what the actions and the engine call before every write.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jsonschema import Draft7Validator, ValidationError, validators

from cozystack import catalog
from cozystack.addon_rules import check_addons
from cozystack.manifests import merge_with_defaults
from cozystack.rules import (
    FieldError,
    check_control_plane,
    check_immutable,
    check_name,
    check_node_groups,
    check_storage_and_host,
    check_version,
    is_dns_name,
    join,
    names_of,
    quote,
)
from cozystack.specs import ClusterSpec

if TYPE_CHECKING:
    from cozystack.dialects import Dialect

__all__ = [
    "FieldError",
    "allowed_versions_from_schema",
    "check_cluster_spec",
    "is_dns_name",
    "schema_from_application_definition",
    "validate_against_schema",
    "validate_manifest",
]


def allowed_versions_from_schema(schema: Mapping[str, Any], dialect: Dialect) -> tuple[str, ...]:
    """The ``version`` enum the platform publishes (newest first), or the dialect's list."""
    enum = schema.get("properties", {}).get("version", {}).get("enum")
    if not enum:
        return dialect.catalogue.version_names()
    return catalog.newest_first(enum)


def schema_from_application_definition(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The values schema inside the ``kubernetes`` ApplicationDefinition (a JSON string)."""
    raw = obj.get("spec", {}).get("application", {}).get("openAPISchema")
    if isinstance(raw, dict):
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("ApplicationDefinition has no spec.application.openAPISchema")
    schema = json.loads(raw)
    if not isinstance(schema, dict):
        raise ValueError("ApplicationDefinition's spec.application.openAPISchema is not an object")
    return schema


# --------------------------------------------------------------------------- portal rules


def check_cluster_spec(
    spec: ClusterSpec,
    *,
    creating: bool,
    dialect: Dialect,
    previous: ClusterSpec | None = None,
    instance_types: Iterable[Any] | None = None,
    versions: Iterable[Any] | None = None,
    renamed_groups: Mapping[str, str] | None = None,
    monitoring_available: bool | None = None,
    gpu_models: Iterable[Any] | None = None,
    storage_classes: Iterable[Any] | None = None,
) -> list[FieldError]:
    """Every portal rule for a create (``creating=True``) or an edit of ``previous``, in the
    contract of ``dialect``.

    ``instance_types`` / ``versions`` / ``gpu_models`` / ``storage_classes`` accept names or
    catalogue objects (e.g. the live schema's version enum, or what the platform's Option API
    offers); the dialect's catalogue is used when None. ``renamed_groups``
    (old → new) lets the form layer report a renamed row, which the platform would treat as
    delete + create. ``monitoring_available=False`` rejects monitoring agents.
    """
    offer = dialect.catalogue
    allowed_versions = catalog.newest_first(names_of(versions, offer.versions))
    known_types = names_of(instance_types, offer.instance_types)
    known_gpus = names_of(gpu_models, offer.gpu_models)
    known_classes = sorted(names_of(storage_classes, catalog.storage_classes())) \
        if storage_classes is not None else None
    errors: list[FieldError] = []
    if creating or previous is None:
        errors += check_name(spec)
    if previous is not None and not creating:
        errors += check_immutable(spec, previous)
    errors += check_version(spec, None if creating else previous, allowed_versions)
    errors += check_storage_and_host(spec, known_classes)
    errors += check_control_plane(spec, offer)
    errors += check_node_groups(spec, known_types, renamed_groups or {}, offer, known_gpus)
    errors += check_addons(spec, monitoring_available, offer)
    errors += dialect.check(spec, previous, storage_classes=known_classes)
    return errors


# --------------------------------------------------------------------------- schema validation

_GROUP_FIELDS = {
    "minReplicas": ("min_replicas", "minimum nodes"),
    "maxReplicas": ("max_replicas", "maximum nodes"),
    "instanceType": ("instance_type", "instance type"),
    "ephemeralStorage": ("disk_gib", "disk size"),
    "diskSize": ("disk_gib", "disk size"),
    "resources": ("cpu", "custom CPU and memory"),
    "roles": ("roles", "roles"),
    "gpus": ("gpus", "GPUs"),
    "storageClass": ("storage_class", "storage class"),
    "maxUnhealthy": ("max_unhealthy", "auto-repair limit"),
    "nodeStartupTimeout": ("node_startup_timeout", "start-up time"),
    "kubelet": ("kubelet", "kubelet reservations"),
}
_RESOURCE_FIELDS = {"cpu": ("cpu", "CPU"), "memory": ("memory", "memory")}
_TOP_FIELDS = {
    "version": ("version", "Kubernetes version"),
    "storageClass": ("storage_class", "storage class"),
    "host": ("host", "API host name"),
    "nodeGroups": ("node_groups", "node groups"),
    "addons": ("addons", "add-ons"),
    "controlPlane": ("control_plane", "control plane"),
    "nodeHealthCheck": ("auto_repair", "auto-repair"),
    "oidc": ("oidc_users", "cluster access"),
}
_ADDON_FIELDS = {
    "enabled": ("enabled", "the on/off switch"),
    "exposeMethod": ("expose_method", "expose method"),
    "hosts": ("hosts", "hosts"),
    "valuesOverride": ("values_override", "custom values"),
}
_TYPE_WORDS = {
    "integer": "a whole number",
    "number": "a number",
    "string": "text",
    "boolean": "on or off (true or false)",
    "object": "a mapping of settings",
    "array": "a list",
}


@dataclass(frozen=True)
class _Place:
    field: str
    subject: str  # "Node group md0", "" for top-level
    label: str  # "minimum nodes"


def _place_node_group(path: list[Any], spec: ClusterSpec | None) -> _Place:
    group = str(path[1]) if len(path) > 1 else ""
    index = (
        next((i for i, g in enumerate(spec.node_groups) if g.name == group), None)
        if spec is not None
        else None
    )
    base = f"node_groups[{index}]" if index is not None else f"nodeGroups.{group}"
    if len(path) < 3:
        return _Place(base if group else "node_groups", f"Node group {group}", "settings")
    key = str(path[2])
    if key == "resources" and len(path) > 3 and str(path[3]) in _RESOURCE_FIELDS:
        portal, label = _RESOURCE_FIELDS[str(path[3])]
        platform = f"resources.{path[3]}"
    else:
        portal, label = _GROUP_FIELDS.get(key, (key, key))
        platform = key
        if key == "gpus" and len(path) > 3:
            label = "GPU entry"
    field = f"{base}.{portal}" if index is not None else f"{base}.{platform}"
    return _Place(field, f"Node group {group}", label)


def _place_control_plane(path: list[Any]) -> _Place:
    if len(path) < 2:
        return _Place("control_plane", "", "control plane")
    key = str(path[1])
    if key == "replicas":
        return _Place("control_plane.replicas", "Control plane", "replicas")
    component = next((c for c in catalog.control_plane_components() if c.key == key), None)
    if component is None:
        return _Place(f"control_plane.{key}", "Control plane", key)
    keys = [str(p) for p in path]
    label = next(
        (
            words
            for key, words in (
                ("resourcesPreset", "size preset"),
                ("cpu", "CPU"),
                ("memory", "memory"),
            )
            if key in keys
        ),
        "settings",
    )
    return _Place(f"control_plane.{component.spec_field}", component.label, label)


def _place_addon(path: list[Any]) -> _Place:
    if len(path) < 2:
        return _Place("addons", "", "add-ons")
    key = str(path[1])
    addon = catalog.get_addon(key)
    subject = f"Add-on {addon.label if addon else key}"
    if len(path) < 3:
        return _Place(f"addons.{key}", subject, "settings")
    portal, label = _ADDON_FIELDS.get(str(path[2]), (str(path[2]), str(path[2])))
    field = f"addons.{key}.{portal}"
    if portal == "hosts" and len(path) > 3:
        field += f"[{path[3]}]"
        label = "host"
    return _Place(field, subject, label)


def _place(path: list[Any], spec: ClusterSpec | None) -> _Place:
    if not path:
        return _Place("__all__", "", "the cluster settings")
    root = str(path[0])
    if root == "nodeGroups" and len(path) > 1:
        return _place_node_group(path, spec)
    if root == "controlPlane":
        return _place_control_plane(path)
    if root == "addons":
        return _place_addon(path)
    portal, label = _TOP_FIELDS.get(root, (".".join(str(p) for p in path), root))
    return _Place(portal, "", label)


def _missing_key(error: ValidationError) -> str:
    match = re.match(r"^'(.+)' is a required property", error.message)
    if match:
        return match.group(1)
    instance = error.instance if isinstance(error.instance, dict) else {}
    missing = [k for k in error.validator_value if k not in instance]
    return missing[0] if missing else "?"


def _expectation(error: ValidationError, place: _Place) -> str:
    validator = error.validator
    if validator == "type":
        types = (
            error.validator_value
            if isinstance(error.validator_value, list)
            else [error.validator_value]
        )
        return f"must be {' or '.join(_TYPE_WORDS.get(t, str(t)) for t in types)}"
    if validator == "enum":
        choices = join(str(c) for c in error.validator_value)
        return f"{quote(error.instance)} is not allowed; choose one of {choices}"
    if validator == "pattern":
        example = "4 or 500m" if place.label == "CPU" else "50Gi"
        return f"{quote(error.instance)} is not a valid amount; write it like {example}"
    if validator == "anyOf":
        return "must be a whole number or an amount such as 50Gi"
    if validator == "required":
        return f"is missing the required setting {quote(_missing_key(error))}"
    return f"is not accepted by the platform ({error.message})"


def _sentence(place: _Place, error: ValidationError) -> str:
    expectation = _expectation(error, place)
    whole_object = place.label == "settings"
    if whole_object or not place.subject:
        what = place.subject or place.label
    else:
        what = f"{place.subject}: {place.label}"
    text = f"{what} {expectation}"
    text = text[0].upper() + text[1:]
    return text if text.endswith(".") else f"{text}."


def validate_against_schema(
    spec_dict: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    dialect: Dialect,
    spec: ClusterSpec | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> list[FieldError]:
    """Validate like Helm: merge the chart's values (``dialect``'s ``values.yaml``, or
    ``defaults`` when given), then check the JSON schema.

    With ``spec`` given, node-group errors point at ``node_groups[<index>]``; without it they
    keep the platform path (``nodeGroups.md0.minReplicas``).
    """
    merged = (merge_with_defaults(spec_dict, defaults) if defaults is not None
              else dialect.merged_values(spec_dict))
    validator_cls = validators.validator_for(schema, default=Draft7Validator)
    validator = validator_cls(schema)
    errors: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    ordered = sorted(validator.iter_errors(merged), key=lambda e: [str(p) for p in e.absolute_path])
    for error in ordered:
        place = _place(list(error.absolute_path), spec)
        message = _sentence(place, error)
        if (place.field, message) in seen:
            continue
        seen.add((place.field, message))
        errors.append(FieldError(place.field, message, f"schema_{error.validator}"))
    return errors


def validate_manifest(
    spec: ClusterSpec,
    schema: Mapping[str, Any] | None = None,
    *,
    dialect: Dialect,
    creating: bool,
    previous: ClusterSpec | None = None,
    **kw: Any,
) -> list[FieldError]:
    """Portal rules, then the spec rendered by ``dialect`` against the platform schema
    (``None``: the dialect's reference schema).

    When ``versions`` is not given, the allowed versions come from the schema's enum, so the
    portal offers exactly what the running platform accepts. Schema errors on a field that
    already has a portal error are dropped (the portal's sentence is the better one).
    """
    schema = schema if schema is not None else dialect.bundled_schema()
    kw.setdefault("versions", allowed_versions_from_schema(schema, dialect))
    errors = check_cluster_spec(spec, creating=creating, dialect=dialect, previous=previous,
                                **kw)
    flagged = {e.field for e in errors}
    for error in validate_against_schema(dialect.render_spec(spec), schema, dialect=dialect,
                                         spec=spec):
        if error.field not in flagged:
            errors.append(error)
    return errors
