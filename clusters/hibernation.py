"""Hibernation state: whether a cluster sleeps, and what waking restores.

A hibernating cluster has every node group at min 0 / max 0 on the platform (a change plan,
``plans.hibernate``, through the normal operation path). Its open ``Hibernation`` row keeps the
spec of its node groups as they were (``restore``): each group's exact min and max, its
template. While it sleeps, a person's change of the node groups (scale, add, remove, a group's
template) is checked like a change of the awake cluster and changes ``restore``, not the live
spec (``record_deferred``, called by ``clusters.actions`` under the cluster's row lock); the
live spec keeps every group at 0 until the wake.

The actions that hibernate and wake, the schedule and the planner are in
``clusters.hibernation_actions``; this module makes no change of its own beyond the restore.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import Count, Max, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import events, plans
from clusters import hibernation_schedule as schedules
from clusters.models import Cluster, ClusterEvent, Hibernation
from cozystack.specjson import spec_from_json, spec_to_json
from cozystack.specs import ClusterSpec, NodeGroupSpec
from portal.audit import Actor, record

OPEN_STATES = (Hibernation.State.HIBERNATING, Hibernation.State.WAKING)


@dataclass(frozen=True)
class Deferred:
    """A node-group change recorded for the wake of a hibernating cluster."""

    hibernation_id: int
    summary: str
    groups: tuple[NodeGroupSpec, ...]


class ChangeDeferred(Exception):  # noqa: N818 - a result, not an error
    """Raised by ``clusters.actions.do_change_cluster`` once committed: the change went to what
    waking restores (no operation started). The page and the API say so."""

    def __init__(self, deferred: Deferred) -> None:
        super().__init__(deferred.summary)
        self.deferred = deferred


def open_hibernation(cluster_id: int, *, lock: bool = False) -> Hibernation | None:
    """The cluster's hibernation in progress (sleeping, or waking), if any."""
    qs = Hibernation.objects.filter(cluster_id=cluster_id, state__in=OPEN_STATES)
    if lock:
        qs = qs.select_for_update(no_key=True)
    return qs.first()


def restore_groups(held: Hibernation) -> tuple[NodeGroupSpec, ...]:
    spec = spec_from_json({"name": "", "namespace": "", "version": "", "storage_class": "",
                           "host": "", "control_plane": {}, "node_groups": held.restore,
                           "addons": []})
    return spec.node_groups


def restore_spec(cluster: Cluster, held: Hibernation,
                 live: ClusterSpec | None = None) -> ClusterSpec:
    """The cluster as waking would make it: the live spec with the groups ``held`` restores."""
    live = live or cluster.to_spec()
    return dataclasses.replace(live, node_groups=restore_groups(held))


def groups_to_json(groups: tuple[NodeGroupSpec, ...]) -> list[dict[str, object]]:
    spec = ClusterSpec(name="", namespace="", version="", node_groups=groups)
    return spec_to_json(spec)["node_groups"]


def restore_by_name(held: Hibernation) -> dict[str, NodeGroupSpec]:
    return {g.name: g for g in restore_groups(held)}


def planning_base(cluster: Cluster, planner: plans.Planner, live: ClusterSpec) -> ClusterSpec:
    """The spec a page plans ``planner`` on: what waking restores when the cluster hibernates
    and the request changes node groups, else the live spec."""
    held = open_hibernation(cluster.pk)
    if held is None:
        return live
    restore = restore_spec(cluster, held, live)
    try:
        plan = planner(restore)
    except ValidationError:
        return restore  # the caller plans again and shows the same refusal
    return restore if plans.is_node_group_change(plan) else live


def check_live_groups_kept(cluster: Cluster, plan: plans.ChangePlan) -> None:
    """A change applied to the live spec of a hibernating cluster (an upgrade, add-ons…) must
    keep its groups at 0: only waking brings them back."""
    if plans.HIBERNATION_PARAM in plan.params or plan.after.node_groups == plan.before.node_groups:
        return
    if open_hibernation(cluster.pk) is not None:
        raise ValidationError(_(
            "This cluster hibernates: change its node groups one by one (the change applies "
            "when it wakes), or wake it first."), code="hibernating")


