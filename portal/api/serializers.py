"""Representations of the caller, tenants and the platform catalogue."""

from __future__ import annotations

from datetime import date
from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from clusters.platform import catalog, limits
from portal.models import ApiToken
from portal.permissions import Role, perms_for
from portal.tenancy import TenantContext


def addon_api_key(platform_key: str) -> str:
    """``ingressNginx`` → ``ingress_nginx``; ``gatewayAPI`` → ``gateway_api``."""
    out = ""
    for index, char in enumerate(platform_key):
        previous = platform_key[index - 1] if index else ""
        if char.isupper() and index and not previous.isupper():
            out += "_"
        out += char.lower()
    return out


ADDON_API_KEYS = {addon.key: addon_api_key(addon.key) for addon in catalog.addons()}
ADDON_PLATFORM_KEYS = {api: platform for platform, api in ADDON_API_KEYS.items()}


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


# --------------------------------------------------------------------------- catalogue


class VersionSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a cluster spec carries, e.g. `v1.34`."))
    patch = serializers.CharField(help_text=_("The patch release the platform runs."))
    is_default = serializers.BooleanField(help_text=_("Used when a spec names no version."))
    upgrade_to = serializers.SerializerMethodField(
        help_text=_("The only version a cluster on this one may upgrade to (one minor at a "
                    "time), or null."))

    end_of_life_on = serializers.SerializerMethodField(
        help_text=_("From this date the platform team asks clusters on it to upgrade; null "
                    "when no end is set."))

    def get_upgrade_to(self, version: catalog.KubernetesVersion) -> str | None:
        return catalog.next_minor(version.name)

    def get_end_of_life_on(self, version: catalog.KubernetesVersion) -> date | None:
        ends = self.context.get("_end_of_life")
        if ends is None:
            from clusters.models import Offering

            ends = self.context["_end_of_life"] = dict(
                Offering.objects.filter(kind=Offering.Kind.VERSION, end_of_life_on__isnull=False)
                .values_list("name", "end_of_life_on"))
        return ends.get(version.name)


class InstanceTypeSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a node group's `instance_type` carries."))
    series = serializers.CharField(help_text=_("`s1` (1:2), `u1` (1:4) or `m1` (1:8)…"))
    series_label = serializers.SerializerMethodField(help_text=_("The series, in words."))
    vcpu = serializers.IntegerField(help_text=_("Virtual CPUs per node."))
    memory_gib = serializers.DecimalField(max_digits=8, decimal_places=2, coerce_to_string=False,
                                          help_text=_("Memory per node in GiB."))
    gpu_capable = serializers.SerializerMethodField(
        help_text=_("Enough memory for GPU passthrough (the NVIDIA driver needs 4 GiB)."))
    recommended_max_gpus = serializers.SerializerMethodField(
        help_text=_("GPUs per node this size suits (8–16 vCPU per GPU are recommended)."))
    documented = serializers.BooleanField(
        help_text=_("False for types the platform has but does not document."))
    note = serializers.CharField(allow_blank=True, help_text=_("Anything worth knowing."))

    def get_series_label(self, item: catalog.InstanceType) -> str:
        return _t(item.series_label)

    def get_gpu_capable(self, item: catalog.InstanceType) -> bool:
        return item.memory_gib >= catalog.MIN_GPU_NODE_MEMORY_GIB

    def get_recommended_max_gpus(self, item: catalog.InstanceType) -> int:
        if item.memory_gib < catalog.MIN_GPU_NODE_MEMORY_GIB:
            return 0
        return min(limits.GPUS_PER_NODE.hi, item.vcpu // catalog.RECOMMENDED_VCPU_PER_GPU[0])


class GpuModelSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a node group's `gpu_model` carries."))
    model = serializers.CharField(help_text=_("The GPU, e.g. `NVIDIA L40S`."))
    memory_gb = serializers.IntegerField(help_text=_("GPU memory in GB."))
    architecture = serializers.CharField(help_text=_("e.g. `Ada Lovelace`."))
    typical_use = serializers.CharField(help_text=_("What it is good for."))


class StorageClassSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a cluster's `storage_class` carries."))
    label = serializers.SerializerMethodField(help_text=_("The class, in words."))
    description = serializers.SerializerMethodField(help_text=_("What it means for data."))
    is_default = serializers.BooleanField(help_text=_("Used when a spec names none."))

    def get_label(self, item: catalog.StorageClass) -> str:
        return _t(item.label)

    def get_description(self, item: catalog.StorageClass) -> str:
        return _t(item.description)


class AddonSerializer(serializers.Serializer):
    key = serializers.SerializerMethodField(
        help_text=_("The key under a cluster's `addons`, e.g. `ingress_nginx`."))
    platform_key = serializers.CharField(source="key",
                                         help_text=_("The key in the platform manifest."))
    label = serializers.SerializerMethodField(help_text=_("The add-on, in words."))
    description = serializers.SerializerMethodField(help_text=_("What it installs."))
    can_enable = serializers.BooleanField(
        source="has_enabled",
        help_text=_("False for add-ons that are always installed or follow another one; "
                    "only their values can be tuned."))
    always_installed = serializers.BooleanField(
        help_text=_("Part of every cluster (e.g. the network)."))
    values_override_roots = serializers.ListField(
        source="value_roots", child=serializers.CharField(),
        help_text=_("The only top-level keys `values_override` may use; empty: no custom "
                    "values."))
    notes = serializers.SerializerMethodField(help_text=_("Conditions and side effects."))

    def get_key(self, item: catalog.Addon) -> str:
        return ADDON_API_KEYS[item.key]

    def get_label(self, item: catalog.Addon) -> str:
        return _t(item.label)

    def get_description(self, item: catalog.Addon) -> str:
        return _t(item.description)

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_notes(self, item: catalog.Addon) -> list[str]:
        return [_t(note) for note in item.notes]


class ControlPlanePresetSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What `control_plane.api_server_preset` carries."))
    cpu = serializers.CharField(help_text=_("CPU limit (Kubernetes quantity)."))
    memory = serializers.CharField(help_text=_("Memory limit (Kubernetes quantity)."))


class NodeRoleSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a node group's `roles` may carry."))
    label = serializers.SerializerMethodField(help_text=_("The role, in words."))
    description = serializers.SerializerMethodField(help_text=_("What nodes with it do."))

    def get_label(self, item: catalog.NodeRole) -> str:
        return _t(item.label)

    def get_description(self, item: catalog.NodeRole) -> str:
        return _t(item.description)
