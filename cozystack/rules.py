"""The portal's own rules for cluster-level settings and node groups.

Each function returns ``FieldError``s whose ``field`` is a form-style path and whose message
is a sentence a person can act on. ``validation.check_cluster_spec`` runs them all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cozystack import catalog, limits
from cozystack.specs import ClusterSpec, NodeGroupSpec, parse_quantity


@dataclass(frozen=True)
class FieldError:
    """``field`` is a form-style path (``node_groups[1].max_replicas``); ``message`` a sentence."""

    field: str
    message: str
    code: str


_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_DNS_1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_MAX_DNS_NAME = 253
_MAX_DNS_LABEL = 63
_MIN_GPU_NODE_MEMORY = Decimal(catalog.MIN_GPU_NODE_MEMORY_GIB * 2**30)
_MIN_CUSTOM_MEMORY = Decimal(limits.CUSTOM_MEMORY_GIB.lo * 2**30)
_MAX_CUSTOM_MEMORY = Decimal(limits.CUSTOM_MEMORY_GIB.hi * 2**30)
_MAX_CUSTOM_CPU = Decimal(limits.CUSTOM_CPU_CORES.hi)


# --------------------------------------------------------------------------- small helpers


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_dns_name(value: str, *, allow_wildcard: bool = False) -> bool:
    """A lowercase DNS name with at least two labels (``app.example.com``).

    ``allow_wildcard`` accepts one leading ``*.`` (Ingress hosts may be wildcards).
    """
    if not isinstance(value, str) or not value or len(value) > _MAX_DNS_NAME:
        return False
    labels = value.split(".")
    if allow_wildcard and labels[0] == "*":
        labels = labels[1:]
        if len(labels) < 2:
            return False
    if len(labels) < 2:
        return False
    return all(len(label) <= _MAX_DNS_LABEL and _DNS_1123_LABEL.match(label) for label in labels)


def names_of(items: Iterable[Any] | None, fallback: Iterable[Any]) -> set[str]:
    """Accept catalogue objects or plain names for the injectable lists."""
    source = fallback if items is None else items
    return {item if isinstance(item, str) else item.name for item in source}


def quote(value: Any) -> str:
    return f"“{value}”"


def join(items: Iterable[str]) -> str:
    return ", ".join(items)


# --------------------------------------------------------------------------- cluster-level rules


def check_name(spec: ClusterSpec) -> list[FieldError]:
    name = spec.name
    if not name:
        return [FieldError("name", "Enter a name for the cluster.", "required")]
    errors = []
    if len(name) > catalog.MAX_CLUSTER_NAME_LENGTH:
        errors.append(
            FieldError(
                "name",
                f"The cluster name may have at most {catalog.MAX_CLUSTER_NAME_LENGTH} "
                f"characters; {quote(name)} has {len(name)}.",
                "max_length",
            )
        )
    if not _DNS_1035_LABEL.match(name):
        errors.append(
            FieldError(
                "name",
                "Use only lowercase letters, digits and hyphens in the cluster name, starting "
                "with a letter and ending with a letter or digit (for example “prod-eu”).",
                "invalid",
            )
        )
    return errors


def check_version(
    spec: ClusterSpec, previous: ClusterSpec | None, allowed: tuple[str, ...]
) -> list[FieldError]:
    version = spec.version
    if version not in allowed:
        if previous is not None and version == previous.version:
            target = catalog.next_minor(version, allowed)
            hint = f" upgrade to {target} first" if target else " contact support to upgrade"
            return [
                FieldError(
                    "version",
                    f"Kubernetes {version} is no longer offered by the platform;{hint}.",
                    "version_retired",
                )
            ]
        hint = (
            " Write only major.minor, like v1.34." if catalog.parse_version(version) is None else ""
        )
        return [
            FieldError(
                "version",
                f"Kubernetes version {quote(version)} is not offered; choose one of "
                f"{join(allowed)}.{hint}",
                "invalid_choice",
            )
        ]
    if previous is None or version == previous.version:
        return []
    old_v, new_v = catalog.parse_version(previous.version), catalog.parse_version(version)
    if old_v and new_v and new_v < old_v:
        return [
            FieldError(
                "version",
                f"Kubernetes cannot be downgraded: the cluster runs {previous.version}, so "
                f"{version} is not possible.",
                "version_downgrade",
            )
        ]
    if not catalog.is_allowed_upgrade(previous.version, version, allowed):
        target = catalog.next_minor(previous.version, allowed)
        nxt = (
            f"from {previous.version} the next version is {target}"
            if target
            else (f"no newer version than {previous.version} is offered")
        )
        return [
            FieldError(
                "version",
                f"Upgrade one minor version at a time: {nxt}.",
                "version_skip",
            )
        ]
    return []


def check_immutable(spec: ClusterSpec, previous: ClusterSpec) -> list[FieldError]:
    errors = []
    if spec.name != previous.name:
        errors.append(
            FieldError(
                "name",
                f"A cluster cannot be renamed; keep the name {quote(previous.name)}.",
                "immutable",
            )
        )
    if spec.storage_class != previous.storage_class:
        errors.append(
            FieldError(
                "storage_class",
                "The storage class cannot change after the cluster is created; keep "
                f"{quote(previous.storage_class)}.",
                "immutable",
            )
        )
    if spec.host != previous.host:
        was = quote(previous.host) if previous.host else "the default host"
        errors.append(
            FieldError(
                "host",
                f"The API host name cannot change after the cluster is created; keep {was}.",
                "immutable",
            )
        )
    return errors


def check_storage_and_host(spec: ClusterSpec,
                           storage_classes: Iterable[str] | None = None) -> list[FieldError]:
    """``storage_classes``: the names the platform offers (its Option API), else the
    catalogue's."""
    errors = []
    known = list(storage_classes) if storage_classes is not None else \
        [s.name for s in catalog.storage_classes()]
    if spec.storage_class not in known:
        errors.append(
            FieldError(
                "storage_class",
                f"Storage class {quote(spec.storage_class)} does not exist; choose one of "
                f"{join(known)}.",
                "invalid_choice",
            )
        )
    if spec.host and not is_dns_name(spec.host):
        errors.append(
            FieldError(
                "host",
                f"The host name {quote(spec.host)} is not valid; enter a lowercase DNS name such "
                "as “k8s.example.com”, or leave it empty for the default.",
                "invalid_host",
            )
        )
    return errors


