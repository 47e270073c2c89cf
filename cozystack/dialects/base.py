"""What every dialect shares: reading a platform object back, the envelope, and the probe by
which a dialect recognises the schema of the release it speaks.

A dialect says how the portal's release-neutral ``ClusterSpec`` becomes the ``spec`` of the
platform's ``Kubernetes`` object for one contract, how an object of that contract reads back,
what the contract cannot do, and what its status conditions mean. Subclasses fill in the
differences (``v13``, ``v16``).
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar

from jsonschema import Draft7Validator, validators

from cozystack import catalog
from cozystack.helm import coalesce
from cozystack.rules import FieldError
from cozystack.specs import (
    AddonSpec,
    ClusterSpec,
    ControlPlaneSpec,
    NodeGroupSpec,
    quantity_to_gib,
)

# Features a dialect may or may not support; forms hide what the live platform cannot do.
PER_GROUP_STORAGE_CLASS = "per_group_storage_class"
AUTO_REPAIR = "auto_repair"
PER_GROUP_AUTO_REPAIR = "per_group_auto_repair"
KUBELET_RESERVATIONS = "kubelet_reservations"
OIDC = "oidc"
FRACTIONAL_GPUS = "fractional_gpus"
OUROBOROS = "ouroboros"
OPTION_API = "option_api"
CREDENTIAL_ROTATION = "credential_rotation"
FEATURES = (
    PER_GROUP_STORAGE_CLASS,
    AUTO_REPAIR,
    PER_GROUP_AUTO_REPAIR,
    KUBELET_RESERVATIONS,
    OIDC,
    FRACTIONAL_GPUS,
    OUROBOROS,
    OPTION_API,
    CREDENTIAL_ROTATION,
)

UNKNOWN_RELEASE_MESSAGE = (
    "The platform runs a release this portal does not know yet; changes are paused."
)
_CHART_VERSION = re.compile(r"^v?(\d+)\.(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class Health:
    """What the observed conditions mean for a cluster that has no change in flight.

    ``state`` is one of ``running``, ``degraded``, ``starting`` (the platform applied the spec
    and its workloads are still coming up) and ``stuck`` (the platform says applied, yet nothing
    came up for minutes: a platform-side problem for staff).
    """

    state: str
    reason: str = ""


RUNNING, DEGRADED, STARTING, STUCK = "running", "degraded", "starting", "stuck"


def parse_chart_version(text: str) -> tuple[int, int, int] | None:
    """``"1.6.2"`` → ``(1, 6, 2)``; a chart revision the platform reports in ``status.version``."""
    match = _CHART_VERSION.match(str(text or "").strip())
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3) or 0)


class Dialect:
    """One contract of the ``Kubernetes`` resource (see the module docstring)."""

    name: ClassVar[str]
    label: ClassVar[str]
    release_dir: ClassVar[str]
    reference_release: ClassVar[str]
    features: ClassVar[frozenset[str]] = frozenset()
    # Chart revisions (status.version) newer than this belong to a release it does not know.
    newest_chart: ClassVar[tuple[int, int]]
    # Ready=True without workloads nor kubeconfig for this long means stuck platform-side.
    stuck_after: ClassVar[timedelta] = timedelta(minutes=5)
    known: ClassVar[bool] = True
    # A change is done only once the platform reports the workloads ready (v1.6: Ready=True
    # only says the manifests were applied).
    waits_for_workloads: ClassVar[bool] = False

    def __init__(self, catalogue: catalog.Catalogue) -> None:
        self.catalogue = catalogue

    def __repr__(self) -> str:
        return f"<Dialect {self.name}>"

    # -- identity -------------------------------------------------------------------------------

    def supports(self, feature: str) -> bool:
        """Whether this contract can do ``feature`` (one of ``FEATURES``)."""
        return feature in self.features

    def bundled_schema(self) -> dict[str, Any]:
        """The reference release's values schema, as shipped with the portal (a fresh copy)."""
        return catalog.bundled_kubernetes_schema(self.release_dir)

    def chart_values(self) -> dict[str, Any]:
        """The reference release's ``values.yaml``: what Helm merges under every spec."""
        return catalog.bundled_chart_values(self.release_dir)

    def merged_values(self, spec_dict: Mapping[str, Any]) -> dict[str, Any]:
        """What Helm validates and renders: ``spec_dict`` coalesced over ``values.yaml``."""
        merged = coalesce(dict(spec_dict), self.chart_values())
        return merged if isinstance(merged, dict) else {}

    def accepts_chart(self, chart_version: str) -> bool:
        """False when ``status.version`` names a chart newer than this dialect knows (an
        older one is an object not yet rendered by the upgraded platform)."""
        parsed = parse_chart_version(chart_version)
        return parsed is None or parsed[:2] <= self.newest_chart

    def matches(self, schema: Mapping[str, Any]) -> bool:
        """True when ``schema`` is this contract's: the richest spec the dialect can send,
        merged over its chart values, validates against it, and every key it sends is one the
        schema describes (unknown keys would be silently ignored by the platform)."""
        if not isinstance(schema.get("properties"), Mapping):
            return False
        rendered = self.render_spec(self.probe())
        try:
            validator_cls = validators.validator_for(schema, default=Draft7Validator)
            if any(True for _ in validator_cls(schema).iter_errors(self.merged_values(rendered))):
                return False
        except Exception:  # a schema the validator cannot even read is not ours
            return False
        return _described(rendered, schema)

    def probe(self) -> ClusterSpec:
        """A spec using everything this dialect can render (``matches``)."""
        raise NotImplementedError

    # -- rendering ------------------------------------------------------------------------------

    def render_spec(self, spec: ClusterSpec) -> dict[str, Any]:
        """The ``.spec`` of the ``Kubernetes`` object in this contract, deterministic order."""
        raise NotImplementedError

    def offered_addons(self, specs: Iterable[AddonSpec]) -> list[AddonSpec]:
        """The add-on settings this release takes (an add-on it does not offer is dropped; the
        rules refuse it when it is on)."""
        return [s for s in specs if self.catalogue.get_addon(s.key) is not None]

    # -- reading back ---------------------------------------------------------------------------

    def spec_from_platform(self, obj: Mapping[str, Any]) -> ClusterSpec:
        """Read a GET'd ``Kubernetes`` object of this contract (schema defaults filled in)."""
        metadata = obj.get("metadata") or {}
        spec = obj.get("spec") or {}
        groups = tuple(
            self.group_from_platform(str(name), raw)
            for name, raw in (spec.get("nodeGroups") or {}).items()
            if isinstance(raw, Mapping)
        )
        return ClusterSpec(
            name=str(metadata.get("name", "")),
            namespace=str(metadata.get("namespace", "")),
            version=str(spec.get("version") or self.catalogue.default_version().name),
            storage_class=str(spec.get("storageClass") or catalog.DEFAULT_STORAGE_CLASS),
            host=str(spec.get("host") or ""),
            control_plane=control_plane_from_platform(spec.get("controlPlane") or {}),
            node_groups=groups,
            addons=self.addons_from_platform(spec.get("addons") or {}),
            **self.cluster_extras_from_platform(spec),
        )

    def group_from_platform(self, name: str, raw: Mapping[str, Any]) -> NodeGroupSpec:
        raise NotImplementedError

    def cluster_extras_from_platform(self, spec: Mapping[str, Any]) -> dict[str, Any]:
        """The release's cluster-level settings beyond the common ones (``auto_repair``, ...)."""
        return {}

    def addons_from_platform(self, raw: Mapping[str, Any]) -> tuple[AddonSpec, ...]:
        """One AddonSpec per offered add-on, in catalogue order; always-on ones read as on."""
        result = []
        for addon in self.catalogue.addons:
            item = raw.get(addon.key) or {}
            enabled = bool(item.get("enabled", False)) if addon.has_enabled \
                else addon.always_installed
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

    # -- what the release cannot do, and its render guards ---------------------------------------

    def check(self, spec: ClusterSpec, previous: ClusterSpec | None, *,
              storage_classes: Iterable[str] | None = None) -> list[FieldError]:
        """The refusals specific to this contract (features it lacks, its chart's ``fail``s);
        ``storage_classes``: the names the platform offers, else the catalogue's."""
        return []

    # -- what observed status means ---------------------------------------------------------------

    def health(self, *, ready: bool, workloads_ready: str | None, kubeconfig: bool,
               settled: bool, ready_for: timedelta | None) -> Health:
        """What the conditions mean (``workloads_ready``: the WorkloadsReady status or None)."""
        raise NotImplementedError

    def control_plane_up(self, *, ready: bool, kubeconfig: bool) -> bool:
        """Whether the conditions show a control plane that answers (a creation's first step)."""
        return ready

    def first_nodes(self, group: NodeGroupSpec) -> int:
        """How many machines a new group starts with, before the autoscaler applies its limits."""
        raise NotImplementedError

    def follow_platform_upgrade(self, desired: ClusterSpec, observed: ClusterSpec
                                ) -> tuple[ClusterSpec, list[str]]:
        """What the platform's own upgrade migrations changed in a live object, taken into the
        portal's desired spec so both agree (and nothing the tenant set is lost): the spec
        after, and a sentence per change. Anything else that differs is left alone."""
        return desired, []


