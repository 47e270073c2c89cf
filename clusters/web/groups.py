"""The channel-layer group of the live pages: ``clusters.live``, joined by each web process
with a cluster page open (``clusters.web.hub``), where changes are noticed
(``clusters.web.broadcast``).

One group for every tenant: a delivery batch's changes leave as one message whatever tenants
they belong to, and each process keeps what concerns its own open pages. A notice names
clusters, tenants and revisions only; what a page shows is read from the rows by the process
that serves it, scoped to the page's tenant.
"""

from __future__ import annotations

LIVE_GROUP = "clusters.live"
