"""What the API says of a cluster's hibernation (``clusters.web.api.hibernation``), also the
answer to a node-group change sent while it hibernates (``deferred_response``: ``200``, what
waking restores changed, no operation)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers
from rest_framework.response import Response

from billing.models import CURRENCY
from billing.queries import hibernation_savings_mtd
from clusters import hibernation, lifecycle
from clusters import hibernation_actions as hib
from clusters import hibernation_schedule as schedules
from clusters.models import Cluster

UPCOMING_DAYS = 7


class RangeSerializer(serializers.Serializer):
    day = serializers.IntegerField(min_value=0, max_value=6,
                                   help_text=_("The weekday it starts: 0 Monday … 6 Sunday."))
    start = serializers.RegexField(r"^([01]\d|2[0-3]):[0-5]\d$", max_length=5,
                                   help_text=_("Local time it falls asleep, `HH:MM`."))
    end = serializers.RegexField(r"^([01]\d|2[0-3]):[0-5]\d$", max_length=5, help_text=_(
        "Local time it wakes, `HH:MM`; not after `start`: the next day."))


class ScheduleSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(default=True, help_text=_(
        "Whether the planner follows it."))
    time_zone = serializers.CharField(max_length=64, help_text=_(
        "An IANA time zone, e.g. `Europe/Zurich`; ranges are its local times (DST-correct)."))
    preset = serializers.ChoiceField(
        choices=[(p.key, str(p.label)) for p in schedules.PRESETS], allow_blank=True,
        default="", help_text=_("A preset fills the ranges: `nights_weekends`, `nights`, "
                                "`weekends`, `office_hours`."))
    ranges = serializers.ListField(child=RangeSerializer(), required=False, default=list,
                                   max_length=schedules.MAX_RANGES,
                                   help_text=_("When it sleeps (ignored with a preset)."))


class ScheduleStateSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text=_("Whether the planner follows it."))
    time_zone = serializers.CharField(help_text=_("Its IANA time zone."))
    preset = serializers.CharField(help_text=_("The preset that filled it; empty for own "
                                               "ranges."))
    ranges = RangeSerializer(many=True, help_text=_("When it sleeps."))


class RestoreGroupSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("The node group."))
    min_replicas = serializers.IntegerField(help_text=_("The minimum waking restores."))
    max_replicas = serializers.IntegerField(help_text=_("The maximum waking restores."))


class HibernationUpcomingSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text=_("When (UTC)."))
    kind = serializers.ChoiceField(choices=[("hibernate", "hibernate"), ("wake", "wake")],
                                   help_text=_("What happens."))
    summary = serializers.CharField(help_text=_("In words."))


class HibernationSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=[("awake", "awake"), ("hibernating", "hibernating"), ("waking", "waking")],
        help_text=_("`hibernating`: every node group at 0 nodes; `waking`: the limits are "
                    "being restored (a failed wake is retried)."))
    since = serializers.DateTimeField(allow_null=True,
                                      help_text=_("Hibernating since (UTC); null when awake."))
    wakes_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When it wakes by its schedule (or the next wake retry)."))
    restore = RestoreGroupSerializer(many=True, help_text=_(
        "While it hibernates: the node groups and limits waking restores. A scale, add or "
        "remove of a node group sent meanwhile changes these, not the live spec."))
    schedule = ScheduleStateSerializer(allow_null=True, help_text=_("Its schedule, if any."))
    saved_this_month = serializers.DecimalField(max_digits=14, decimal_places=2, help_text=_(
        "What hibernation saved this month so far: the workers at the minimum size waking "
        "restores, over the hours asleep, at the price book's prices (before VAT)."))
    currency = serializers.CharField(help_text=_("`CHF`."))
    upcoming = HibernationUpcomingSerializer(many=True, help_text=_(
        "The schedule's next actions within 7 days."))
    detail = serializers.CharField(required=False, help_text=_(
        "After a node-group change while it hibernates: what changed at the wake."))


def hibernation_data(cluster: Cluster, detail: str = "") -> dict[str, Any]:
    now = timezone.now()
    held = hibernation.open_hibernation(cluster.pk)
    row = hib.schedule_of(cluster)
    upcoming = lifecycle.upcoming([cluster.pk], now, now + timedelta(days=UPCOMING_DAYS))
    saved = hibernation_savings_mtd(cluster.tenant, cluster_id=cluster.pk, now=now)
    data: dict[str, Any] = {
        "state": "awake" if held is None else held.state,
        "since": held.started_at if held else None,
        "wakes_at": hib.wakes_at(held, now) if held else None,
        "restore": [{"name": g["name"], "min_replicas": g["min_replicas"],
                     "max_replicas": g["max_replicas"]} for g in held.restore] if held else [],
        "schedule": None if row is None else {
            "enabled": row.enabled, "time_zone": row.time_zone, "preset": row.preset,
            "ranges": row.ranges},
        "saved_this_month": saved.get(cluster.pk, 0),
        "currency": CURRENCY,
        "upcoming": [{"at": u.at, "kind": u.kind, "summary": u.summary} for u in upcoming
                     if u.kind in ("hibernate", "wake") and u.reason == hib.SCHEDULE],
    }
    if detail:
        data["detail"] = detail
    return HibernationSerializer(data).data


def deferred_response(cluster: Cluster, deferred: hibernation.Deferred) -> Response:
    """The answer to a node-group change while the cluster hibernates (200, no operation)."""
    return Response(hibernation_data(cluster, deferred.summary), status=200)