def check_control_plane(spec: ClusterSpec, offer: catalog.Catalogue) -> list[FieldError]:
    cp = spec.control_plane
    errors = []
    lo, hi = limits.CONTROL_PLANE_REPLICAS.lo, limits.CONTROL_PLANE_REPLICAS.hi
    if not limits.CONTROL_PLANE_REPLICAS.allows(cp.replicas):
        errors.append(
            FieldError(
                "control_plane.replicas",
                f"Control-plane replicas must be a whole number from {lo} to {hi}.",
                "out_of_range",
            )
        )
    presets = [p.name for p in offer.presets]
    for component in catalog.control_plane_components():
        value = getattr(cp, component.spec_field)
        if value in presets:
            continue
        if catalog.get_control_plane_preset(value) is not None:
            message = (f"{component.label} size {quote(value)} is not offered by this platform "
                       f"release; choose one of {join(presets)}.")
        else:
            message = (f"{component.label} size {quote(value)} does not exist; choose one of "
                       f"{join(presets)}.")
        errors.append(
            FieldError(f"control_plane.{component.spec_field}", message, "invalid_choice"))
    return errors


# --------------------------------------------------------------------------- node group rules


def _check_group_name(
    index: int, group: NodeGroupSpec, cluster_name: str, seen: set[str]
) -> list[FieldError]:
    path = f"node_groups[{index}].name"
    name = group.name
    if not name:
        return [FieldError(path, "Enter a name for the node group.", "required")]
    errors = []
    if not _DNS_1123_LABEL.match(name):
        errors.append(
            FieldError(
                path,
                f"Node group name {quote(name)} may only contain lowercase letters, digits and "
                "hyphens, and must start and end with a letter or digit.",
                "invalid",
            )
        )
    budget = catalog.MAX_CLUSTER_AND_GROUP_NAME_LENGTH
    if len(cluster_name) + len(name) > budget:
        errors.append(
            FieldError(
                path,
                f"Node group name {quote(name)} is too long for this cluster: the cluster and "
                f"group names together may have at most {budget} characters (now "
                f"{len(cluster_name) + len(name)}).",
                "max_length",
            )
        )
    if name in seen:
        errors.append(
            FieldError(path, f"There is already a node group named {quote(name)}.", "duplicate")
        )
    seen.add(name)
    return errors