# --------------------------------------------------------------------------- shared helpers


def as_int(value: Any, default: int) -> int:
    if isinstance(value, bool):
        return default
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    return default


def as_quantity_text(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    return str(value)


def disk_gib(value: Any, default: int) -> int:
    parsed = quantity_to_gib(value)
    return parsed if parsed is not None else default


def gpu_names(raw: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(g.get("name", "")) for g in raw.get("gpus") or [] if isinstance(g, Mapping))


def _preset(raw: Any, default: str) -> str:
    if isinstance(raw, Mapping) and raw.get("resourcesPreset"):
        return catalog.neutral_preset(str(raw["resourcesPreset"]))
    return default


def control_plane_from_platform(raw: Mapping[str, Any]) -> ControlPlaneSpec:
    """Presets under the portal's names, whichever names the object uses."""
    konnectivity = raw.get("konnectivity") or {}
    default = catalog.DEFAULT_COMPONENT_PRESET
    return ControlPlaneSpec(
        replicas=as_int(raw.get("replicas"), catalog.DEFAULT_CONTROL_PLANE_REPLICAS),
        api_server_preset=_preset(raw.get("apiServer"), catalog.DEFAULT_API_SERVER_PRESET),
        controller_manager_preset=_preset(raw.get("controllerManager"), default),
        scheduler_preset=_preset(raw.get("scheduler"), default),
        konnectivity_preset=_preset(konnectivity.get("server"), default),
    )


def resources_of(group: NodeGroupSpec) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if group.cpu is not None:
        resources["cpu"] = group.cpu
    if group.memory is not None:
        resources["memory"] = group.memory
    return resources


def ordered_groups(groups: Iterable[NodeGroupSpec]) -> list[NodeGroupSpec]:
    """``md0`` first, then the others by name (stable output whatever the form's order)."""
    listed = sorted(groups, key=lambda g: g.name)
    primary = [g for g in listed if g.name == catalog.PRIMARY_NODE_GROUP]
    return primary + [g for g in listed if g.name != catalog.PRIMARY_NODE_GROUP]


def _described(value: Any, schema: Mapping[str, Any]) -> bool:
    """Every key of ``value`` is described by ``schema`` (``properties`` or, for maps,
    ``additionalProperties``); free-form objects (``x-kubernetes-preserve-unknown-fields``)
    take anything."""
    if not isinstance(value, Mapping):
        return True
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return True
    properties = schema.get("properties") or {}
    extra = schema.get("additionalProperties")
    for key, item in value.items():
        if key in properties:
            child = properties[key]
        elif isinstance(extra, Mapping):
            child = extra
        else:
            return False
        if isinstance(item, Mapping) and not _described(item, child):
            return False
        if isinstance(item, list) and isinstance(child.get("items"), Mapping):
            if not all(_described(entry, child["items"]) for entry in item):
                return False
    return True


def replace_group(spec: ClusterSpec, group: NodeGroupSpec) -> ClusterSpec:
    return dataclasses.replace(spec, node_groups=tuple(
        group if g.name == group.name else g for g in spec.node_groups))
