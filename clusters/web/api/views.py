"""Clusters, node groups, operations, events, kubeconfigs and manifests over the API.

Each handler is access → input → action → answer. The actions (``clusters.actions``) check
rights, platform rules and quota and do the writing; a write that starts a change answers
``202 Accepted`` with the operation to poll.
"""

from __future__ import annotations

from typing import Any

from allauth.core.exceptions import ReauthenticationRequired
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpResponse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import actions, expiry, hibernation, platform_quota
from clusters.models import Cluster, ClusterEvent, NodeGroup, NodePool, Operation
from clusters.platform_release import shown_dialect
from clusters.web import kubeconfig as kubeconfigs
from clusters.web.api import serializers as s
from clusters.web.api.catalog import ADDON_API_KEYS
from clusters.web.api.hibernation_data import HibernationSerializer, deferred_response
from cozystack.gateway import NotFound
from cozystack.manifests import render_kubernetes
from cozystack.specs import ClusterSpec
from portal.api.authentication import request_token
from portal.api.base import ApiView
from portal.api.idempotency import HEADER as IDEMPOTENCY_HEADER
from portal.api.problems import ApiProblem, Path
from portal.api.renderers import YamlFileRenderer
from portal.permissions import Perm

TAG_CLUSTERS = "Clusters"
TAG_GROUPS = "Node groups"
TAG_OPERATIONS = "Operations"
WRITES_422 = {"POST": (422,), "PUT": (422,), "PATCH": (422,)}

NODE_GROUP_EXAMPLE = {"name": "gpu", "instance_type": "u1.2xlarge", "min_replicas": 1,
                      "max_replicas": 2, "disk_gib": 100, "roles": [],
                      "gpu_model": "nvidia.com/AD102GL_L40S", "gpus_per_node": 1}
CREATE_EXAMPLE = {
    "name": "prod-eu", "version": "v1.34", "storage_class": "replicated",
    "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                     "max_replicas": 4, "disk_gib": 50,
                     "roles": ["ingress-nginx"]}],
    "addons": {"cert_manager": {"enabled": True},
               "ingress_nginx": {"enabled": True, "expose_method": "Proxied",
                                 "hosts": ["app.example.com"]}},
}


def cluster_queryset(ctx: Any) -> QuerySet[Cluster]:
    """The tenant's live clusters with what their representation needs, in four queries."""
    return (
        Cluster.objects.for_tenant(ctx.tenant).live().select_related("tenant")
        .prefetch_related(
            Prefetch("node_groups", to_attr="api_groups",
                     queryset=NodeGroup.objects.filter(removed_at__isnull=True)
                     .order_by("position", "name")),
            Prefetch("node_pools", to_attr="api_pools",
                     queryset=NodePool.objects.filter(removed_at__isnull=True)
                     .order_by("name")),
            Prefetch("operations", to_attr="api_active_operations",
                     queryset=Operation.objects.filter(state__in=Operation.ACTIVE_STATES)
                     .order_by("-created_at")),
        )
    )


def cluster_error_path(tokens: Path, code: str | None) -> Path:
    """Action error paths in the API's words: add-on keys in snake_case, GPUs by field."""
    if len(tokens) >= 2 and tokens[0] == "addons" and isinstance(tokens[1], str):
        return ["addons", ADDON_API_KEYS.get(tokens[1], tokens[1]), *tokens[2:]]
    if len(tokens) >= 3 and tokens[0] == "node_groups" and tokens[2] == "gpus":
        field = "gpus_per_node" if code == "too_many" else "gpu_model"
        return [*tokens[:2], field, *tokens[3:]]
    return tokens