def _check_replicas(index: int, group: NodeGroupSpec) -> list[FieldError]:
    prefix = f"node_groups[{index}]"
    lo, hi = group.min_replicas, group.max_replicas
    errors = []
    if not is_int(lo) or lo < limits.MIN_NODES.lo:
        errors.append(
            FieldError(
                f"{prefix}.min_replicas",
                "The minimum number of nodes must be a whole number, 0 or more.",
                "invalid",
            )
        )
    elif not limits.MIN_NODES.allows(lo):
        errors.append(
            FieldError(
                f"{prefix}.min_replicas",
                f"The minimum number of nodes may be at most {limits.MIN_NODES.hi}.",
                "out_of_range",
            )
        )
    if not limits.MAX_NODES.allows(hi):
        errors.append(
            FieldError(
                f"{prefix}.max_replicas",
                f"The maximum number of nodes must be a whole number from {limits.MAX_NODES.lo} "
                f"to {limits.MAX_NODES.hi}.",
                "out_of_range",
            )
        )
    if is_int(lo) and is_int(hi) and lo > hi:
        errors.append(
            FieldError(
                f"{prefix}.min_replicas",
                f"The minimum number of nodes ({lo}) cannot be more than the maximum ({hi}).",
                "min_gt_max",
            )
        )
    return errors


def _check_sizing(
    index: int, group: NodeGroupSpec, known_types: set[str], offer: catalog.Catalogue
) -> tuple[list[FieldError], Decimal | None]:
    """Errors for instance type / custom size, plus the node memory in bytes when known."""
    prefix = f"node_groups[{index}]"
    if group.instance_type:
        errors = []
        if group.cpu is not None or group.memory is not None:
            errors.append(
                FieldError(
                    f"{prefix}.cpu" if group.cpu is not None else f"{prefix}.memory",
                    "Custom CPU and memory cannot be combined with an instance type; clear them, "
                    "or choose “custom size” instead of an instance type.",
                    "size_conflict",
                )
            )
        if group.instance_type not in known_types:
            errors.append(
                FieldError(
                    f"{prefix}.instance_type",
                    f"Instance type {quote(group.instance_type)} does not exist; choose one "
                    "from the list (for example u1.large).",
                    "invalid_choice",
                )
            )
            return errors, None
        found = offer.get_instance_type(group.instance_type)
        return errors, Decimal(found.memory_bytes) if found else None
    return _check_custom_size(prefix, group)


def _check_custom_size(
    prefix: str, group: NodeGroupSpec
) -> tuple[list[FieldError], Decimal | None]:
    errors = []
    cpu = parse_quantity(group.cpu) if group.cpu is not None else None
    memory = parse_quantity(group.memory) if group.memory is not None else None
    if group.cpu is None:
        errors.append(
            FieldError(
                f"{prefix}.cpu",
                "Choose an instance type, or enter both CPU and memory for a custom size.",
                "required",
            )
        )
    elif cpu is None or cpu <= 0:
        errors.append(
            FieldError(
                f"{prefix}.cpu",
                f"CPU {quote(group.cpu)} is not a valid amount; enter a number of cores such "
                "as 4 or 500m.",
                "invalid_quantity",
            )
        )
    elif cpu > _MAX_CUSTOM_CPU:
        errors.append(
            FieldError(
                f"{prefix}.cpu",
                f"A custom-sized node may have at most {limits.CUSTOM_CPU_CORES.hi} CPU cores.",
                "out_of_range",
            )
        )
    if group.memory is None:
        errors.append(
            FieldError(
                f"{prefix}.memory",
                "Choose an instance type, or enter both CPU and memory for a custom size.",
                "required",
            )
        )
    elif memory is None or memory < _MIN_CUSTOM_MEMORY:
        errors.append(
            FieldError(
                f"{prefix}.memory",
                f"Memory {quote(group.memory)} is not a valid size; enter at least "
                f"{limits.CUSTOM_MEMORY_GIB.lo}Gi, for example 16Gi.",
                "invalid_quantity",
            )
        )
    elif memory > _MAX_CUSTOM_MEMORY:
        errors.append(
            FieldError(
                f"{prefix}.memory",
                f"A custom-sized node may have at most {limits.CUSTOM_MEMORY_GIB.hi}Gi of "
                "memory.",
                "out_of_range",
            )
        )
    return errors, memory


