"""What a live page receives when a cluster changes (rendered once, sent to every socket)."""

from __future__ import annotations

from typing import Any

from clusters.broadcast import cluster_group, tenant_group
from clusters.models import Cluster


def render_cluster_messages(cluster_id: int) -> list[tuple[str, dict[str, Any]]]:
    cluster = Cluster.objects.filter(pk=cluster_id).only("id", "tenant_id").first()
    if cluster is None:
        return []
    message = {"type": "cluster.changed", "cluster_id": cluster.pk}
    return [(tenant_group(cluster.tenant_id), message),
            (cluster_group(cluster.tenant_id, cluster.pk), message)]
