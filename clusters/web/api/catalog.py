"""The platform catalogue over the API: what a cluster spec may name, as tenants are offered it.

``/api/v1/catalog/…`` is the catalogue of the platform's release (minus what staff hid), the
same for everyone. ``/api/v1/tenants/<slug>/catalog/{instance-types,gpu-models,
storage-classes}/`` is what the platform offers that tenant (its Option API on Cozystack v1.6,
with the GPUs' stock), which is what the tenant's specs are checked against; it is the bundled
catalogue where the platform has no Option API or cannot be read.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response

from clusters import features, offerings
from clusters.models import Offering
from clusters.platform_release import shown_dialect
from cozystack import catalog, limits
from portal.api.base import ApiView
from portal.api.fields import answer_cache
from portal.permissions import Perm

CATALOG_TAG = "Catalogue"


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
        offer = self.context.get("_catalogue")
        if offer is None:
            offer = answer_cache(self.context)["_catalogue"] = shown_dialect().catalogue
        return offer.next_minor(version.name)

    def get_end_of_life_on(self, version: catalog.KubernetesVersion) -> date | None:
        ends = self.context.get("_end_of_life")
        if ends is None:
            ends = answer_cache(self.context)["_end_of_life"] = dict(
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
    dedicated_cpu = serializers.SerializerMethodField(
        help_text=_("Each vCPU is a dedicated core (the `d1`, `cx1`, `n1` and `rt1` series), "
                    "with no other VM sharing it."))
    hugepages = serializers.SerializerMethodField(
        help_text=_("Memory in hugepages of this size (`2Mi`, `1Gi`), or empty."))
    note = serializers.CharField(allow_blank=True, help_text=_("Anything worth knowing."))

    def get_dedicated_cpu(self, item: catalog.InstanceType) -> bool:
        return bool(getattr(item, "dedicated_cpu", False))

    def get_hugepages(self, item: catalog.InstanceType) -> str:
        return str(getattr(item, "hugepages", "") or "")

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
    availability = serializers.SerializerMethodField(
        help_text=_("What the platform says of its stock, e.g. `8 available on gpu-node-1, "
                    "gpu-node-2` (the tenant's catalogue on Cozystack v1.6); empty when the "
                    "platform does not say."))

    def get_availability(self, item: catalog.GpuModel) -> str:
        return offerings.availability_words(item.availability) if item.availability else ""


class StorageClassSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a cluster's `storage_class` carries."))
    label = serializers.SerializerMethodField(help_text=_("The class, in words."))  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
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
    label = serializers.SerializerMethodField(help_text=_("The add-on, in words."))  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
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
    family = serializers.CharField(
        help_text=_("The family (`t1`, `c1`, `s1`, `u1`, `m1`: memory per CPU grows; a v1.3 "
                    "platform takes seven sizes of `t1` and `c1`). A preset is not an instance "
                    "type of the same name."))
    cpu = serializers.CharField(help_text=_("CPU limit (Kubernetes quantity)."))
    memory = serializers.CharField(help_text=_("Memory limit (Kubernetes quantity)."))


class InstanceTypeFilterSerializer(serializers.Serializer):
    dedicated_cpu = serializers.BooleanField(
        required=False, default=None, allow_null=True,
        help_text=_("Only types with (true) or without (false) dedicated vCPUs."))
    hugepages = serializers.BooleanField(
        required=False, default=None, allow_null=True,
        help_text=_("Only types with (true) or without (false) hugepages."))


class NodeRoleSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("What a node group's `roles` may carry."))
    label = serializers.SerializerMethodField(help_text=_("The role, in words."))  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
    description = serializers.SerializerMethodField(help_text=_("What nodes with it do."))

    def get_label(self, item: catalog.NodeRole) -> str:
        return _t(item.label)

    def get_description(self, item: catalog.NodeRole) -> str:
        return _t(item.description)


def _catalog(name: str, serializer: Any, items: Any, summary: str, description: str) -> Any:
    @extend_schema(operation_id=f"catalog_{name}_list", tags=[CATALOG_TAG],
                   responses=serializer(many=True), summary=summary, description=description)
    def get(self: ApiView, request: Request) -> Response:
        return self.sequence_page(items(), serializer)

    return type(f"{name.title().replace('_', '')}View", (ApiView,), {"get": get})


VersionListView = _catalog(
    "versions", VersionSerializer, offerings.offered_versions, "Kubernetes versions",
    "Versions a new cluster may run, newest first; `upgrade_to` is the one step an existing "
    "cluster may take from each.")
def _instance_types(view: ApiView, request: Request, namespace: str | None) -> Response:
    filters = view.parse(InstanceTypeFilterSerializer, data=request.query_params)
    items = offerings.offered_instance_types(namespace=namespace)
    if filters.get("dedicated_cpu") is not None:
        items = [t for t in items if bool(getattr(t, "dedicated_cpu", False))
                 == filters["dedicated_cpu"]]
    if filters.get("hugepages") is not None:
        items = [t for t in items if bool(getattr(t, "hugepages", ""))
                 == filters["hugepages"]]
    return view.sequence_page(items, InstanceTypeSerializer)


class InstanceTypeListView(ApiView):
    @extend_schema(operation_id="catalog_instance_types_list", tags=[CATALOG_TAG],
                   responses=InstanceTypeSerializer(many=True), summary="Instance types",
                   parameters=[InstanceTypeFilterSerializer],
                   description="Node sizes of the platform's release, with vCPU, memory and "
                               "GPU suitability; documented types first. Filter dedicated-vCPU "
                               "and hugepage types (Cozystack v1.6). What one tenant is "
                               "offered: `GET /api/v1/tenants/{tenant_slug}/catalog/"
                               "instance-types/`.")
    def get(self, request: Request) -> Response:
        return _instance_types(self, request, None)


GpuModelListView = _catalog(
    "gpu_models", GpuModelSerializer, offerings.offered_gpu_models, "GPU models",
    "GPUs of the platform's release a node group can pass through to every node "
    "(`gpu_model`, `gpus_per_node`). What one tenant is offered, with the platform's stock: "
    "`GET /api/v1/tenants/{tenant_slug}/catalog/gpu-models/`.")
StorageClassListView = _catalog(
    "storage_classes", StorageClassSerializer, catalog.storage_classes, "Storage classes",
    "Where the cluster's persistent volumes live; chosen at creation, cannot change. What one "
    "tenant is offered: `GET /api/v1/tenants/{tenant_slug}/catalog/storage-classes/`.")


# --------------------------------------------------------------------------- one tenant's offer

TENANT_OFFER = ("What the platform offers this tenant: on Cozystack v1.6 its Option API for the "
                "tenant's namespace (read briefly cached), narrowed to what staff offer; the "
                "catalogue of the platform's release where the platform has no Option API or "
                "cannot be read. Cluster specs of this tenant are checked against it: a value "
                "it does not list is refused (422, `not_offered_by_platform`).")


class TenantInstanceTypeListView(ApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(operation_id="tenant_catalog_instance_types_list", tags=[CATALOG_TAG],
                   responses=InstanceTypeSerializer(many=True),
                   summary="Instance types offered to the tenant",
                   parameters=[InstanceTypeFilterSerializer],
                   description="Node sizes the tenant may pick. " + TENANT_OFFER)
    def get(self, request: Request, tenant_slug: str) -> Response:
        return _instance_types(self, request, self.tenant_ctx.tenant.namespace)


class TenantGpuModelListView(ApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(operation_id="tenant_catalog_gpu_models_list", tags=[CATALOG_TAG],
                   responses=GpuModelSerializer(many=True),
                   summary="GPU models offered to the tenant",
                   description="GPUs the tenant may pass through to its nodes, each with how "
                               "many the platform has available (`availability`). "
                               + TENANT_OFFER)
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.sequence_page(offerings.offered_gpu_models(
            namespace=self.tenant_ctx.tenant.namespace), GpuModelSerializer)


class TenantStorageClassListView(ApiView):
    perms = {"GET": Perm.CLUSTERS_VIEW}

    @extend_schema(operation_id="tenant_catalog_storage_classes_list", tags=[CATALOG_TAG],
                   responses=StorageClassSerializer(many=True),
                   summary="Storage classes offered to the tenant",
                   description="Storage classes the tenant may pick for a cluster (and, on "
                               "Cozystack v1.6, a node group's disks); `is_default` is the one "
                               "a new cluster gets. " + TENANT_OFFER)
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.sequence_page(offerings.offered_storage_classes(
            namespace=self.tenant_ctx.tenant.namespace), StorageClassSerializer)
AddonListView = _catalog(
    "addons", AddonSerializer, lambda: shown_dialect().catalogue.addons, "Add-ons",
    "Add-ons a cluster can enable or tune under `addons`, with the keys of their values.")
ControlPlanePresetListView = _catalog(
    "control_plane_presets", ControlPlanePresetSerializer, features.control_plane_presets,
    "Control-plane sizes",
    "Sizes for `control_plane.api_server_preset` the platform accepts, with their CPU and "
    "memory, by family.")
NodeRoleListView = _catalog(
    "node_roles", NodeRoleSerializer, catalog.node_roles, "Node roles",
    "Roles a node group's nodes can carry.")
