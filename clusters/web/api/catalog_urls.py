"""Mounted under ``/api/v1/catalog/`` by ``portal.api.urls``."""

from __future__ import annotations

from django.urls import path

from clusters.web.api import catalog

urlpatterns = [
    path("versions/", catalog.VersionListView.as_view(), name="catalog_versions"),
    path("instance-types/", catalog.InstanceTypeListView.as_view(),
         name="catalog_instance_types"),
    path("gpu-models/", catalog.GpuModelListView.as_view(), name="catalog_gpu_models"),
    path("storage-classes/", catalog.StorageClassListView.as_view(),
         name="catalog_storage_classes"),
    path("addons/", catalog.AddonListView.as_view(), name="catalog_addons"),
    path("control-plane-presets/", catalog.ControlPlanePresetListView.as_view(),
         name="catalog_control_plane_presets"),
    path("node-roles/", catalog.NodeRoleListView.as_view(), name="catalog_node_roles"),
]
