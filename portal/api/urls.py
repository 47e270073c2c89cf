"""Everything under ``/api/``: version 1 of the API, its OpenAPI document and docs.

Clusters and billing mount their endpoints under ``v1/tenants/<slug>/``; unknown paths answer
with a problem-details 404 rather than an HTML page.
"""

from __future__ import annotations

from django.urls import include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView

from billing.api.views import EstimateView
from portal.api import docs, views
from portal.api.converters import ObjectIdConverter

register_converter(ObjectIdConverter, "apiid")

app_name = "api"

tenant = "tenants/<slug:tenant_slug>/"

v1 = [
    path("me/", views.MeView.as_view(), name="me"),
    path("tenants/", views.TenantListView.as_view(), name="tenants"),
    path(tenant, views.TenantDetailView.as_view(), name="tenant"),
    path(tenant, include("clusters.api.urls")),
    path(tenant, include("billing.api.urls")),
    path("estimate/", EstimateView.as_view(), name="estimate"),
    path("catalog/versions/", views.VersionListView.as_view(), name="catalog_versions"),
    path("catalog/instance-types/", views.InstanceTypeListView.as_view(),
         name="catalog_instance_types"),
    path("catalog/gpu-models/", views.GpuModelListView.as_view(), name="catalog_gpu_models"),
    path("catalog/storage-classes/", views.StorageClassListView.as_view(),
         name="catalog_storage_classes"),
    path("catalog/addons/", views.AddonListView.as_view(), name="catalog_addons"),
    path("catalog/control-plane-presets/", views.ControlPlanePresetListView.as_view(),
         name="catalog_control_plane_presets"),
    path("catalog/node-roles/", views.NodeRoleListView.as_view(), name="catalog_node_roles"),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs.swagger_ui, name="docs"),
    path("redoc/", docs.redoc, name="redoc"),
    re_path(r"^", views.api_not_found),
]
