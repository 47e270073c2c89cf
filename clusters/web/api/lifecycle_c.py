"""Expiry, cluster templates and deleted clusters over the API (issue 16, part C).

Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` with the cluster endpoints. Each handler
is access → input → action → answer, through ``clusters.expiry``,
``clusters.cluster_templates`` and ``clusters.deleted``; other tenants' objects answer 404.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from billing.periods import Period
from billing.queries import cluster_cost_in_month
from clusters import actions, cluster_templates, deleted, expiry
from clusters.models import (
    EXPIRY_MAX_HOURS,
    EXPIRY_MIN_HOURS,
    TEMPLATE_DESCRIPTION_MAX,
    TEMPLATE_NAME_MAX,
    Cluster,
    ClusterExpiry,
    ClusterTemplate,
)
from clusters.web.api import serializers as s
from clusters.web.api.views import WRITES_422, ClusterApiView
from portal.api.problems import ApiProblem
from portal.permissions import Perm

TAG_EXPIRY = "Expiry"
TAG_TEMPLATES = "Cluster templates"
TAG_DELETED = "Deleted clusters"


# --------------------------------------------------------------------------- serializers


class ExpirySerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField(allow_null=True,
                                           help_text=_("When the portal deletes the cluster "
                                                       "(null: never)."))
    set_by = serializers.CharField(allow_null=True, help_text=_("Who set the expiry."))
    set_at = serializers.DateTimeField(allow_null=True, help_text=_("When it was set."))
    expired = serializers.BooleanField(help_text=_("The expiry came and the deletion started."))
    max_hours = serializers.IntegerField(allow_null=True,
                                         help_text=_("The tenant's maximum expiry in hours "
                                                     "(null: none)."))


class ExpiryInputSerializer(serializers.Serializer):
    expires_at = serializers.DateTimeField(
        required=False, help_text=_("When to delete the cluster (1 hour to 90 days ahead, "
                                    "with its time zone)."))
    after_hours = serializers.IntegerField(
        required=False, min_value=EXPIRY_MIN_HOURS, max_value=EXPIRY_MAX_HOURS,
        help_text=_("Or: delete after this many hours (1 to 2160)."))


class ExtendSerializer(serializers.Serializer):
    hours = serializers.IntegerField(min_value=1, max_value=EXPIRY_MAX_HOURS,
                                     help_text=_("Hours to add to the expiry (1 to 2160)."))


class ExpiryPolicySerializer(serializers.Serializer):
    max_hours = serializers.IntegerField(
        allow_null=True, min_value=EXPIRY_MIN_HOURS, max_value=EXPIRY_MAX_HOURS,
        help_text=_("Members must give new clusters an expiry within this many hours "
                    "(null: no maximum)."))


class TemplateSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The template's id."))
    name = serializers.CharField(help_text=_("Its name, unique in the tenant."))
    description = serializers.CharField(help_text=_("What it is for."))
    version = serializers.SerializerMethodField(help_text=_("Its Kubernetes version."))
    spec = serializers.JSONField(help_text=_("The saved configuration (no name, host or "
                                             "single sign-on access)."))
    source_cluster = serializers.CharField(help_text=_("The cluster it was saved from."))
    created_by = serializers.CharField(help_text=_("Who saved it."))
    created_at = serializers.DateTimeField(help_text=_("When it was saved."))

    def get_version(self, template: ClusterTemplate) -> str:
        return str(template.spec.get("version", ""))


class TemplateCreateSerializer(serializers.Serializer):
    cluster = serializers.CharField(max_length=63,
                                    help_text=_("The cluster whose configuration to save."))
    name = serializers.CharField(max_length=TEMPLATE_NAME_MAX,
                                 help_text=_("The template's name (at most 60 characters)."))
    description = serializers.CharField(max_length=TEMPLATE_DESCRIPTION_MAX, required=False,
                                        allow_blank=True,
                                        help_text=_("At most 500 characters."))


class TemplateUpdateSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=TEMPLATE_NAME_MAX, required=False,
                                 help_text=_("A new name (at most 60 characters)."))
    description = serializers.CharField(max_length=TEMPLATE_DESCRIPTION_MAX, required=False,
                                        allow_blank=True,
                                        help_text=_("A new description (at most 500)."))


class FromTemplateSerializer(ExpiryInputSerializer):
    name = serializers.CharField(max_length=63, help_text=_("The new cluster's name."))
    host = serializers.CharField(max_length=253, required=False, allow_blank=True,
                                 help_text=_("API host name; empty for the default."))


class DeletedClusterSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The deleted cluster's id."))
    name = serializers.CharField(help_text=_("Its name."))
    version = serializers.CharField(help_text=_("Its last Kubernetes version."))
    created_at = serializers.DateTimeField(help_text=_("When it was created."))
    deleted_at = serializers.DateTimeField(help_text=_("When the platform removed it."))
    reason = serializers.SerializerMethodField(
        help_text=_("`expiry`, `person`, `vanished` (the platform lost it; staff were "
                    "alerted) or `cancelled`."))
    reason_text = serializers.SerializerMethodField(help_text=_("Why it went, in words."))
    deleted_by = serializers.SerializerMethodField(help_text=_("Who deleted it, if known."))

    def _why(self, cluster: Cluster) -> deleted.Departure:
        # The page's answers are read together (``departures``), once, for its rows.
        known: dict[int, deleted.Departure] | None = getattr(self.root, "_departures", None)
        if known is None or cluster.pk not in known:
            rows = getattr(self.root, "instance", None)
            batch = list(rows) if isinstance(rows, list) else [cluster]
            known = deleted.departures(batch if cluster in batch else [cluster])
            if self.root is not None:
                self.root._departures = known  # type: ignore[attr-defined]
        return known[cluster.pk]

    def get_reason(self, cluster: Cluster) -> str:
        return self._why(cluster).kind

    def get_reason_text(self, cluster: Cluster) -> str:
        return self._why(cluster).sentence

    def get_deleted_by(self, cluster: Cluster) -> str | None:
        return self._why(cluster).who or None


class DeletedClusterDetailSerializer(DeletedClusterSerializer):
    last_month = serializers.CharField(help_text=_("The month it was deleted in (YYYY-MM)."))
    last_month_cost = serializers.DecimalField(
        max_digits=14, decimal_places=2, allow_null=True,
        help_text=_("What it cost in that month, CHF before VAT (null for roles that do not "
                    "see costs)."))
    currency = serializers.CharField(help_text=_("Always `CHF`."))
    events = s.ClusterEventSerializer(many=True, help_text=_("Its timeline, newest first."))


def _expiry_body(row: ClusterExpiry | None, limit: int | None) -> dict[str, Any]:
    return {"expires_at": row.expires_at if row else None,
            "set_by": row.set_by if row else None, "set_at": row.set_at if row else None,
            "expired": bool(row and row.expired_at), "max_hours": limit}


def _chosen(data: dict[str, Any]) -> Any:
    if "expires_at" not in data and "after_hours" not in data:
        return None
    return expiry.resolve(after_hours=data.get("after_hours"), at=data.get("expires_at"))


# --------------------------------------------------------------------------- expiry


class ClusterExpiryView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.CLUSTERS_CHANGE,
             "DELETE": Perm.MEMBERS_MANAGE}
    problem_statuses = {"PUT": (422,)}

    def _answer(self, cluster: Cluster) -> Response:
        row = ClusterExpiry.objects.filter(cluster=cluster).first()
        return Response(ExpirySerializer(_expiry_body(row, expiry.policy_of(
            self.tenant_ctx.tenant))).data)

    @extend_schema(operation_id="clusters_expiry_retrieve", tags=[TAG_EXPIRY],
                   summary="Read a cluster's expiry", responses=ExpirySerializer)
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        return self._answer(actions.access_cluster(self.tenant_ctx, cluster_name))

    @extend_schema(
        operation_id="clusters_expiry_set", tags=[TAG_EXPIRY], summary="Set or move the expiry",
        request=ExpiryInputSerializer, responses=ExpirySerializer,
        examples=[OpenApiExample("two weeks", value={"after_hours": 336}, request_only=True)],
        description="At the expiry the portal deletes the cluster through the normal delete "
                    "operation (actor `system (expiry)`); reminders go out 24 hours and 1 "
                    "hour before (`cluster.expiring`). Give `expires_at` or `after_hours`. A "
                    "first expiry or an earlier one schedules a deletion and needs an owner or "
                    "admin; a later one (an extension) any member who may change clusters. "
                    "Always within the tenant's maximum.")
    def put(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(ExpiryInputSerializer)
        at = _chosen(data)
        if at is None:
            raise ValidationError({"expires_at": ValidationError(
                _("Give expires_at or after_hours."), code="required")})
        expiry.do_set_cluster_expiry(self.actor, self.tenant_ctx, cluster_name, at)
        return self._answer(actions.access_cluster(self.tenant_ctx, cluster_name))

    @extend_schema(operation_id="clusters_expiry_destroy", tags=[TAG_EXPIRY],
                   summary="Remove the expiry", request=None,
                   responses={200: ExpirySerializer},
                   description="Owners and admins: the cluster is no longer deleted by itself.")
    def delete(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        expiry.do_remove_cluster_expiry(self.actor, self.tenant_ctx, cluster_name)
        return self._answer(actions.access_cluster(self.tenant_ctx, cluster_name))


class ClusterExpiryExtendView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="clusters_expiry_extend", tags=[TAG_EXPIRY],
                   summary="Extend the expiry", request=ExtendSerializer,
                   responses=ExpirySerializer,
                   examples=[OpenApiExample("a day", value={"hours": 24}, request_only=True)],
                   description="Moves the expiry `hours` later, within the tenant's maximum "
                               "(counted from now).")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(ExtendSerializer)
        row = expiry.do_extend_cluster_expiry(self.actor, self.tenant_ctx, cluster_name,
                                              data["hours"])
        return Response(ExpirySerializer(_expiry_body(row, expiry.policy_of(
            self.tenant_ctx.tenant))).data)


class ExpiryPolicyView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.TENANT_MANAGE}
    problem_statuses = {"PUT": (422,)}

    @extend_schema(operation_id="expiry_policy_retrieve", tags=[TAG_EXPIRY],
                   summary="Read the tenant's maximum expiry", responses=ExpiryPolicySerializer)
    def get(self, request: Request, tenant_slug: str) -> Response:
        return Response({"max_hours": expiry.policy_of(self.tenant_ctx.tenant)})

    @extend_schema(operation_id="expiry_policy_update", tags=[TAG_EXPIRY],
                   summary="Set the tenant's maximum expiry", request=ExpiryPolicySerializer,
                   responses=ExpiryPolicySerializer,
                   description="Owners and admins. With a maximum, members must give every "
                               "cluster they create an expiry within it.")
    def put(self, request: Request, tenant_slug: str) -> Response:
        data = self.parse(ExpiryPolicySerializer)
        row = expiry.do_set_expiry_policy(self.actor, self.tenant_ctx, data["max_hours"])
        return Response({"max_hours": row.max_hours})


# --------------------------------------------------------------------------- templates


class TemplateListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422
    cursor_ordering = "id"

    @extend_schema(operation_id="cluster_templates_list", tags=[TAG_TEMPLATES],
                   summary="List cluster templates", responses=TemplateSerializer(many=True))
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.page(cluster_templates.templates_of(self.tenant_ctx), TemplateSerializer)

    @extend_schema(
        operation_id="cluster_templates_create", tags=[TAG_TEMPLATES],
        summary="Save a cluster as a template", request=TemplateCreateSerializer,
        responses={201: TemplateSerializer},
        examples=[OpenApiExample("dev", request_only=True,
                                 value={"cluster": "dev-1", "name": "small dev",
                                        "description": "two small nodes"})],
        description="The cluster's configuration without its name, API host and single "
                    "sign-on access, visible to the tenant. At most 50 per tenant.")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = self.parse(TemplateCreateSerializer)
        template = cluster_templates.do_save_template(
            self.actor, self.tenant_ctx, data["cluster"], name=data["name"],
            description=data.get("description", ""))
        return Response(TemplateSerializer(template).data, status=201)


class TemplateDetailView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PATCH": Perm.CLUSTERS_CHANGE,
             "DELETE": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="cluster_templates_retrieve", tags=[TAG_TEMPLATES],
                   summary="Read a cluster template", responses=TemplateSerializer)
    def get(self, request: Request, tenant_slug: str, template_id: int) -> Response:
        return Response(TemplateSerializer(cluster_templates.access_template(
            self.tenant_ctx, template_id)).data)

    @extend_schema(operation_id="cluster_templates_update", tags=[TAG_TEMPLATES],
                   summary="Rename a template or change its description",
                   request=TemplateUpdateSerializer, responses=TemplateSerializer)
    def patch(self, request: Request, tenant_slug: str, template_id: int) -> Response:
        data = self.parse(TemplateUpdateSerializer)
        if not data:
            raise ApiProblem("invalid-request", str(_("Send a name or a description.")))
        current = cluster_templates.access_template(self.tenant_ctx, template_id)
        template = cluster_templates.do_update_template(
            self.actor, self.tenant_ctx, current.pk, name=data.get("name", current.name),
            description=data.get("description", current.description))
        return Response(TemplateSerializer(template).data)

    @extend_schema(operation_id="cluster_templates_destroy", tags=[TAG_TEMPLATES],
                   summary="Delete a template", request=None, responses={204: None})
    def delete(self, request: Request, tenant_slug: str, template_id: int) -> Response:
        cluster_templates.do_delete_template(self.actor, self.tenant_ctx, template_id)
        return Response(status=204)


class TemplateUseView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(
        operation_id="cluster_templates_create_cluster", tags=[TAG_TEMPLATES],
        summary="Create a cluster from a template", request=FromTemplateSerializer,
        responses={201: s.ClusterSerializer},
        examples=[OpenApiExample("feature branch", request_only=True,
                                 value={"name": "feature-42", "after_hours": 72})],
        description="The template's configuration with the name (and host) given, judged "
                    "again against the platform's schema, offerings and quota like any "
                    "creation. A template whose version reached its end of life is refused "
                    "(422, `version`) with the next version named: create the cluster with "
                    "`POST …/clusters/` instead. An expiry may be given as on the cluster.")
    def post(self, request: Request, tenant_slug: str, template_id: int) -> Response:
        data = self.parse(FromTemplateSerializer)
        cluster = cluster_templates.do_create_from_template(
            self.actor, self.tenant_ctx, template_id, name=data["name"],
            host=data.get("host", ""), expires_at=_chosen(data),
            idempotency_key=self.idempotency_key)
        body = s.ClusterSerializer(self.get_cluster(cluster.name),
                                   context=self.serializer_context()).data
        return Response(body, status=201, headers={"Location": body["url"]})


# --------------------------------------------------------------------------- deleted clusters


class DeletedClusterListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}
    cursor_ordering = ("-deleted_at", "-id")

    @extend_schema(operation_id="deleted_clusters_list", tags=[TAG_DELETED],
                   summary="List deleted clusters", responses=DeletedClusterSerializer(many=True),
                   description="Clusters deleted in the last 90 days, newest first, with why "
                               "each went. Older ones are kept for billing only.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.page(deleted.deleted_clusters(self.tenant_ctx.tenant),
                         DeletedClusterSerializer)


class DeletedClusterDetailView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(operation_id="deleted_clusters_retrieve", tags=[TAG_DELETED],
                   summary="Read a deleted cluster", responses=DeletedClusterDetailSerializer,
                   description="Why it went, its timeline and its cost in its last month; "
                               "read-only (no kubeconfig).")
    def get(self, request: Request, tenant_slug: str, cluster_id: int) -> Response:
        ctx = self.tenant_ctx
        cluster = deleted.access_deleted_cluster(ctx, cluster_id)
        assert cluster.deleted_at is not None
        period = Period.of(cluster.deleted_at)
        cost = cluster_cost_in_month(ctx.tenant, cluster.pk, period, as_of=cluster.deleted_at) \
            if ctx.can(Perm.COSTS_VIEW) else None
        body = dict(DeletedClusterSerializer(cluster).data)
        body.update(last_month=f"{period.start:%Y-%m}",
                    last_month_cost=None if cost is None else f"{cost:.2f}", currency="CHF",
                    events=s.ClusterEventSerializer(cluster.events.all()[:200], many=True).data)
        return Response(body)
