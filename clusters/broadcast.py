"""Live updates: after a commit, tell the pages that show a cluster that it changed.

Group names: ``tenant.<id>`` (list pages) and ``tenant.<id>.cluster.<id>`` (detail page).
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

logger = logging.getLogger("clusters.broadcast")


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def cluster_group(tenant_id: int, cluster_id: int) -> str:
    return f"tenant.{tenant_id}.cluster.{cluster_id}"


def cluster_changed(cluster_id: int) -> None:
    """Send the cluster's fresh state to its groups. Never raises: pages also poll to catch up."""
    from clusters.live import render_cluster_messages

    layer = get_channel_layer()
    if layer is None:
        return
    try:
        for group, message in render_cluster_messages(cluster_id):
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a broadcast failure must never undo or fail the change it reports
        logger.exception("cluster.broadcast.failed", extra={"cluster_id": cluster_id})