def record_deferred(actor: Actor, cluster: Cluster, held: Hibernation,
                    plan: plans.ChangePlan) -> Deferred:
    """Keep ``plan``'s node groups as what waking restores (the caller checked the plan and
    holds the cluster's row lock), with a timeline entry and an audit entry."""
    held.restore = groups_to_json(plan.after.node_groups)
    held.save(update_fields=["restore"])
    summary = _("%(change)s The cluster hibernates: this applies when it wakes.") % {
        "change": plan.summary}
    ClusterEvent.objects.create(
        tenant_id=cluster.tenant_id, cluster=cluster, at=timezone.now(),
        source=ClusterEvent.Source.PORTAL, reason="hibernation.restore_changed",
        message=summary, actor_label=actor.label)
    events.cluster_changed(cluster.pk)
    record(actor, f"{plan.verb}.at_wake", cluster, tenant=cluster.tenant,
           changes={"restore": [groups_to_json(plan.before.node_groups), held.restore],
                    **plan.params})
    return Deferred(held.pk, summary, plan.after.node_groups)


@dataclass(frozen=True)
class Badge:
    """What the list and the detail page say of a hibernating cluster: "Hibernating since …
    · wakes at …" (``waking``: the wake is under way, or waits for a retry)."""

    since: datetime
    wakes_at: datetime | None
    waking: bool
    restore: tuple[tuple[str, int, int], ...] = ()  # (group, min, max) waking restores

    @property
    def key(self) -> tuple[object, ...]:
        return (self.since.isoformat(), self.wakes_at.isoformat() if self.wakes_at else "",
                self.waking, self.restore)


BADGE_COLUMNS = ("cluster_id", "state", "started_at", "next_wake_try_at", "restore",
                 "cluster__hibernation_schedule__enabled",
                 "cluster__hibernation_schedule__ranges",
                 "cluster__hibernation_schedule__time_zone")


def badge_rows(cluster_ids: Iterable[int]) -> QuerySet[Hibernation, tuple[Any, ...]]:
    """What the badges of these clusters are made of (``BADGE_COLUMNS``), one row per cluster
    that hibernates; the live reads run it prepared, beside their other queries."""
    return (Hibernation.objects.filter(cluster_id__in=list(cluster_ids), state__in=OPEN_STATES)
            .order_by().values_list(*BADGE_COLUMNS))


def badges(cluster_ids: Iterable[int], now: datetime | None = None) -> dict[int, Badge]:
    """The badge of each of these clusters that hibernates, in one query."""
    ids = list(cluster_ids)
    return badges_from_rows(badge_rows(ids), now) if ids else {}


def sleep_rows(cluster_ids: Iterable[int]) -> QuerySet[Hibernation, tuple[Any, ...]]:
    """Of each of these clusters that ever hibernated (failures aside): whether a hibernation
    is open and when the last one ended (``slept_since`` reads them)."""
    return (Hibernation.objects.filter(cluster_id__in=list(cluster_ids))
            .exclude(state=Hibernation.State.FAILED).order_by().values("cluster_id")
            .annotate(open=Count("pk", filter=Q(ended_at__isnull=True)),
                      last_end=Max("ended_at"))
            .values_list("cluster_id", "open", "last_end"))


def slept_since(rows: Iterable[tuple[Any, ...]], start: datetime) -> set[int]:
    """The clusters of ``sleep_rows``' rows that hibernated at some time since ``start``."""
    return {cluster_id for cluster_id, open_, last_end in rows
            if open_ or (last_end is not None and last_end > start)}


def badges_from_rows(rows: Iterable[tuple[Any, ...]], now: datetime | None = None
                     ) -> dict[int, Badge]:
    """The badges of ``badge_rows``' rows."""
    now = now or timezone.now()
    found = {}
    for cluster_id, state, since, retry_at, restore, enabled, ranges, time_zone in rows:
        waking = state == Hibernation.State.WAKING
        wakes_at = retry_at if waking else None
        if not waking and enabled and ranges:
            boundary = schedules.next_boundary(ranges, time_zone, now, "wake")
            wakes_at = boundary.at if boundary else None
        found[cluster_id] = Badge(since, wakes_at, waking, tuple(
            (g["name"], g["min_replicas"], g["max_replicas"]) for g in restore or ()))
    return found
