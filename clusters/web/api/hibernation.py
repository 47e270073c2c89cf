"""Hibernation over the API: the state and the schedule of a cluster, hibernate now and wake
now (``clusters.hibernation_actions``). A node-group change sent while the cluster hibernates
answers ``200`` with the state (``ClusterApiView.handle_exception``).

Mounted under ``/api/v1/tenants/<slug>/`` by ``clusters.web.api.urls``.
"""

from __future__ import annotations

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import actions
from clusters import hibernation_actions as hib
from clusters.models import Hibernation, Operation
from clusters.web.api import serializers as s
from clusters.web.api.hibernation_data import (
    HibernationSerializer,
    ScheduleSerializer,
    hibernation_data,
)
from clusters.web.api.views import TAG_CLUSTERS, ClusterApiView
from portal.permissions import Perm

TAG_HIBERNATION = "Hibernation"


def _operation(held: Hibernation, field: str) -> Operation:
    operation = getattr(held, field)
    if operation is None:  # set in the transaction that made the row
        raise Http404
    return operation


class HibernationView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.CLUSTERS_CHANGE}
    problem_statuses = {"PUT": (422,)}

    @extend_schema(operation_id="clusters_hibernation_retrieve", tags=[TAG_HIBERNATION],
                   summary="Hibernation state and schedule", responses=HibernationSerializer)
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        return Response(hibernation_data(cluster))

    @extend_schema(
        operation_id="clusters_hibernation_update", tags=[TAG_HIBERNATION],
        summary="Set the hibernation schedule", request=ScheduleSerializer,
        responses=HibernationSerializer,
        examples=[OpenApiExample("preset", request_only=True, value={
            "time_zone": "Europe/Zurich", "preset": "nights_weekends"}),
            OpenApiExample("own ranges", request_only=True, value={
                "time_zone": "Europe/Zurich", "ranges": [
                    {"day": 0, "start": "20:00", "end": "08:00"},
                    {"day": 5, "start": "00:00", "end": "00:00"}]})],
        description="Time ranges per weekday in an IANA time zone, or a preset. It acts from "
                    "its next boundary on, as the system (reason `schedule`).")
    def put(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(ScheduleSerializer)
        hib.do_set_schedule(self.actor, self.tenant_ctx, cluster_name,
                            time_zone=data["time_zone"], preset=data["preset"],
                            ranges=[dict(r) for r in data["ranges"]],
                            enabled=data["enabled"])
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        return Response(hibernation_data(cluster))


class HibernateView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = {"POST": (422,)}

    @extend_schema(operation_id="clusters_hibernate", tags=[TAG_HIBERNATION, TAG_CLUSTERS],
                   summary="Hibernate now", request=None,
                   responses={202: s.OperationSerializer},
                   description="Every node group goes to 0 nodes (a scale operation); each "
                               "group's limits are kept and come back at the wake. The "
                               "control plane keeps running and stays billed.")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        held = hib.do_hibernate(self.actor, self.tenant_ctx, cluster_name)
        return self.accepted(_operation(held, "hibernate_operation"))


class WakeView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = {"POST": (422,)}

    @extend_schema(operation_id="clusters_wake", tags=[TAG_HIBERNATION, TAG_CLUSTERS],
                   summary="Wake now", request=None,
                   responses={202: s.OperationSerializer},
                   description="Each node group gets back its exact limits from before the "
                               "hibernation, with the changes made meanwhile.")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        held = hib.do_wake(self.actor, self.tenant_ctx, cluster_name)
        return self.accepted(_operation(held, "wake_operation"))