class ClusterApiView(ApiView):
    group_index: int | None = None  # set by node-group endpoints: whose errors are "ours"

    def rewrite_error_path(self, tokens: Path, code: str | None) -> Path:
        tokens = cluster_error_path(tokens, code)
        if len(tokens) >= 3 and tokens[0] == "node_groups" and tokens[2] == "disk_gib" and \
                isinstance(tokens[1], int) and self._disk_by_former_name(tokens[1]):
            tokens = [*tokens[:2], "ephemeral_storage_gib", *tokens[3:]]
        if (self.group_index is not None and len(tokens) >= 3 and tokens[0] == "node_groups"
                and tokens[1] == self.group_index):
            return tokens[2:]
        return tokens

    def _disk_by_former_name(self, index: int) -> bool:
        """The request gave the disk of node group ``index`` as ``ephemeral_storage_gib``
        (errors then name the field the client sent)."""
        body = self.request.data if isinstance(self.request.data, dict) else {}
        if self.group_index is not None:
            group = body if index == self.group_index else {}
        else:
            groups = body.get("node_groups")
            group = groups[index] if isinstance(groups, list) and index < len(groups) else {}
        return isinstance(group, dict) and "ephemeral_storage_gib" in group and \
            "disk_gib" not in group

    @property
    def idempotency_key(self) -> str:
        return self.request.headers.get(IDEMPOTENCY_HEADER, "")

    def get_cluster(self, name: str) -> Cluster:
        cluster = cluster_queryset(self.tenant_ctx).filter(name=name).first()
        if cluster is None:
            raise Http404
        return cluster

    def accepted(self, operation: Operation, status: int = 202, *,
                 before: ClusterSpec | None = None,
                 node_counts: dict[str, int] | None = None) -> Response:
        """The operation to poll; with ``before`` (the spec the change started from) also
        the platform quota's warnings about the nodes the change starts."""
        operation = Operation.objects.select_related("cluster", "requested_by").get(
            pk=operation.pk)
        data = dict(s.OperationSerializer(operation, context=self.serializer_context()).data)
        if before is not None:
            data["platform_quota_warnings"] = self.quota_warnings(
                before, operation.cluster.to_spec(), node_counts)
        return Response(data, status=status,
                        headers={"Location": data["url"]} if status == 202 else None)

    def quota_warnings(self, before: ClusterSpec | None, after: ClusterSpec,
                       node_counts: dict[str, int] | None = None) -> list[dict[str, Any]]:
        return [w.as_data() for w in platform_quota.quota_warnings(
            self.tenant_ctx.tenant.namespace, before, after, node_counts=node_counts)]

    def cluster_response(self, cluster: Cluster) -> Response:
        return Response(s.ClusterSerializer(cluster, context=self.serializer_context()).data)

    def handle_exception(self, exc: Exception) -> Any:
        if isinstance(exc, hibernation.ChangeDeferred):  # committed; what waking restores
            cluster = actions.access_cluster(self.tenant_ctx, self.kwargs["cluster_name"])
            return deferred_response(cluster, exc.deferred)
        return super().handle_exception(exc)


# --------------------------------------------------------------------------- clusters


class ClusterListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "POST": Perm.CLUSTERS_CHANGE}
    cursor_ordering = "name"
    problem_statuses = WRITES_422

    @extend_schema(
        operation_id="clusters_list", tags=[TAG_CLUSTERS], summary="List clusters",
        parameters=[s.ClusterFilterSerializer], responses=s.ClusterSerializer(many=True),
        description="The tenant's clusters by name, with their node groups, add-ons, state "
                    "and the change in flight. Filter by `phase`, `version` or a name part.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        filters = self.parse(s.ClusterFilterSerializer, data=request.query_params)
        queryset = cluster_queryset(self.tenant_ctx)
        if "phase" in filters:
            queryset = queryset.filter(phase=filters["phase"])
        if "version" in filters:
            queryset = queryset.filter(version=filters["version"])
        if filters.get("search"):
            queryset = queryset.filter(name__contains=filters["search"].lower())
        return self.page(queryset, s.ClusterSerializer)

    @extend_schema(
        operation_id="clusters_create", tags=[TAG_CLUSTERS], summary="Create a cluster",
        request=s.ClusterCreateSerializer, responses={201: s.ClusterCreatedSerializer},
        examples=[OpenApiExample("two add-ons", value=CREATE_EXAMPLE, request_only=True)],
        description="Checks the spec against the platform rules and the tenant quota, records "
                    "the cluster and queues its creation. The answer's `current_operation` is "
                    "the operation to poll. Send an `Idempotency-Key` so that a retry cannot "
                    "create a second cluster.")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = self.parse(s.ClusterCreateSerializer)
        ctx = self.tenant_ctx
        spec = s.create_spec(data, ctx.tenant.namespace)
        expires_at = expiry.resolve(after_hours=data.get("after_hours"),
                                    at=data.get("expires_at")) \
            if "after_hours" in data or "expires_at" in data else None
        cluster = expiry.do_create_cluster(self.actor, ctx, spec, expires_at=expires_at,
                                           idempotency_key=self.idempotency_key)
        body = dict(s.ClusterSerializer(self.get_cluster(cluster.name),
                                        context=self.serializer_context()).data)
        body["platform_quota_warnings"] = self.quota_warnings(None, spec)
        return Response(body, status=201, headers={"Location": body["url"]})


class ClusterDetailView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.CLUSTERS_CHANGE,
             "PATCH": Perm.CLUSTERS_CHANGE, "DELETE": Perm.CLUSTERS_DELETE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="clusters_retrieve", tags=[TAG_CLUSTERS],
                   summary="Read a cluster", responses=s.ClusterSerializer)
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        return self.cluster_response(self.get_cluster(cluster_name))

    @extend_schema(
        operation_id="clusters_replace", tags=[TAG_CLUSTERS], summary="Replace the configuration",
        request=s.ClusterReplaceSerializer, responses={202: s.OperationSerializer},
        description="Brings the cluster to this configuration as a whole. The name, storage "
                    "class and host are kept (they cannot change); add-ons left out are turned "
                    "off, `auto_repair` left out is the platform's default, and `oidc_users` "
                    "left out gives nobody access (a change of access needs an owner or "
                    "admin). Answers with the operation that applies it.")
    def put(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(s.ClusterReplaceSerializer)
        cluster = self.get_cluster(cluster_name)
        spec = s.replace_spec(data, cluster.to_spec(s.live_groups(cluster)))
        operation = actions.do_update_cluster(self.actor, self.tenant_ctx, cluster_name, spec,
                                              idempotency_key=self.idempotency_key)
        return self.accepted(operation)

    @extend_schema(
        operation_id="clusters_update", tags=[TAG_CLUSTERS], summary="Change some settings",
        request=s.ClusterPatchSerializer, responses={202: s.OperationSerializer},
        examples=[OpenApiExample("enable cert-manager", request_only=True,
                                 value={"addons": {"cert_manager": {"enabled": True}}})],
        description="Changes only what is sent: `version` alone is an upgrade, `addons` alone "
                    "an add-on change (merged key by key), `oidc_users` alone an access "
                    "change (owners and admins), `auto_repair` alone an auto-repair change, "
                    "anything else a configuration change. Answers with the operation that "
                    "applies it.")
    def patch(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(s.ClusterPatchSerializer)
        if not data:
            raise ApiProblem("invalid-request", _("Send at least one setting to change."))
        cluster = self.get_cluster(cluster_name)
        current = cluster.to_spec(s.live_groups(cluster))
        ctx, key = self.tenant_ctx, self.idempotency_key
        if set(data) == {"version"}:
            operation = actions.do_upgrade_cluster(self.actor, ctx, cluster_name,
                                                   data["version"], idempotency_key=key)
        elif set(data) == {"addons"}:
            operation = actions.do_set_addons(self.actor, ctx, cluster_name,
                                              s.addon_specs(data["addons"], current.addons),
                                              idempotency_key=key)
        elif set(data) == {"oidc_users"}:
            operation = actions.do_set_cluster_access(self.actor, ctx, cluster_name,
                                                      s.oidc_user_specs(data["oidc_users"]),
                                                      idempotency_key=key)
        elif set(data) == {"auto_repair"}:
            operation = actions.do_set_auto_repair(self.actor, ctx, cluster_name,
                                                   s.auto_repair_spec(data["auto_repair"]),
                                                   idempotency_key=key)
        else:
            operation = actions.do_update_cluster(self.actor, ctx, cluster_name,
                                                  s.patched_spec(data, current),
                                                  idempotency_key=key)
        return self.accepted(operation)

    @extend_schema(
        operation_id="clusters_destroy", tags=[TAG_CLUSTERS], summary="Delete a cluster",
        request=None, responses={202: s.OperationSerializer},
        description="Queues the deletion. The platform deletes the cluster's persistent "
                    "volumes too; there is no undo once the platform has it. A change not yet "
                    "sent to the platform is cancelled in favour of the deletion.")
    def delete(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        operation = actions.do_delete_cluster(self.actor, self.tenant_ctx, cluster_name,
                                              confirm=cluster_name,
                                              idempotency_key=self.idempotency_key)
        return self.accepted(operation)


class ClusterUpgradeView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(
        operation_id="clusters_upgrade", tags=[TAG_CLUSTERS], summary="Upgrade Kubernetes",
        request=s.UpgradeSerializer, responses={202: s.OperationSerializer},
        examples=[OpenApiExample("next minor", value={"version": "v1.35"}, request_only=True)],
        description="Moves the cluster to the next minor version (the platform refuses jumps "
                    "and downgrades): the control plane first, then every node is replaced.")
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(s.UpgradeSerializer)
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        version = data.get("version") or shown_dialect().catalogue.next_minor(cluster.version)
        if version is None:
            raise ValidationError({"version": ValidationError(
                _("%(v)s is the newest version offered: there is nothing to upgrade to.")
                % {"v": cluster.version}, code="no_upgrade")})
        operation = actions.do_upgrade_cluster(self.actor, self.tenant_ctx, cluster_name,
                                               version, idempotency_key=self.idempotency_key)
        return self.accepted(operation)


class ClusterManifestView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(
        operation_id="clusters_manifest", tags=[TAG_CLUSTERS],
        summary="The platform manifest", responses={200: OpenApiTypes.OBJECT},
        description="The `Kubernetes` object (`apps.cozystack.io/v1alpha1`) the portal writes "
                    "to the platform for this cluster, in the platform's own format "
                    "(camelCase), for those who automate against the platform directly.")
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = self.get_cluster(cluster_name)
        return Response(render_kubernetes(cluster.to_spec(s.live_groups(cluster)),
                                          shown_dialect(), labels=actions.PORTAL_LABELS))


# --------------------------------------------------------------------------- kubeconfig


KUBECONFIG_DESCRIPTION = (
    "The cluster's kubeconfig, fetched from the platform on each request and never stored or "
    "cached by the portal (certificates rotate). `admin` is the normal cluster-admin "
    "kubeconfig (owners, admins, members); `super_admin` bypasses RBAC inside the cluster "
    "(owners and admins). Needs a read-write token (or, in the browser, a recent sign-in); "
    "every download is recorded in the audit log. 409 `kubeconfig_not_ready` until the "
    "platform has issued it. The token travels in the Authorization header only, never in the "
    "URL.")


class KubeconfigView(ClusterApiView):
    perms = {"GET": Perm.KUBECONFIG_ADMIN, "POST": Perm.KUBECONFIG_ADMIN}
    requires_write_token = True
    idempotent_writes = False  # the answer is a credential: never stored
    renderer_classes = [JSONRenderer, YamlFileRenderer]
    problem_statuses = {"GET": (409, 502, 503), "POST": (409, 502, 503)}

    def _download(self, cluster_name: str, kind: str) -> HttpResponse:
        """``clusters.web.kubeconfig``, with the API's answers where there is no file."""
        try:
            return kubeconfigs.download(
                self.request._request, self.tenant_ctx, cluster_name,
                kubeconfigs.Kind(kind.replace("_", "-")), actor=self.actor,
                by_token=request_token(self.request) is not None)
        except ReauthenticationRequired:
            raise ApiProblem("permission-denied", _(
                "Confirm your password on the cluster page first (kubeconfigs need a recent "
                "sign-in), or use a personal access token."),
                code="reauthentication_required") from None
        except NotFound:
            raise ApiProblem("conflict", _(
                "The platform has not issued credentials for this cluster yet; they appear "
                "once its control plane is up."), code="kubeconfig_not_ready",
                headers={"Retry-After": "10"}) from None

    @extend_schema(
        operation_id="clusters_kubeconfig_retrieve", tags=[TAG_CLUSTERS],
        summary="Download the kubeconfig", description=KUBECONFIG_DESCRIPTION,
        parameters=[OpenApiParameter(
            "kind", str, OpenApiParameter.QUERY, enum=["admin", "super_admin"],
            description="`admin` (default) or `super_admin`.")],
        responses={(200, "application/yaml"): OpenApiResponse(
            OpenApiTypes.STR, description="The kubeconfig file (YAML).")})
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> HttpResponse:
        data = self.parse(s.KubeconfigChoiceSerializer, data=request.query_params)
        return self._download(cluster_name, data.get("kind", "admin"))

    @extend_schema(
        operation_id="clusters_kubeconfig_create", tags=[TAG_CLUSTERS],
        summary="Download the kubeconfig (POST)", description=KUBECONFIG_DESCRIPTION,
        request=s.KubeconfigChoiceSerializer,
        responses={(200, "application/yaml"): OpenApiResponse(
            OpenApiTypes.STR, description="The kubeconfig file (YAML).")})
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> HttpResponse:
        data = self.parse(s.KubeconfigChoiceSerializer)
        return self._download(cluster_name, data.get("kind", "admin"))


class SsoKubeconfigView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}
    renderer_classes = [JSONRenderer, YamlFileRenderer]
    problem_statuses = {"GET": (409, 502, 503)}

    @extend_schema(
        operation_id="clusters_sso_kubeconfig_retrieve", tags=[TAG_CLUSTERS],
        summary="Download the single sign-on kubeconfig",
        description="The kubeconfig of a cluster whose members sign in as themselves (single "
                    "sign-on, Cozystack v1.6): it holds no credential, only where the cluster "
                    "is and how to sign in with `kubectl oidc-login` (the kubelogin plugin), "
                    "so any token that may read the cluster may have it and nothing is "
                    "audited. 409 `sso_kubeconfig_preparing` (with `Retry-After`) while the "
                    "platform prepares it; 409 `sso_not_enabled` when the cluster gives nobody "
                    "access.",
        responses={(200, "application/yaml"): OpenApiResponse(
            OpenApiTypes.STR, description="The kubeconfig file (YAML).")})
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> HttpResponse:
        try:
            return kubeconfigs.download_oidc(self.tenant_ctx, cluster_name)
        except kubeconfigs.OidcKubeconfigUnavailable as exc:
            if exc.preparing:
                raise ApiProblem("conflict", _(
                    "The platform is still preparing the single sign-on kubeconfig; it is "
                    "ready a few minutes after the control plane."),
                    code="sso_kubeconfig_preparing", headers={"Retry-After": "30"}) from None
            raise ApiProblem("conflict", _(
                "Nobody has access to this cluster through single sign-on; set `oidc_users` "
                "first."), code="sso_not_enabled") from None


# --------------------------------------------------------------------------- node groups


def _spec_and_counts(cluster: Cluster) -> tuple[ClusterSpec, dict[str, int]]:
    """The cluster's spec before a change, and the nodes each group runs now."""
    groups = s.live_groups(cluster)
    return cluster.to_spec(groups), {g.name: g.observed_nodes for g in groups}


class PlatformQuotaView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(
        operation_id="platform_quota_retrieve", tags=[TAG_CLUSTERS],
        summary="The tenant's quota on the platform", responses=s.PlatformQuotaSerializer,
        description="The platform's ResourceQuotas `tenant-quota` and `tenant-quota-allocated` "
                    "combined: per resource the smaller limit and the smaller headroom. The "
                    "platform accepts clusters beyond it, but their nodes do not start. Read "
                    "from the platform and kept briefly; `state` is `unknown` when it cannot "
                    "be read.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        quota = platform_quota.tenant_platform_quota(self.tenant_ctx.tenant.namespace)
        return Response(quota.as_data())


class NodeGroupListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "POST": Perm.CLUSTERS_CHANGE}
    cursor_ordering = "position"
    problem_statuses = WRITES_422

    @extend_schema(operation_id="node_groups_list", tags=[TAG_GROUPS],
                   summary="List node groups", responses=s.NodeGroupSerializer(many=True))
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        groups = (cluster.node_groups.filter(removed_at__isnull=True)
                  .select_related("cluster__tenant"))
        return self.page(groups, s.NodeGroupSerializer)

    @extend_schema(
        operation_id="node_groups_create", tags=[TAG_GROUPS], summary="Add a node group",
        request=s.NodeGroupInputSerializer,
        responses={202: s.OperationAcceptedSerializer, 200: HibernationSerializer},
        examples=[OpenApiExample("GPU group", value=NODE_GROUP_EXAMPLE, request_only=True)])
    def post(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        data = self.parse(s.NodeGroupInputSerializer)
        cluster = self.get_cluster(cluster_name)
        group = s.group_spec(data)
        self.group_index = len(s.live_groups(cluster))
        before, counts = _spec_and_counts(cluster)
        operation = actions.do_add_node_group(self.actor, self.tenant_ctx, cluster_name, group,
                                              idempotency_key=self.idempotency_key)
        return self.accepted(operation, before=before, node_counts=counts)


class NodeGroupDetailView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW, "PUT": Perm.CLUSTERS_CHANGE,
             "PATCH": Perm.CLUSTERS_CHANGE, "DELETE": Perm.CLUSTERS_CHANGE}
    problem_statuses = {**WRITES_422, "DELETE": (422,)}

    def _find(self, cluster_name: str, group_name: str) -> tuple[Cluster, NodeGroup]:
        cluster = self.get_cluster(cluster_name)
        for index, group in enumerate(s.live_groups(cluster)):
            if group.name == group_name:
                group.cluster = cluster
                self.group_index = index
                return cluster, group
        raise Http404

    @staticmethod
    def _check_name(data: dict[str, Any], group_name: str) -> None:
        if data.get("name", group_name) != group_name:
            raise ValidationError({"name": ValidationError(
                _("A node group cannot be renamed; add a new group and remove this one "
                  "instead."), code="immutable")})

    @extend_schema(operation_id="node_groups_retrieve", tags=[TAG_GROUPS],
                   summary="Read a node group", responses=s.NodeGroupSerializer)
    def get(self, request: Request, tenant_slug: str, cluster_name: str,
            group_name: str) -> Response:
        _cluster, group = self._find(cluster_name, group_name)
        return Response(s.NodeGroupSerializer(group, context=self.serializer_context()).data)

    @extend_schema(
        operation_id="node_groups_replace", tags=[TAG_GROUPS],
        summary="Replace a node group's template and limits",
        request=s.NodeGroupReplaceSerializer,
        responses={202: s.OperationAcceptedSerializer, 200: HibernationSerializer},
        description="A new instance type, disk, roles or GPUs replace every node of the "
                    "group (rolling, up to twice the nodes for a while).")
    def put(self, request: Request, tenant_slug: str, cluster_name: str,
            group_name: str) -> Response:
        data = self.parse(s.NodeGroupReplaceSerializer)
        self._check_name(data, group_name)
        cluster, _group = self._find(cluster_name, group_name)
        group = s.group_spec({**data, "name": group_name})
        before, counts = _spec_and_counts(cluster)
        operation = actions.do_update_node_group(self.actor, self.tenant_ctx, cluster_name,
                                                 group, idempotency_key=self.idempotency_key)
        return self.accepted(operation, before=before, node_counts=counts)

    @extend_schema(
        operation_id="node_groups_update", tags=[TAG_GROUPS],
        summary="Scale or change a node group", request=s.NodeGroupPatchSerializer,
        responses={202: s.OperationAcceptedSerializer, 200: HibernationSerializer},
        examples=[OpenApiExample("scale", value={"min_replicas": 2, "max_replicas": 6},
                                 request_only=True)],
        description="Only `min_replicas` / `max_replicas`: a scale, no node is replaced. "
                    "Anything else changes the template and replaces the group's nodes.")
    def patch(self, request: Request, tenant_slug: str, cluster_name: str,
              group_name: str) -> Response:
        data = self.parse(s.NodeGroupPatchSerializer)
        if not data:
            raise ApiProblem("invalid-request", _("Send at least one setting to change."))
        self._check_name(data, group_name)
        cluster, row = self._find(cluster_name, group_name)
        current = row.to_spec()
        before, counts = _spec_and_counts(cluster)
        ctx, key = self.tenant_ctx, self.idempotency_key
        if set(data) <= {"min_replicas", "max_replicas", "name"}:
            operation = actions.do_scale_node_group(
                self.actor, ctx, cluster_name, group_name,
                min_replicas=data.get("min_replicas", current.min_replicas),
                max_replicas=data.get("max_replicas", current.max_replicas),
                idempotency_key=key)
        else:
            operation = actions.do_update_node_group(
                self.actor, ctx, cluster_name, s.group_spec(data, base=current),
                idempotency_key=key)
        return self.accepted(operation, before=before, node_counts=counts)

    @extend_schema(operation_id="node_groups_destroy", tags=[TAG_GROUPS],
                   summary="Remove a node group", request=None,
                   responses={202: s.OperationSerializer, 200: HibernationSerializer},
                   description="Its nodes are drained and deleted. A cluster keeps at least "
                               "one group (422 otherwise).")
    def delete(self, request: Request, tenant_slug: str, cluster_name: str,
               group_name: str) -> Response:
        self._find(cluster_name, group_name)
        self.group_index = None
        operation = actions.do_remove_node_group(self.actor, self.tenant_ctx, cluster_name,
                                                 group_name, idempotency_key=self.idempotency_key)
        return self.accepted(operation)


# --------------------------------------------------------------------------- operations


def operation_queryset(ctx: Any) -> QuerySet[Operation]:
    return Operation.objects.filter(tenant=ctx.tenant).select_related("cluster", "requested_by")


class OperationListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}
    cursor_ordering = "-created_at"

    @extend_schema(operation_id="operations_list", tags=[TAG_OPERATIONS],
                   summary="List the tenant's operations",
                   parameters=[s.OperationFilterSerializer],
                   responses=s.OperationSerializer(many=True),
                   description="Newest first; filter by `cluster`, `state` or `kind`.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        filters = self.parse(s.OperationFilterSerializer, data=request.query_params)
        queryset = operation_queryset(self.tenant_ctx)
        if "cluster" in filters:
            queryset = queryset.filter(cluster__name=filters["cluster"],
                                       cluster__deleted_at__isnull=True)
        if "state" in filters:
            queryset = queryset.filter(state=filters["state"])
        if "kind" in filters:
            queryset = queryset.filter(kind=filters["kind"])
        return self.page(queryset, s.OperationSerializer)


class ClusterOperationListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}
    cursor_ordering = "-created_at"

    @extend_schema(operation_id="clusters_operations_list", tags=[TAG_OPERATIONS],
                   summary="List a cluster's operations",
                   responses=s.OperationSerializer(many=True), description="Newest first.")
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        return self.page(operation_queryset(self.tenant_ctx).filter(cluster=cluster),
                         s.OperationSerializer)


class OperationDetailView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(operation_id="operations_retrieve", tags=[TAG_OPERATIONS],
                   summary="Read an operation", responses=s.OperationSerializer,
                   description="Its steps, state and, when it failed, the classified error. "
                               "Poll it until `state` is `succeeded`, `failed` or "
                               "`cancelled`.")
    def get(self, request: Request, tenant_slug: str, operation_id: int) -> Response:
        operation = actions.access_operation(self.tenant_ctx, operation_id)
        return Response(s.OperationSerializer(operation, context=self.serializer_context()).data)


class OperationRetryView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}
    problem_statuses = WRITES_422

    @extend_schema(operation_id="operations_retry", tags=[TAG_OPERATIONS],
                   summary="Retry a failed operation", request=None,
                   responses={202: s.OperationSerializer},
                   description="Runs a failed or cancelled operation again as a new "
                               "operation with the same intent (409 otherwise).")
    def post(self, request: Request, tenant_slug: str, operation_id: int) -> Response:
        operation = actions.do_retry_operation(self.actor, self.tenant_ctx, operation_id)
        return self.accepted(operation)


