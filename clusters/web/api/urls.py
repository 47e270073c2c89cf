"""Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` by ``portal.api.urls``."""

from __future__ import annotations

from django.urls import path

from clusters.web.api import catalog, hibernation, views

cluster = "clusters/<slug:cluster_name>/"
operation = "operations/<apiid:operation_id>/"

urlpatterns = [
    path("clusters/", views.ClusterListView.as_view(), name="clusters"),
    path(cluster, views.ClusterDetailView.as_view(), name="cluster"),
    path(cluster + "upgrade/", views.ClusterUpgradeView.as_view(), name="cluster_upgrade"),
    path(cluster + "kubeconfig/", views.KubeconfigView.as_view(), name="cluster_kubeconfig"),
    path(cluster + "sso-kubeconfig/", views.SsoKubeconfigView.as_view(),
         name="cluster_sso_kubeconfig"),
    path(cluster + "manifest/", views.ClusterManifestView.as_view(), name="cluster_manifest"),
    path(cluster + "events/", views.ClusterEventListView.as_view(), name="cluster_events"),
    path(cluster + "operations/", views.ClusterOperationListView.as_view(),
         name="cluster_operations"),
    path(cluster + "node-groups/", views.NodeGroupListView.as_view(), name="node_groups"),
    path(cluster + "node-groups/<slug:group_name>/", views.NodeGroupDetailView.as_view(),
         name="node_group"),
    path(cluster + "hibernation/", hibernation.HibernationView.as_view(),
         name="cluster_hibernation"),
    path(cluster + "hibernate/", hibernation.HibernateView.as_view(), name="cluster_hibernate"),
    path(cluster + "wake/", hibernation.WakeView.as_view(), name="cluster_wake"),
    path("operations/", views.OperationListView.as_view(), name="operations"),
    path(operation, views.OperationDetailView.as_view(), name="operation"),
    path(operation + "retry/", views.OperationRetryView.as_view(), name="operation_retry"),
    path(operation + "cancel/", views.OperationCancelView.as_view(), name="operation_cancel"),
    path("platform-quota/", views.PlatformQuotaView.as_view(), name="platform_quota"),
    path("catalog/instance-types/", catalog.TenantInstanceTypeListView.as_view(),
         name="tenant_catalog_instance_types"),
    path("catalog/gpu-models/", catalog.TenantGpuModelListView.as_view(),
         name="tenant_catalog_gpu_models"),
    path("catalog/storage-classes/", catalog.TenantStorageClassListView.as_view(),
         name="tenant_catalog_storage_classes"),
]
