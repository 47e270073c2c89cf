"""One change plan per spec change: what a request does to a cluster's spec, computed once.

A planner takes the spec a cluster has and returns its ``ChangePlan``: the spec after, the
operation kind, what the audit log and the timeline say, and whether anything changes at all.
It is pure (no database, no platform): the detail page's preview renders the plan (its
consequences in words come from ``cozystack.changes``), the action applies the same plan under
the cluster's row lock, and the API answers a refusal whose code names a conflict
(``already_exists``, ``no_change``) with a 409. Every refusal of a request's intent has its
home here; the platform's own rules (one minor version at a time, names, sizes) stay in
``cozystack`` and are checked on the plan's result.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters.models import Operation
from cozystack.changes import Change, cluster_changes
from cozystack.rules import FieldError
from cozystack.specs import AddonSpec, AutoRepairSpec, ClusterSpec, NodeGroupSpec, OidcUserSpec

if TYPE_CHECKING:
    from cozystack.dialects import Dialect


@dataclass(frozen=True)
class ChangePlan:
    """What one request changes: ``before`` → ``after`` as an operation of ``kind``.

    ``verb`` names the audit entry, ``summary`` the timeline entry, ``params`` what the
    operation and the audit entry keep of the request (the node group, the target version).
    """

    kind: str
    before: ClusterSpec
    after: ClusterSpec
    verb: str
    summary: str
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def changes_anything(self) -> bool:
        return self.after != self.before

    def refusals(self) -> list[FieldError]:
        """The plan's own refusal: a request that changes nothing."""
        if self.changes_anything:
            return []
        return [FieldError("__all__", _("Nothing to change: this is the current configuration."),
                           "no_change")]

    def consequences(self, node_counts: Mapping[str, int] | None = None,
                     dialect: Dialect | None = None) -> list[Change]:
        """What applying it does, in words a person confirms (``node_counts``: nodes running
        now per group, for "all 3 nodes" and the peak during a replacement; ``dialect``: the
        platform's contract, for how a new group starts)."""
        return cluster_changes(self.before, self.after, node_counts=node_counts,
                               dialect=dialect)


Planner = Callable[[ClusterSpec], ChangePlan]


def waived_for_retry(errors: list[FieldError]) -> list[FieldError]:
    """A retry applies an intent again, as it was accepted: what cannot change after creation
    and "nothing to change" (the spec may already be the desired one) do not refuse it."""
    return [e for e in errors if e.code not in ("immutable", "no_change")]


class NoSuchNodeGroup(ValidationError):
    """The request names a node group the cluster does not have (a page answers 404: the name
    came from its URL)."""


def _group(spec: ClusterSpec, name: str) -> NodeGroupSpec:
    group = spec.group(name)
    if group is None:
        raise NoSuchNodeGroup({"node_group": _("This cluster has no node group %(name)s.")
                               % {"name": name}})
    return group


def _replace_group(spec: ClusterSpec, name: str,
                   change: Callable[[NodeGroupSpec], NodeGroupSpec]) -> ClusterSpec:
    _group(spec, name)
    return dataclasses.replace(spec, node_groups=tuple(
        change(g) if g.name == name else g for g in spec.node_groups))


def update_cluster(spec: ClusterSpec) -> Planner:
    """The cluster as a whole becomes ``spec`` (its name and namespace are kept)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = dataclasses.replace(spec, name=before.name, namespace=before.namespace)
        return ChangePlan(Operation.Kind.UPDATE, before, after, "cluster.update",
                          _("Configuration change requested."))
    return plan


def scale_node_group(name: str, *, min_replicas: int, max_replicas: int) -> Planner:
    """New autoscaler limits for a group (no node is replaced)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = _replace_group(before, name, lambda g: dataclasses.replace(
            g, min_replicas=min_replicas, max_replicas=max_replicas))
        return ChangePlan(Operation.Kind.SCALE, before, after, "cluster.scale",
                          _("Scale of %(group)s to %(min)s–%(max)s nodes requested.")
                          % {"group": name, "min": min_replicas, "max": max_replicas},
                          {"node_group": name})
    return plan


