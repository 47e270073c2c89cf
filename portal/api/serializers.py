"""Representations of the caller and their tenants."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal.models import ApiToken, language_choices
from portal.permissions import Role, perms_for
from portal.tenancy import TenantContext


class QuotaSerializer(serializers.Serializer):
    clusters = serializers.IntegerField(help_text=_("Most clusters at once."))
    vcpu = serializers.IntegerField(help_text=_("Most vCPUs over all nodes at their maximum."))
    memory_gib = serializers.IntegerField(help_text=_("Most memory (GiB) likewise."))
    gpus = serializers.IntegerField(help_text=_("Most GPUs likewise."))


class TenantSerializer(serializers.Serializer):
    slug = serializers.CharField(help_text=_("Identifies the tenant in URLs; never changes."))
    name = serializers.CharField(help_text=_("Display name."))
    role = serializers.ChoiceField(source="api_role", choices=Role.choices,
                                   help_text=_("Your role in this tenant."))
    permissions = serializers.SerializerMethodField(
        help_text=_("What your role allows here, from the portal's permission table."))
    suspended = serializers.SerializerMethodField(
        help_text=_("A suspended tenant can be read but not changed."))
    quota = serializers.SerializerMethodField(help_text=_("The tenant's limits."))
    created_at = serializers.DateTimeField(help_text=_("When the tenant was created."))
    invoice_language = serializers.ChoiceField(
        choices=language_choices(),
        help_text=_("The language of the tenant's invoices and their PDFs (set by its owners "
                    "and admins on the tenant settings page)."))
    url = serializers.SerializerMethodField(help_text=_("This tenant in the API."))

    def _ctx(self, tenant: Any) -> TenantContext:
        return TenantContext(tenant, tenant.api_role, None)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_permissions(self, tenant: Any) -> list[str]:
        ctx = self._ctx(tenant)
        return sorted(p for p in perms_for(tenant.api_role) if ctx.can(p))

    def get_suspended(self, tenant: Any) -> bool:
        return bool(tenant.is_suspended)

    @extend_schema_field(QuotaSerializer)
    def get_quota(self, tenant: Any) -> dict[str, int]:
        return tenant.quota()

    def get_url(self, tenant: Any) -> str:
        return self.context["request"].build_absolute_uri(
            reverse("api:tenant", kwargs={"tenant_slug": tenant.slug}))


class TokenInfoSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("The name given to the token."))
    prefix = serializers.CharField(help_text=_("First characters of the token."))
    scope = serializers.ChoiceField(choices=ApiToken.Scope.choices,
                                    help_text=_("`read` or `read_write`."))
    tenant = serializers.SerializerMethodField(
        help_text=_("Slug of the only tenant it reaches; null for all of yours."))
    expires_at = serializers.DateTimeField(help_text=_("When the token stops working."))

    def get_tenant(self, token: Any) -> str | None:
        return token.tenant.slug if token.tenant_id else None


class MeSerializer(serializers.Serializer):
    email = serializers.EmailField(help_text=_("The account's email address."))
    name = serializers.CharField(help_text=_("First and last name."))
    token = TokenInfoSerializer(allow_null=True,
                                help_text=_("The token of this request; null for a session."))