class OperationCancelView(ClusterApiView):
    perms = {"POST": Perm.CLUSTERS_CHANGE}

    @extend_schema(operation_id="operations_cancel", tags=[TAG_OPERATIONS],
                   summary="Cancel an operation", request=None,
                   responses={200: s.OperationSerializer},
                   description="Cancels an operation the platform has not received yet and "
                               "puts the configuration back; 409 once the platform has it.")
    def post(self, request: Request, tenant_slug: str, operation_id: int) -> Response:
        operation = actions.do_cancel_operation(self.actor, self.tenant_ctx, operation_id)
        return self.accepted(operation, status=200)


class ClusterEventListView(ClusterApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}
    cursor_ordering = "-at"

    @extend_schema(operation_id="clusters_events_list", tags=[TAG_OPERATIONS],
                   summary="A cluster's timeline", responses=s.ClusterEventSerializer(many=True),
                   description="What the portal did and what the platform reported, newest "
                               "first.")
    def get(self, request: Request, tenant_slug: str, cluster_name: str) -> Response:
        cluster = actions.access_cluster(self.tenant_ctx, cluster_name)
        events = ClusterEvent.objects.filter(tenant=self.tenant_ctx.tenant, cluster=cluster)
        return self.page(events, s.ClusterEventSerializer)
