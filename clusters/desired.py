"""The desired rows of a cluster: what a tenant asked for, as ``Cluster`` and ``NodeGroup`` rows.

Actions write them when a change is accepted; the engine writes them back when a change that
never reached the platform fails or is cancelled.
"""

from __future__ import annotations

import dataclasses

from django.utils import timezone

from clusters.models import (
    Cluster,
    NodeGroup,
    addons_to_json,
    auto_repair_to_json,
    oidc_users_to_json,
)
from cozystack.specs import ClusterSpec


def write_desired_rows(cluster: Cluster, spec: ClusterSpec) -> None:
    """Make the desired rows say ``spec``. Groups no longer in it are kept as removed history.

    A group that comes back before the platform removed it (a cancelled or failed removal)
    gets its row back, with the node counts still observed on it.
    """
    cluster.version = spec.version
    cluster.storage_class = spec.storage_class
    cluster.host = spec.host
    cluster.control_plane_replicas = spec.control_plane.replicas
    cluster.control_plane_preset = spec.control_plane.api_server_preset
    cluster.addons = addons_to_json(spec.addons)
    cluster.auto_repair = auto_repair_to_json(spec.auto_repair)
    cluster.oidc_users = oidc_users_to_json(spec.oidc_users)
    cluster.save()
    existing = {g.name: g for g in cluster.node_groups.filter(removed_at__isnull=True)}
    now = timezone.now()
    for position, group in enumerate(spec.node_groups):
        row = existing.pop(group.name, None) or _returning_group(cluster, group.name) \
            or NodeGroup(cluster=cluster, name=group.name)
        row.removed_at = None
        gpu_models = sorted(set(group.gpus))
        row.position = position
        row.instance_type = group.instance_type
        row.min_replicas = group.min_replicas
        row.max_replicas = group.max_replicas
        row.disk_gib = group.disk_gib
        row.gpu_model = gpu_models[0] if gpu_models else ""
        row.gpus_per_node = len(group.gpus)
        row.roles = list(group.roles)
        row.storage_class = group.storage_class
        row.max_unhealthy = group.max_unhealthy
        row.node_startup_timeout = group.node_startup_timeout
        row.kubelet = {name: value for name, value in dataclasses.asdict(group.kubelet).items()
                       if value}
        row.full_clean(exclude=["cluster"], validate_constraints=False)
        row.save()
    for row in existing.values():
        row.removed_at = now
        row.save(update_fields=["removed_at"])


def _returning_group(cluster: Cluster, name: str) -> NodeGroup | None:
    return (cluster.node_groups.filter(name=name, removed_at__isnull=False)
            .exclude(observed_phase="Deleted").order_by("-removed_at").first())
