"""What an edit does to a running cluster, in words a person can confirm.

The platform replaces every node of a group whenever its VM template changes (instance type,
disk, CPU/memory, roles, GPUs, version), with maxSurge = maxReplicas, so an innocent-looking
edit can double the nodes (and GPUs) for a while. These sentences are shown before the write.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cozystack import catalog
from cozystack.specs import AddonSpec, ClusterSpec, ControlPlaneSpec, NodeGroupSpec, gib

if TYPE_CHECKING:
    from cozystack.dialects import Dialect


@dataclass(frozen=True)
class Change:
    """One consequence of an edit, in words, for the confirmation page and the audit log.

    ``field`` is a portal path like ``node_groups[md0]``, ``version`` or ``addons.velero``.
    """

    field: str
    message: str
    replaces_nodes: bool = False


def requires_node_replacement(old: NodeGroupSpec, new: NodeGroupSpec) -> bool:
    """True when the VM template changes, which replaces every node of the group."""
    return bool(_replacement_reasons(old, new))


def _gpu_words(gpus: tuple[str, ...]) -> str:
    if not gpus:
        return "none"
    counts: dict[str, int] = {}
    for name in gpus:
        counts[name] = counts.get(name, 0) + 1
    parts = []
    for name, count in counts.items():
        model = catalog.describe_gpu(name)
        parts.append(f"{count}× {model.model if model else name}")
    return ", ".join(parts)


def _size_words(group: NodeGroupSpec) -> str:
    if group.instance_type:
        return group.instance_type
    return f"custom {group.cpu or '?'} CPU / {group.memory or '?'}"


def _replacement_reasons(old: NodeGroupSpec, new: NodeGroupSpec) -> list[str]:
    reasons = []
    if old.instance_type != new.instance_type:
        reasons.append(
            f"instance type {old.instance_type or 'custom'} → {new.instance_type or 'custom'}"
        )
    if old.disk_gib != new.disk_gib:
        reasons.append(f"disk {gib(old.disk_gib)} → {gib(new.disk_gib)}")
    if old.storage_class != new.storage_class:
        reasons.append(f"storage class {old.storage_class or 'the cluster’s'} → "
                       f"{new.storage_class or 'the cluster’s'}")
    if old.kubelet != new.kubelet:
        reasons.append("kubelet reservations changed")
    if old.cpu != new.cpu:
        reasons.append(f"CPU {old.cpu or 'from instance type'} → {new.cpu or 'from instance type'}")
    if old.memory != new.memory:
        reasons.append(
            f"memory {old.memory or 'from instance type'} → {new.memory or 'from instance type'}"
        )
    if old.roles != new.roles:
        reasons.append(f"roles {', '.join(old.roles) or 'none'} → {', '.join(new.roles) or 'none'}")
    if old.gpus != new.gpus:
        reasons.append(f"GPUs {_gpu_words(old.gpus)} → {_gpu_words(new.gpus)}")
    return reasons


def _limits(group: NodeGroupSpec) -> str:
    return f"{group.min_replicas}–{group.max_replicas}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _group_changes(
    old: NodeGroupSpec, new: NodeGroupSpec, node_counts: Mapping[str, int]
) -> list[Change]:
    path = f"node_groups[{new.name}]"
    limits_changed = (old.min_replicas, old.max_replicas) != (new.min_replicas, new.max_replicas)
    limits = f"min/max {_limits(old)} → {_limits(new)}"
    reasons = _replacement_reasons(old, new)
    if reasons:
        current = node_counts.get(new.name)
        if current is not None:
            peak = current + new.max_replicas
            who = f"all {_plural(current, 'node')}"
            peak_words = f"up to {_plural(peak, 'node')} during the change"
            if new.gpus:
                peak_words += f" ({_plural(peak * len(new.gpus), 'GPU')})"
        else:
            who = "all nodes"
            peak_words = f"up to {_plural(new.max_replicas, 'extra node')} during the change"
        message = f"node group {new.name}: {who} replaced ({'; '.join(reasons)}); {peak_words}"
        if limits_changed:
            message += f"; {limits}"
        return [Change(path, message, replaces_nodes=True)]
    changes = []
    if limits_changed:
        message = f"node group {new.name}: {limits}: autoscaler limits only, no replacement"
        changes.append(Change(path, message))
    repair_old = (old.max_unhealthy, old.node_startup_timeout)
    repair_new = (new.max_unhealthy, new.node_startup_timeout)
    if repair_old != repair_new:
        changes.append(Change(
            f"{path}.auto_repair",
            f"node group {new.name}: auto-repair {_repair_words(*repair_old)} → "
            f"{_repair_words(*repair_new)}; nodes are not touched"))
    return changes


def _repair_words(limit: str, timeout: str) -> str:
    if not limit and not timeout:
        return "as the cluster"
    return f"limit {limit or 'as the cluster'}, start-up {timeout or 'as the cluster'}"


def _group_added(group: NodeGroupSpec, dialect: Dialect | None) -> Change:
    gpus = f" with {_gpu_words(group.gpus)} per node" if group.gpus else ""
    start = "its first nodes" if dialect is None \
        else _plural(dialect.first_nodes(group), "node")
    message = (
        f"node group {group.name} added: {_limits(group)} nodes of {_size_words(group)}{gpus}; "
        f"the platform starts it with {start}, then the autoscaler applies the limits"
    )
    return Change(f"node_groups[{group.name}]", message)


def _group_removed(group: NodeGroupSpec, node_counts: Mapping[str, int]) -> Change:
    count = node_counts.get(group.name)
    nodes = f"its {_plural(count, 'node')}" if count is not None else "its nodes"
    message = f"node group {group.name} removed: {nodes} are drained and deleted"
    return Change(f"node_groups[{group.name}]", message, replaces_nodes=True)


def _version_change(old: str, new: str) -> Change:
    old_v, new_v = catalog.parse_version(old), catalog.parse_version(new)
    if old_v and new_v and new_v < old_v:
        return Change("version", f"version {old} → {new}: downgrades are not possible")
    message = (
        f"version {old} → {new}: control plane upgraded first, then every node group is rolled "
        "(all nodes replaced, one at a time)"
    )
    return Change("version", message, replaces_nodes=True)


def _control_plane_changes(old: ControlPlaneSpec, new: ControlPlaneSpec) -> list[Change]:
    changes = []
    if old.replicas != new.replicas:
        changes.append(
            Change(
                "control_plane.replicas",
                f"control plane replicas {old.replicas} → {new.replicas}: API server pods "
                "added or removed; nodes are not touched",
            )
        )
    for component in catalog.control_plane_components():
        before = getattr(old, component.spec_field)
        after = getattr(new, component.spec_field)
        if before == after:
            continue
        sizes = ""
        old_p, new_p = (
            catalog.get_control_plane_preset(before),
            catalog.get_control_plane_preset(after),
        )
        if old_p and new_p:
            sizes = f" ({old_p.cpu} CPU/{old_p.memory} → {new_p.cpu} CPU/{new_p.memory})"
        changes.append(
            Change(
                f"control_plane.{component.spec_field}",
                f"control plane {component.label} preset {before} → {after}{sizes}: its pods "
                "restart one at a time; nodes are not touched",
            )
        )
    return changes


def _addon_changes(old: ClusterSpec, new: ClusterSpec) -> list[Change]:
    changes = []
    for addon in catalog.addons():
        before, after = old.addon(addon.key), new.addon(addon.key)
        path = f"addons.{addon.key}"
        if addon.has_enabled and before.enabled != after.enabled:
            if after.enabled:
                message = f"add-on {addon.label} enabled: installed into the cluster"
                if addon.key == catalog.INGRESS_NGINX and after.expose_method == "LoadBalancer":
                    message += "; takes a public IP address"
            else:
                message = f"add-on {addon.label} disabled: removed from the cluster"
                if addon.key == catalog.MONITORING_AGENTS:
                    message += " (with the Vertical Pod Autoscaler)"
            changes.append(Change(f"{path}.enabled", message))
        if addon.key == catalog.INGRESS_NGINX:
            changes.extend(_ingress_changes(before, after, path))
        if addon.has_values_override and before.values_override != after.values_override:
            changes.append(
                Change(
                    f"{path}.values_override",
                    f"add-on {addon.label}: custom values changed; its release is upgraded",
                )
            )
    return changes


def _ingress_changes(before: AddonSpec, after: AddonSpec, path: str) -> list[Change]:
    changes = []
    if before.expose_method != after.expose_method:
        effect = (
            "takes a public IP address"
            if after.expose_method == "LoadBalancer"
            else "releases its public IP address; hosts are routed by the platform ingress"
        )
        changes.append(
            Change(
                f"{path}.expose_method",
                f"add-on Ingress NGINX: expose method {before.expose_method} → "
                f"{after.expose_method}: {effect}",
            )
        )
    if before.hosts != after.hosts:
        added = [h for h in after.hosts if h not in before.hosts]
        removed = [h for h in before.hosts if h not in after.hosts]
        parts = []
        if added:
            parts.append(f"added {', '.join(added)}")
        if removed:
            parts.append(f"removed {', '.join(removed)}")
        detail = "; ".join(parts) or "reordered"
        changes.append(Change(f"{path}.hosts", f"add-on Ingress NGINX: hosts {detail}"))
    return changes


def _fixed_field_changes(old: ClusterSpec, new: ClusterSpec) -> list[Change]:
    changes = []
    for attr, label in (("name", "name"), ("storage_class", "storage class"), ("host", "host")):
        before, after = getattr(old, attr), getattr(new, attr)
        if before != after:
            changes.append(
                Change(
                    attr,
                    f"{label} {before or '(default)'} → {after or '(default)'}: "
                    "cannot change after creation",
                )
            )
    return changes


def cluster_changes(
    old: ClusterSpec,
    new: ClusterSpec,
    *,
    node_counts: Mapping[str, int] | None = None,
    dialect: Dialect | None = None,
) -> list[Change]:
    """Describe what applying ``new`` over ``old`` does, in the order it happens.

    ``node_counts`` (group name → nodes running now, e.g. from the watcher) turns "all nodes"
    into "all 3 nodes" and bounds the transient peak (current + maxSurge = max replicas).
    ``dialect`` (the platform's contract) says how many nodes a new group starts with.
    """
    counts = node_counts or {}
    changes = _fixed_field_changes(old, new)
    if old.version != new.version:
        changes.append(_version_change(old.version, new.version))
    changes.extend(_control_plane_changes(old.control_plane, new.control_plane))
    old_groups = {g.name: g for g in old.node_groups}
    new_groups = {g.name: g for g in new.node_groups}
    for name, group in new_groups.items():
        if name in old_groups:
            changes.extend(_group_changes(old_groups[name], group, counts))
        else:
            changes.append(_group_added(group, dialect))
    for name, group in old_groups.items():
        if name not in new_groups:
            changes.append(_group_removed(group, counts))
    changes.extend(_addon_changes(old, new))
    changes.extend(_access_changes(old, new))
    return changes


def _access_changes(old: ClusterSpec, new: ClusterSpec) -> list[Change]:
    """Auto-repair and per-user access: nothing in the cluster is replaced."""
    changes = []
    if old.auto_repair != new.auto_repair:
        changes.append(Change("auto_repair", f"auto-repair {_cluster_repair(old)} → "
                                             f"{_cluster_repair(new)}; nodes are not touched"))
    before = {u.email: u.role for u in old.oidc_users}
    after = {u.email: u.role for u in new.oidc_users}
    if before != after:
        parts = [f"{email} ({role}) added" for email, role in after.items() if email not in before]
        parts += [f"{email} removed" for email in before if email not in after]
        parts += [f"{email} {before[email]} → {role}" for email, role in after.items()
                  if email in before and before[email] != role]
        changes.append(Change("oidc_users", f"cluster access: {'; '.join(parts)}"))
    return changes


def _cluster_repair(spec: ClusterSpec) -> str:
    repair = spec.auto_repair
    if repair is None:
        return "platform default"
    if not repair.enabled:
        return "off"
    return f"on (limit {repair.max_unhealthy}, start-up {repair.node_startup_timeout})"


def replaces_nodes(old: NodeGroupSpec, new: NodeGroupSpec) -> bool:
    """Does ``old`` → ``new`` replace the group's nodes (a new VM template)?"""
    return bool(_replacement_reasons(old, new))
