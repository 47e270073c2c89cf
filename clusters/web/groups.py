"""Channel-layer group names of the live pages: ``tenant.<id>``, joined by each web process
with a page of the tenant open (``clusters.web.hub``), where the tenant's changes are noticed
(``clusters.web.broadcast``)."""

from __future__ import annotations


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"