def _check_gpus(
    index: int, group: NodeGroupSpec, memory: Decimal | None, offer: catalog.Catalogue,
    known_gpus: set[str] | None = None,
) -> list[FieldError]:
    if not group.gpus:
        return []
    prefix = f"node_groups[{index}]"
    errors = []
    known = known_gpus if known_gpus is not None else {g.name for g in offer.gpu_models}
    unknown = sorted({name for name in group.gpus if name not in known})
    if unknown:
        errors.append(
            FieldError(
                f"{prefix}.gpus",
                f"Unknown GPU model {join(quote(n) for n in unknown)}; choose one of "
                f"{join(sorted(known))}.",
                "invalid_choice",
            )
        )
    if not limits.GPUS_PER_NODE.allows(len(group.gpus)):
        errors.append(
            FieldError(
                f"{prefix}.gpus",
                f"A node can have at most {limits.GPUS_PER_NODE.hi} GPUs.",
                "too_many",
            )
        )
    if memory is not None and memory < _MIN_GPU_NODE_MEMORY:
        field = f"{prefix}.instance_type" if group.instance_type else f"{prefix}.memory"
        errors.append(
            FieldError(
                field,
                f"GPU nodes need at least {catalog.MIN_GPU_NODE_MEMORY_GIB} GiB of memory for "
                "the NVIDIA driver; choose a larger size (for example u1.2xlarge).",
                "gpu_memory",
            )
        )
    if is_int(group.min_replicas) and group.min_replicas < 1:
        errors.append(
            FieldError(
                f"{prefix}.min_replicas",
                "GPU node groups need at least 1 node: the autoscaler may never start a GPU "
                "node from zero, so GPU workloads would stay pending.",
                "gpu_min_zero",
            )
        )
    return errors


def _check_disk_and_roles(index: int, group: NodeGroupSpec) -> list[FieldError]:
    prefix = f"node_groups[{index}]"
    errors = []
    lo, hi = limits.DISK_GIB.lo, limits.DISK_GIB.hi
    disk = group.disk_gib
    if not limits.DISK_GIB.allows(disk):
        errors.append(
            FieldError(
                f"{prefix}.disk_gib",
                f"The node disk must be a whole number of GiB from {lo} to {hi}.",
                "out_of_range",
            )
        )
    known = [r.name for r in catalog.node_roles()]
    unknown = [r for r in group.roles if r not in known]
    if unknown:
        errors.append(
            FieldError(
                f"{prefix}.roles",
                f"Unknown node role {join(quote(r) for r in unknown)}; the only role is "
                f"{join(known)}.",
                "invalid_choice",
            )
        )
    elif len(set(group.roles)) != len(group.roles):
        errors.append(
            FieldError(f"{prefix}.roles", "Each role may be given only once.", "duplicate")
        )
    return errors


def check_node_groups(
    spec: ClusterSpec, known_types: set[str], renamed: Mapping[str, str],
    offer: catalog.Catalogue, known_gpus: set[str] | None = None,
) -> list[FieldError]:
    if not spec.node_groups:
        return [
            FieldError(
                "node_groups", "Add at least one node group for the worker nodes.", "required"
            )
        ]
    errors: list[FieldError] = []
    if len(spec.node_groups) > limits.NODE_GROUPS.hi:
        errors.append(
            FieldError(
                "node_groups",
                f"A cluster may have at most {limits.NODE_GROUPS.hi} node groups.",
                "too_many",
            )
        )
    seen: set[str] = set()
    for index, group in enumerate(spec.node_groups):
        errors += _check_group_name(index, group, spec.name, seen)
        errors += _check_replicas(index, group)
        sizing_errors, memory = _check_sizing(index, group, known_types, offer)
        errors += sizing_errors
        errors += _check_gpus(index, group, memory, offer, known_gpus)
        errors += _check_disk_and_roles(index, group)
    new_index = {g.name: i for i, g in enumerate(spec.node_groups)}
    for old_name, new_name in renamed.items():
        if old_name != new_name and new_name in new_index:
            errors.append(
                FieldError(
                    f"node_groups[{new_index[new_name]}].name",
                    f"A node group cannot be renamed ({old_name} → {new_name}); add a new group "
                    "and remove the old one instead.",
                    "immutable",
                )
            )
    return errors