def update_node_group(group: NodeGroupSpec) -> Planner:
    """A group's template (instance type, disk, roles, GPUs) or limits become ``group``'s."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = _replace_group(before, group.name, lambda _old: group)
        return ChangePlan(Operation.Kind.UPDATE, before, after, "cluster.node_group.update",
                          _("Change of node group %(group)s requested.") % {"group": group.name},
                          {"node_group": group.name})
    return plan


def add_node_group(group: NodeGroupSpec) -> Planner:
    """A new group; a name the cluster already has is refused."""
    def plan(before: ClusterSpec) -> ChangePlan:
        if before.group(group.name) is not None:
            raise ValidationError({"name": ValidationError(
                _("A node group with this name already exists."), code="already_exists")})
        after = dataclasses.replace(before, node_groups=(*before.node_groups, group))
        return ChangePlan(Operation.Kind.ADD_NODE_GROUP, before, after,
                          "cluster.node_group.add",
                          _("Node group %(group)s requested.") % {"group": group.name},
                          {"node_group": group.name})
    return plan


def remove_node_group(name: str) -> Planner:
    """A group goes; the last one cannot (the cluster is deleted instead)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        _group(before, name)
        if len(before.node_groups) == 1:
            raise ValidationError({"node_group": _(
                "A cluster needs at least one node group; delete the cluster instead.")})
        after = dataclasses.replace(before, node_groups=tuple(
            g for g in before.node_groups if g.name != name))
        return ChangePlan(Operation.Kind.REMOVE_NODE_GROUP, before, after,
                          "cluster.node_group.remove",
                          _("Removal of node group %(group)s requested.") % {"group": name},
                          {"node_group": name})
    return plan


