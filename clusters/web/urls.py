"""Cluster pages, under ``/t/<tenant_slug>/clusters/``.

Pages about the list live under ``-/`` so that no cluster name (which must start with a
letter) can ever collide with them.
"""

from __future__ import annotations

from django.urls import path

from clusters.web import lifecycle_views, maintenance, views

app_name = "clusters"

cluster = "<slug:cluster_name>/"
group = cluster + "groups/<slug:group_name>/"
operation = cluster + "operations/<int:operation_id>/"

urlpatterns = [
    path("", views.cluster_list, name="list"),
    path("-/live/", views.cluster_list_live, name="list_live"),
    path("-/new/", views.cluster_create, name="create"),
    path("-/new/check/", views.cluster_create_check, name="create_check"),
    path(cluster, views.cluster_detail, name="detail"),
    path(cluster + "live/", views.cluster_detail_live, name="detail_live"),
    path(cluster + "kubeconfig/", views.kubeconfig, name="kubeconfig"),
    path(cluster + "kubeconfig/sso/", views.oidc_kubeconfig, name="oidc_kubeconfig"),
    path(cluster + "upgrade/", views.cluster_upgrade, name="upgrade"),
    path(cluster + "addons/", views.cluster_addons, name="addons"),
    path(cluster + "auto-repair/", views.cluster_auto_repair, name="auto_repair"),
    path(cluster + "access/", views.cluster_access, name="access"),
    path(cluster + "delete/", views.cluster_delete, name="delete"),
    path(cluster + "hibernate/", views.cluster_hibernate, name="hibernate"),
    path(cluster + "wake/", views.cluster_wake, name="wake"),
    path(cluster + "hibernation/", views.cluster_hibernation_schedule,
         name="hibernation_schedule"),
    path(cluster + "groups/add/", views.group_add, name="group_add"),
    path(group + "scale/", views.group_scale, name="group_scale"),
    path(group + "update/", views.group_update, name="group_update"),
    path(group + "remove/", views.group_remove, name="group_remove"),
    path(operation + "retry/", views.operation_retry, name="operation_retry"),
    path(operation + "cancel/", views.operation_cancel, name="operation_cancel"),
    # Part A: maintenance windows and automatic upgrades.
    path("-/maintenance/", maintenance.maintenance_default, name="maintenance_default"),
    path(cluster + "maintenance/", maintenance.cluster_maintenance, name="maintenance"),
    path(cluster + "maintenance/postpone/", maintenance.cluster_postpone,
         name="maintenance_postpone"),
    path(cluster + "maintenance/upgrade-now/", maintenance.cluster_upgrade_now,
         name="maintenance_upgrade_now"),
    # Issue 16, part C: expiry, templates and clones, deleted clusters.
    path(cluster + "expiry/", lifecycle_views.expiry_set, name="expiry_set"),
    path(cluster + "expiry/extend/", lifecycle_views.expiry_extend, name="expiry_extend"),
    path(cluster + "expiry/remove/", lifecycle_views.expiry_remove, name="expiry_remove"),
    path(cluster + "save-template/", lifecycle_views.template_save, name="template_save"),
    path("-/expiry-policy/", lifecycle_views.expiry_policy, name="expiry_policy"),
    path("-/templates/", lifecycle_views.template_list, name="templates"),
    path("-/templates/<int:template_id>/", lifecycle_views.template_edit,
         name="template_edit"),
    path("-/templates/<int:template_id>/delete/", lifecycle_views.template_delete,
         name="template_delete"),
    path("-/deleted/", lifecycle_views.deleted_list, name="deleted_list"),
    path("-/deleted/<int:deleted_id>/", lifecycle_views.deleted_detail, name="deleted_detail"),
]
