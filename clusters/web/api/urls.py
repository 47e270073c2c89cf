"""Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` by ``portal.api.urls``."""

from __future__ import annotations

from django.urls import path

from clusters.web.api import catalog, hibernation, lifecycle_c, views

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
    # Issue 16, part C: expiry, cluster templates, deleted clusters.
    path(cluster + "expiry/", lifecycle_c.ClusterExpiryView.as_view(), name="cluster_expiry"),
    path(cluster + "expiry/extend/", lifecycle_c.ClusterExpiryExtendView.as_view(),
         name="cluster_expiry_extend"),
    path("expiry-policy/", lifecycle_c.ExpiryPolicyView.as_view(), name="expiry_policy"),
    path("cluster-templates/", lifecycle_c.TemplateListView.as_view(),
         name="cluster_templates"),
    path("cluster-templates/<apiid:template_id>/", lifecycle_c.TemplateDetailView.as_view(),
         name="cluster_template"),
    path("cluster-templates/<apiid:template_id>/clusters/",
         lifecycle_c.TemplateUseView.as_view(), name="cluster_template_use"),
    path("deleted-clusters/", lifecycle_c.DeletedClusterListView.as_view(),
         name="deleted_clusters"),
    path("deleted-clusters/<apiid:cluster_id>/", lifecycle_c.DeletedClusterDetailView.as_view(),
         name="deleted_cluster"),
]
