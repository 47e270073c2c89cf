"""Maintenance windows, upgrade policies and the lifecycle dry run over the API.

``…/clusters/{name}/maintenance/`` reads and sets a cluster's window and upgrade policy (and
shows the automatic upgrade it waits for), ``…/maintenance/postpone/`` postpones that upgrade
once, ``…/maintenance-default/`` is the tenant's default for new clusters, and
``…/clusters/{name}/lifecycle/upcoming/`` answers what automation will do next (every
planner's ``upcoming``: upgrades, and whatever else is registered).
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import lifecycle, maintenance
from clusters.models import WINDOW_MAX_MINUTES, WINDOW_MIN_MINUTES, Cluster, UpgradePolicy
from clusters.web.api.serializers import OperationSerializer
from clusters.web.api.views import WRITES_422, ClusterApiView
from portal.api.base import ApiView
from portal.api.fields import StrictSerializer
from portal.permissions import Perm

TAG = "Maintenance"
UPCOMING_MAX_DAYS = 31
WINDOW_EXAMPLE = {"weekdays": [2], "start_time": "03:00", "duration_minutes": 120,
                  "time_zone": "Europe/Zurich", "upgrade_policy": "keep_current"}


class WindowSerializer(StrictSerializer):
    weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6), min_length=1, max_length=7,
        help_text=_("The days it opens: 0 Monday … 6 Sunday."))
    start_time = serializers.RegexField(
        r"^([01][0-9]|2[0-3]):[0-5][0-9]$", max_length=5,
        error_messages={"invalid": _("Give a start time (HH:MM).")},
        help_text=_("Local start time, HH:MM."))
    duration_minutes = serializers.IntegerField(
        min_value=WINDOW_MIN_MINUTES, max_value=WINDOW_MAX_MINUTES,
        help_text=_("How long it stays open (60 to 720 minutes)."))
    time_zone = serializers.CharField(max_length=64,
                                      help_text=_("An IANA time zone, e.g. Europe/Zurich."))
    upgrade_policy = serializers.ChoiceField(
        choices=UpgradePolicy.choices,
        help_text=_("`manual`, `before_end_of_life` (one minor once the version nears its end "
                    "of life) or `keep_current` (one minor per window up to the newest)."))


class ScheduledUpgradeSerializer(serializers.Serializer):
    from_version = serializers.CharField(help_text=_("The version it runs."))
    to_version = serializers.CharField(help_text=_("The version it will run."))
    starts_at = serializers.DateTimeField(help_text=_("When it starts (UTC)."))
    window_ends_at = serializers.DateTimeField(help_text=_("When its window closes (UTC)."))
    what_rolls = serializers.CharField(help_text=_("What will roll, in words."))
    postponed = serializers.BooleanField(help_text=_("Postponed once already."))
    postpone_to = serializers.ListField(
        child=serializers.DateTimeField(),
        help_text=_("The starts it may be postponed to (at most 14 days later, before the end "
                    "of life)."))


class MaintenanceSerializer(WindowSerializer):
    window_source = serializers.ChoiceField(
        choices=[("cluster", "cluster"), ("tenant", "tenant"), ("platform", "platform")],
        read_only=True,
        help_text=_("Where the window comes from: the cluster's own, the tenant's default or "
                    "the platform's."))
    next_window_starts_at = serializers.DateTimeField(
        read_only=True, allow_null=True, help_text=_("The next opening (UTC)."))
    scheduled_upgrade = ScheduledUpgradeSerializer(
        read_only=True, allow_null=True,
        help_text=_("The automatic upgrade that waits for the window, if any."))


class PostponeSerializer(StrictSerializer):
    to = serializers.DateTimeField(
        required=False,
        help_text=_("One of `postpone_to`; leave out for the next opening."))


class UpcomingSerializer(serializers.Serializer):
    at = serializers.DateTimeField(help_text=_("When (UTC)."))
    kind = serializers.CharField(help_text=_("What: `upgrade`, `hibernate`, `wake`, …"))
    summary = serializers.CharField(help_text=_("In words."))
    reason = serializers.CharField(help_text=_("Why: `window`, `schedule`, `expiry`."))


class UpcomingQuerySerializer(StrictSerializer):
    days = serializers.IntegerField(min_value=1, max_value=UPCOMING_MAX_DAYS, required=False,
                                    help_text=_("How far ahead (1 to 31 days, default 7)."))


class UpcomingListSerializer(serializers.Serializer):
    paused = serializers.BooleanField(
        help_text=_("Staff paused all automation: nothing starts until they resume it."))
    until = serializers.DateTimeField(help_text=_("The end of the horizon (UTC)."))
    upcoming = UpcomingSerializer(many=True, help_text=_("In time order."))


def window_data(setting: maintenance.Setting) -> dict[str, Any]:
    window = setting.window
    return {"weekdays": list(window.weekdays), "start_time": window.start.strftime("%H:%M"),
            "duration_minutes": window.minutes, "time_zone": window.zone,
            "upgrade_policy": setting.policy}


def maintenance_data(cluster: Cluster) -> dict[str, Any]:
    setting = maintenance.setting_of(cluster)
    now = timezone.now()
    opening = maintenance.next_window(setting.window, now)
    upgrade = maintenance.scheduled_for(cluster)
    scheduled = None
    if upgrade is not None:
        scheduled = {
            "from_version": upgrade.from_version, "to_version": upgrade.to_version,
            "starts_at": upgrade.operation.not_before or upgrade.window_start,
            "window_ends_at": upgrade.window_end,
            "what_rolls": maintenance.what_rolls(cluster, upgrade.to_version,
                                                upgrade.from_version),
            "postponed": upgrade.postponed_at is not None,
            "postpone_to": [] if upgrade.postponed_at is not None else
            [start for start, _end in maintenance.postpone_choices(upgrade, setting.window)]}
    return {**window_data(setting), "window_source": setting.source,
            "next_window_starts_at": opening[0] if opening else None,
            "scheduled_upgrade": scheduled}


def parse_window(data: dict[str, Any]) -> maintenance.Window:
    hour, minute = (int(part) for part in data["start_time"].split(":"))
    return maintenance.check_window(data["weekdays"], time(hour, minute),
                                    data["duration_minutes"], data["time_zone"])


class ClusterMaintenanceView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="clusters_maintenance_retrieve", tags=[TAG],
                   summary="Read the maintenance window and upgrade policy",
                   responses=MaintenanceSerializer)
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = self.get_cluster(cluster_name)
        return Response(MaintenanceSerializer(maintenance_data(cluster)).data)

    @extend_schema(
        operation_id="clusters_maintenance_update", tags=[TAG],
        summary="Set the maintenance window and upgrade policy", request=WindowSerializer,
        responses=MaintenanceSerializer,
        examples=[OpenApiExample("Wednesdays 03:00", value=WINDOW_EXAMPLE, request_only=True)],
        description="Automatic operations start only in the window (its local time, DST "
                    "included). An upgrade already scheduled that no longer fits is planned "
                    "anew, and announced again.")
    def put(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(WindowSerializer)
        window = parse_window(data)
        maintenance.do_set_maintenance(self.actor, self.tenant_ctx, cluster_name, window,
                                       data["upgrade_policy"])
        cluster = self.get_cluster(cluster_name)
        return Response(MaintenanceSerializer(maintenance_data(cluster)).data)


class ClusterPostponeView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(
        operation_id="clusters_maintenance_postpone", tags=[TAG],
        summary="Postpone the scheduled automatic upgrade once", request=PostponeSerializer,
        responses=MaintenanceSerializer,
        description="To a later opening of the window, at most 14 days later and never past "
                    "the version's end of life; once per scheduled upgrade.")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(PostponeSerializer)
        maintenance.do_postpone_upgrade(self.actor, self.tenant_ctx, cluster_name,
                                        data.get("to"))
        cluster = self.get_cluster(cluster_name)
        return Response(MaintenanceSerializer(maintenance_data(cluster)).data)


class ClusterUpgradeNowView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(
        operation_id="clusters_maintenance_upgrade_now", tags=[TAG],
        summary="Run the scheduled automatic upgrade now", request=None,
        responses={202: OperationSerializer},
        description="The scheduled upgrade runs at once as your own upgrade (the same checks "
                    "as `…/upgrade/`); the scheduled one is dropped. Answers with the "
                    "operation to poll.")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        operation = maintenance.do_upgrade_now(self.actor, self.tenant_ctx, cluster_name)
        return self.accepted(operation)


class ClusterUpcomingView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(
        operation_id="clusters_lifecycle_upcoming", tags=[TAG],
        summary="What automation will do next (dry run)", parameters=[UpcomingQuerySerializer],
        responses=UpcomingListSerializer,
        description="Every automatic action planned for this cluster within the horizon: "
                    "upgrades in its maintenance window and whatever else automation will do, "
                    "in time order. Nothing is changed.")
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        query = self.parse(UpcomingQuerySerializer, data=request.query_params)
        cluster = self.get_cluster(cluster_name)
        now = timezone.now()
        until = now + timedelta(days=query.get("days", 7))
        items = [{"at": item.at, "kind": item.kind, "summary": item.summary,
                  "reason": item.reason}
                 for item in lifecycle.upcoming([cluster.pk], now, until)]
        return Response(UpcomingListSerializer(
            {"paused": lifecycle.paused(), "until": until, "upcoming": items}).data)


class TenantMaintenanceDefaultView(ApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.TENANT_MANAGE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="tenant_maintenance_default_retrieve", tags=[TAG],
                   summary="Read the tenant's default window for new clusters",
                   responses=WindowSerializer)
    def get(self, request: Request, tenant_slug: str) -> Response:
        row = maintenance.tenant_default(self.tenant_ctx.tenant.pk)
        setting = (maintenance.Setting(maintenance.window_of(row), row.upgrade_policy, "tenant")
                   if row is not None else maintenance.Setting(
                       maintenance.platform_default(), UpgradePolicy.MANUAL, "platform"))
        return Response(WindowSerializer(window_data(setting)).data)

    @extend_schema(operation_id="tenant_maintenance_default_update", tags=[TAG],
                   summary="Set the tenant's default window for new clusters",
                   request=WindowSerializer, responses=WindowSerializer,
                   examples=[OpenApiExample("Wednesdays 03:00", value=WINDOW_EXAMPLE,
                                            request_only=True)],
                   description="Owners and admins. Clusters that exist keep the window they "
                               "have.")
    def put(self, request: Request, tenant_slug: str) -> Response:
        data = self.parse(WindowSerializer)
        row = maintenance.do_set_tenant_default(self.actor, self.tenant_ctx, parse_window(data),
                                                data["upgrade_policy"])
        setting = maintenance.Setting(maintenance.window_of(row), row.upgrade_policy, "tenant")
        return Response(WindowSerializer(window_data(setting)).data)