def upgrade(version: str) -> Planner:
    """Kubernetes ``version``; asking for the version the cluster runs changes nothing. Which
    versions it may move to is the platform's rule (``cozystack.rules``)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        if version == before.version:
            raise ValidationError({"version": ValidationError(
                _("The cluster already runs %(v)s.") % {"v": version}, code="no_change")})
        return ChangePlan(Operation.Kind.UPGRADE, before,
                          dataclasses.replace(before, version=version), "cluster.upgrade",
                          _("Upgrade to %(v)s requested.") % {"v": version},
                          {"version": version})
    return plan


def set_addons(addons: tuple[AddonSpec, ...]) -> Planner:
    """The add-ons become ``addons``."""
    def plan(before: ClusterSpec) -> ChangePlan:
        return ChangePlan(Operation.Kind.ADDONS, before,
                          dataclasses.replace(before, addons=tuple(addons)), "cluster.addons",
                          _("Add-on change requested."))
    return plan


def set_auto_repair(auto_repair: AutoRepairSpec | None,
                    groups: Mapping[str, tuple[str, str]] | None = None) -> Planner:
    """Node auto-repair becomes ``auto_repair`` (None: the platform's default); each group named
    in ``groups`` gets its own (max unhealthy, start-up timeout), "" meaning the cluster's. The
    health checks change; no node is replaced."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = dataclasses.replace(before, auto_repair=auto_repair)
        for name, overrides in (groups or {}).items():
            after = _replace_group(after, name, functools.partial(_group_repair, overrides))
        return ChangePlan(Operation.Kind.UPDATE, before, after, "cluster.auto_repair",
                          _("Auto-repair change requested."))
    return plan


def _group_repair(overrides: tuple[str, str], group: NodeGroupSpec) -> NodeGroupSpec:
    return dataclasses.replace(group, max_unhealthy=overrides[0],
                               node_startup_timeout=overrides[1])


def set_oidc_users(users: tuple[OidcUserSpec, ...], *, summary: str = "") -> Planner:
    """The people who get into the cluster through single sign-on become ``users``."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = dataclasses.replace(before, oidc_users=tuple(users))
        granted = {u.email for u in after.oidc_users} - {u.email for u in before.oidc_users}
        removed = {u.email for u in before.oidc_users} - {u.email for u in after.oidc_users}
        roles = {u.email: u.role for u in before.oidc_users}
        changed = {u.email for u in after.oidc_users if roles.get(u.email, u.role) != u.role}
        params = {"access_granted": sorted(granted), "access_removed": sorted(removed)}
        if changed:
            params["access_role_changed"] = sorted(changed)
        return ChangePlan(Operation.Kind.ACCESS, before, after, "cluster.access",
                          summary or _("Access change requested."), params)
    return plan


# --------------------------------------------------------------------------- part B: hibernation

HIBERNATION_PARAM = "hibernation"  # in an operation's params: "hibernate" or "wake"
# Kinds of a change to node groups: while a cluster hibernates they change what waking
# restores (``clusters.hibernation``), not the live spec.
NODE_GROUP_KINDS = frozenset({Operation.Kind.SCALE, Operation.Kind.ADD_NODE_GROUP,
                              Operation.Kind.REMOVE_NODE_GROUP})


def is_node_group_change(plan: ChangePlan) -> bool:
    """A plan that changes node groups only (scale, add, remove, a group's template)."""
    if HIBERNATION_PARAM in plan.params:
        return False
    return plan.kind in NODE_GROUP_KINDS or (
        plan.kind == Operation.Kind.UPDATE and "node_group" in plan.params)


def hibernate() -> Planner:
    """Every node group to min 0 / max 0: the workers stop, the control plane keeps running.
    What waking restores is kept by the caller (``clusters.hibernation``)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = dataclasses.replace(before, node_groups=tuple(
            dataclasses.replace(g, min_replicas=0, max_replicas=0) for g in before.node_groups))
        return ChangePlan(Operation.Kind.SCALE, before, after, "cluster.hibernate",
                          _("Hibernation: every node group goes to 0 nodes; the control plane "
                            "keeps running."), {HIBERNATION_PARAM: "hibernate"})
    return plan


def wake(groups: tuple[NodeGroupSpec, ...]) -> Planner:
    """The node groups become ``groups`` again: each group's exact min and max from before the
    hibernation, with what was changed meanwhile (groups added or removed, new limits)."""
    def plan(before: ClusterSpec) -> ChangePlan:
        after = dataclasses.replace(before, node_groups=tuple(groups))
        same_groups = [g.name for g in groups] == [g.name for g in before.node_groups]
        sizes = ", ".join(f"{g.name} {g.min_replicas}–{g.max_replicas}" for g in groups)
        return ChangePlan(Operation.Kind.SCALE if same_groups else Operation.Kind.UPDATE,
                          before, after, "cluster.wake",
                          _("Wake: node groups back to %(sizes)s nodes.") % {"sizes": sizes},
                          {HIBERNATION_PARAM: "wake"})
    return plan


def waived_for_hibernation(plan: ChangePlan, errors: list[FieldError]) -> list[FieldError]:
    """Hibernating sets sizes the portal never lets a person choose (max 0, a GPU group at 0):
    those refusals do not apply to it, nor to a group still asleep in a later change (an
    upgrade while the cluster hibernates). Waking restores what was accepted before: quota
    (the sleeping cluster's nodes were freed meanwhile) and "nothing to change" (a retried wake
    whose first attempt reached the platform) do not refuse it."""
    return waived_while_asleep(plan.before, plan.after, plan.params.get(HIBERNATION_PARAM),
                               errors)


def waived_while_asleep(before: ClusterSpec | None, after: ClusterSpec, kind: str | None,
                        errors: list[FieldError]) -> list[FieldError]:
    """``waived_for_hibernation`` from an operation's specs and role (the worker checks
    again before sending)."""
    if kind == "wake":
        errors = [e for e in errors if e.code not in ("quota_exceeded", "no_change")]
    asleep = set()
    for index, group in enumerate(after.node_groups):
        if group.min_replicas or group.max_replicas:
            continue
        old = before.group(group.name) if before is not None else None
        if kind == "hibernate" or (old is not None and old.max_replicas == 0):
            asleep.add(index)
    return [e for e in errors if not any(
        e.field in (f"node_groups[{i}].min_replicas", f"node_groups[{i}].max_replicas")
        for i in asleep)]
