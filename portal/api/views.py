"""The caller (``me``) and their tenants."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import JsonResponse
from drf_spectacular.utils import extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from portal.api import serializers as s
from portal.api.authentication import request_token
from portal.api.base import ApiView, request_person
from portal.api.problems import problem_response
from portal.models import Membership, Tenant
from portal.permissions import Perm


class MeView(ApiView):
    @extend_schema(operation_id="me_retrieve", tags=["Account"], responses=s.MeSerializer,
                   summary="Who am I",
                   description="The account and, for token requests, the token being used: a "
                               "quick check that a token works and what it may do.")
    def get(self, request: Request) -> Response:
        user = request_person(request)
        token = request_token(request)
        data = {"email": user.email, "name": user.get_full_name(), "token": token}
        return Response(s.MeSerializer(data, context=self.serializer_context()).data)


def _tenants_for(request: Request) -> Any:
    user = request_person(request)
    role = Membership.objects.filter(tenant=OuterRef("pk"), user=user).values("role")[:1]
    qs = Tenant.objects.for_user(user).annotate(api_role=Subquery(role))
    token = request_token(request)
    if token is not None and token.tenant_id is not None:
        qs = qs.filter(pk=token.tenant_id)
    return qs


class TenantListView(ApiView):
    cursor_ordering = "slug"

    @extend_schema(operation_id="tenants_list", tags=["Tenants"],
                   responses=s.TenantSerializer(many=True), summary="Your tenants",
                   description="Every tenant you belong to (only the token's tenant for a "
                               "tenant-limited token), with your role and what it allows.")
    def get(self, request: Request) -> Response:
        return self.page(_tenants_for(request), s.TenantSerializer)


class TenantDetailView(ApiView):
    perms = {"GET": Perm.TENANT_VIEW}

    @extend_schema(operation_id="tenants_retrieve", tags=["Tenants"],
                   responses=s.TenantSerializer, summary="One tenant",
                   description="The tenant, your role in it and its quota.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        tenant = self.tenant_ctx.tenant
        tenant.api_role = self.tenant_ctx.role  # type: ignore[attr-defined]  # what the list annotates; TenantSerializer reads it
        return Response(s.TenantSerializer(tenant, context=self.serializer_context()).data)


def api_not_found(request: Any, *args: Any, **kwargs: Any) -> Any:
    """Unknown paths under /api/ answer with a problem, not an HTML page."""
    response = problem_response(request, "not-found")
    return JsonResponse(response.data, status=404, content_type=response.content_type)

