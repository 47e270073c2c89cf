"""Channel-layer group names of the live pages: ``tenant.<id>`` (list pages) and
``tenant.<id>.cluster.<id>`` (detail pages)."""

from __future__ import annotations


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def cluster_group(tenant_id: int, cluster_id: int) -> str:
    return f"tenant.{tenant_id}.cluster.{cluster_id}"
