"""WebSocket consumers of the cluster pages. They only push.

At connect a consumer checks the session user's membership once (outsiders and anonymous
sockets are closed), registers its page with the process's hub (``clusters.web.hub``), sends
the current state at once (so a reconnecting page, or one whose web process restarted, catches
up in one round trip) and from then on sends what the hub hands it: rendered once per process,
language and role tier, never per socket.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import translation

from billing.queries import month_to_date
from clusters.models import Cluster
from clusters.web import hub, live, queries
from portal.consumers import PushConsumer
from portal.mfa import is_trusted_staff
from portal.permissions import Perm
from portal.tenancy import IMPERSONATION_SESSION_KEY, TenantContext, access_tenant

logger = logging.getLogger("clusters.web.consumers")
CLOSE_FORBIDDEN = 4403


def _authorize(scope: dict[str, Any], slug: str) -> TenantContext | None:
    session = scope.get("session")
    impersonate = session.get(IMPERSONATION_SESSION_KEY) if session is not None else None
    if impersonate is not None and not is_trusted_staff(scope.get("user"), session):
        impersonate = None  # the session's next request ends the impersonation, recorded
    try:
        return access_tenant(scope.get("user"), slug, Perm.CLUSTERS_VIEW,
                             impersonate_tenant_id=impersonate)
    except (Http404, PermissionDenied):
        return None


class _LiveConsumer(PushConsumer):
    """A page's socket: authorized once at connect, then its snapshot, then what the process's
    hub hands it. No channel of its own (``channel_layer_alias``): the hub is the process's one
    member of the channel-layer groups. ``PushConsumer`` counts it in the metrics and closes it
    with 1013 when the database is out of reach at connect."""

    channel_layer_alias = None  # channels reads None as "no layer"
    page: hub.Page | None = None

    def _query(self) -> dict[str, str]:
        raw = parse_qs(self.scope.get("query_string", b"").decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in raw.items()}

    async def _open(self, page: hub.Page) -> None:
        """Register with the hub, then send the snapshot: a change committed after it was read
        reaches the page by the hub, and one before is in it."""
        self.page = page
        await self.accept()
        await hub.hub().join(page)
        await self._catch_up()

    async def _catch_up(self) -> None:
        page = self.page
        if page is None or page.closed:
            return
        page.ready = False
        html, shown, last_page = await database_sync_to_async(self._snapshot)()
        if html:
            await self.send(text_data=html)
        hub.hub().ready(page, shown, last_page=last_page)

    def _snapshot(self) -> tuple[str, dict[int, int], bool]:
        raise NotImplementedError

    async def push(self, frame: str) -> None:
        await self.send(text_data=frame)

    async def lost(self, error: str) -> None:
        """The hub lost the channel layer: close with 1013 (the page polls and reconnects)."""
        await self._unavailable("channel layer", error)

    async def disconnect(self, code: int) -> None:
        if self.page is not None:
            try:
                await hub.hub().leave(self.page)
            except Exception:  # the group entry expires by itself; never fail a disconnect
                logger.warning("cluster.live.leave_failed", exc_info=True)


class ClusterDetailConsumer(_LiveConsumer):
    """``/ws/t/<slug>/clusters/<name>/``: one cluster's detail page."""

    metrics_name = "cluster_detail"

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        lang = live.pick_language(self._query().get("lang"))
        found = await database_sync_to_async(self._load)(kwargs["tenant_slug"],
                                                         kwargs["cluster_name"])
        if found is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        tier, cluster_id, tenant_id, slug = found
        self.detail = hub.DetailPage(tenant_id, slug, lang, tier, self.push, self._catch_up,
                                     self.lost, cluster_id=cluster_id)
        await self._open(self.detail)

    def _load(self, slug: str, name: str) -> tuple[str, int, int, str] | None:
        ctx = _authorize(self.scope, slug)
        if ctx is None:
            return None
        cluster = (Cluster.objects.for_tenant(ctx.tenant).live().filter(name=name)
                   .values_list("pk", flat=True).first())
        if cluster is None:
            return None
        return live.tier_of(ctx), cluster, ctx.tenant.pk, ctx.tenant.slug

    def _snapshot(self) -> tuple[str, dict[int, int], bool]:
        page = self.detail
        state = queries.cluster_state_by_id(page.cluster_id)
        if state is None or state.cluster.tenant_id != page.tenant_id:
            return "", {}, True
        with translation.override(page.lang):
            html, page.actions_key = live.detail_snapshot(state, page.tier)
        return html, {page.cluster_id: state.revision}, True


class ClusterListConsumer(_LiveConsumer):
    """``/ws/t/<slug>/clusters/``: the list, with the page's filters and page number."""

    metrics_name = "cluster_list"

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        query = self._query()
        ctx = await database_sync_to_async(_authorize)(self.scope, kwargs["tenant_slug"])
        if ctx is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.tenant = ctx.tenant
        self.page_number = query.get("page", "1")
        self.listing = hub.ListPage(ctx.tenant.pk, ctx.tenant.slug,
                                    live.pick_language(query.get("lang")), live.VIEW,
                                    self.push, self._catch_up, self.lost,
                                    phase=query.get("phase", ""),
                                    version=query.get("version", ""))
        await self._open(self.listing)

    def _snapshot(self) -> tuple[str, dict[int, int], bool]:
        page = self.listing
        facets = queries.list_facets(self.tenant)
        current, rows = queries.cluster_rows_page(self.tenant, phase=page.phase,
                                                  version=page.version, page=self.page_number,
                                                  facets=facets)
        with translation.override(page.lang):
            html = render_to_string(f"{live.LIST_TEMPLATE}#rows", {
                "rows": rows, "row_html": live.rows_html(rows, self.tenant.slug),
                "page": current, "tenant_slug": self.tenant.slug, "oob": True,
                "facets": facets, "filters": {"phase": page.phase, "version": page.version},
                "costs": month_to_date(self.tenant.pk)})
        return html, {row.cluster.pk: row.revision for row in rows}, not current.has_next()
