"""Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` by ``portal.api.urls`` (part A:
maintenance windows, automatic upgrades and the lifecycle dry run)."""

from __future__ import annotations

from django.urls import path

from clusters.web.api import maintenance

cluster = "clusters/<slug:cluster_name>/"

urlpatterns = [
    path(cluster + "maintenance/", maintenance.ClusterMaintenanceView.as_view(),
         name="cluster_maintenance"),
    path(cluster + "maintenance/postpone/", maintenance.ClusterPostponeView.as_view(),
         name="cluster_maintenance_postpone"),
    path(cluster + "maintenance/upgrade-now/", maintenance.ClusterUpgradeNowView.as_view(),
         name="cluster_maintenance_upgrade_now"),
    path(cluster + "lifecycle/upcoming/", maintenance.ClusterUpcomingView.as_view(),
         name="cluster_lifecycle_upcoming"),
    path("maintenance-default/", maintenance.TenantMaintenanceDefaultView.as_view(),
         name="tenant_maintenance_default"),
]
