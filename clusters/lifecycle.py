"""The lifecycle planner: automatic actions on clusters, driven by one periodic beat task.

Maintenance windows with automatic upgrades, hibernation schedules and expiry each provide a
*planner* (registered at start-up, in ``clusters.apps``). Beat calls ``run`` once a minute
(``clusters.plan_lifecycle``); each planner starts what is due by then through the normal
actions and the operation state machine, with ``Actor.system(reason)`` as the actor, and
records what it did so that a second run in the same minute does nothing more. ``upcoming``
answers what the planners will do next (the cluster page, the API's dry run, the staff
console).

Staff pause every planner with one switch (``AutomationControl``); a paused run starts
nothing, and ``upcoming`` still answers, marked as paused.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from django.db import transaction
from django.utils import timezone

from clusters.models import AutomationControl, FreezePeriod
from portal.audit import Actor, record

logger = logging.getLogger("clusters.lifecycle")


@dataclass(frozen=True)
class Upcoming:
    """One automatic action a planner will take: on which cluster, when, what and why."""

    cluster_id: int
    tenant_id: int
    at: datetime
    kind: str  # "upgrade", "hibernate", "wake", "expire", "reminder", ...
    summary: str  # what a person reads ("Upgrade to v1.33", "Wake: md0 back to 2–5 nodes")
    reason: str  # "window", "schedule", "expiry"


class Planner(Protocol):
    name: str

    def plan(self, now: datetime) -> int:
        """Start what is due at ``now``; how many actions it started. Safe to repeat."""

    def upcoming(self, cluster_ids: Iterable[int] | None, now: datetime,
                 until: datetime) -> list[Upcoming]:
        """What it will do between ``now`` and ``until`` (for the clusters named, or all)."""


_planners: list[Planner] = []


def register(planner: Planner) -> None:
    if all(existing.name != planner.name for existing in _planners):
        _planners.append(planner)


def planners() -> tuple[Planner, ...]:
    return tuple(_planners)


def control() -> AutomationControl:
    found = AutomationControl.objects.filter(pk=1).first()
    return found if found is not None else AutomationControl(pk=1)


def paused() -> bool:
    return control().paused


def freeze_at(at: datetime) -> FreezePeriod | None:
    """Staff's platform-wide freeze period covering ``at``, if any. No automatic operation
    starts during one: upgrades move to a later window, expired clusters and scheduled sleep
    wait for its end. Waking is the exception (a cluster is never left asleep by a freeze)."""
    return FreezePeriod.objects.filter(starts_at__lte=at, ends_at__gt=at).order_by(
        "-ends_at").first()


def freezes_between(after: datetime, until: datetime) -> list[FreezePeriod]:
    """The freeze periods that overlap ``after``–``until`` (one query, for ``upcoming``)."""
    return list(FreezePeriod.objects.filter(ends_at__gt=after, starts_at__lt=until))


def freeze_end(freezes: list[FreezePeriod], at: datetime) -> datetime | None:
    """When the freeze covering ``at`` ends (the latest end of those covering it), or None."""
    ends = [f.ends_at for f in freezes if f.starts_at <= at < f.ends_at]
    return max(ends) if ends else None


def set_paused(actor: Actor, paused: bool, reason: str = "") -> AutomationControl:
    """Pause (or resume) every automatic action, audited."""
    with transaction.atomic():
        row, _created = AutomationControl.objects.select_for_update().get_or_create(pk=1)
        row.paused, row.reason = paused, reason[:200]
        row.changed_by, row.changed_at = actor.label, timezone.now()
        row.save()
        record(actor, "automation.paused" if paused else "automation.resumed", row,
               changes={"paused": [not paused, paused], "reason": ["", row.reason]})
    return row


def run(now: datetime | None = None) -> dict[str, int]:
    """One pass of every planner (beat, once a minute): what each started. Nothing starts
    while staff paused automation. One planner failing never stops the others."""
    now = now or timezone.now()
    if paused():
        logger.info("lifecycle.paused")
        return {}
    started: dict[str, int] = {}
    for planner in _planners:
        try:
            started[planner.name] = planner.plan(now)
        except Exception:
            logger.exception("lifecycle.planner_failed", extra={"planner": planner.name})
            started[planner.name] = 0
    return started


def upcoming(cluster_ids: Iterable[int] | None, now: datetime,
             until: datetime) -> list[Upcoming]:
    """Every planner's next actions between ``now`` and ``until``, in time order."""
    ids = None if cluster_ids is None else list(cluster_ids)
    found: list[Upcoming] = []
    for planner in _planners:
        found.extend(planner.upcoming(ids, now, until))
    return sorted(found, key=lambda item: (item.at, item.cluster_id, item.kind))
