"""Everything under ``/api/``: version 1 of the API, its OpenAPI document and docs.

Clusters, billing and webhooks mount their endpoints under ``v1/tenants/<slug>/``, the
catalogue under ``v1/catalog/`` and the estimate at ``v1/estimate/``; unknown paths answer with
a problem-details 404 rather than an HTML page.
"""

from __future__ import annotations

from django.urls import URLPattern, URLResolver, include, path, re_path, register_converter
from drf_spectacular.views import SpectacularAPIView

from portal.api import docs, views
from portal.api.converters import ObjectIdConverter

register_converter(ObjectIdConverter, "apiid")

app_name = "api"

tenant = "tenants/<slug:tenant_slug>/"

v1: list[URLPattern | URLResolver] = [
    path("me/", views.MeView.as_view(), name="me"),
    path("tenants/", views.TenantListView.as_view(), name="tenants"),
    path(tenant, views.TenantDetailView.as_view(), name="tenant"),
    path(tenant, include("clusters.web.api.urls")),
    path(tenant, include("clusters.web.api.maintenance_urls")),
    path(tenant, include("billing.web.api.urls")),
    path(tenant, include("notifications.api.urls")),
    path("", include("billing.web.api.estimate_urls")),
    path("catalog/", include("clusters.web.api.catalog_urls")),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs.swagger_ui, name="docs"),
    path("redoc/", docs.redoc, name="redoc"),
    re_path(r"^", views.api_not_found),
]
