"""WebSocket consumers of the cluster pages. They only push.

At connect a consumer checks the session user's membership once (outsiders and anonymous
sockets are closed), joins the cluster's channel group, sends the current state at once (so a
reconnecting page catches up) and from then on forwards the HTML ``clusters.web.live`` rendered
for its language and role tier. It never renders per change.

A detail page registers in ``clusters.web.live``'s presence registry for as long as it is open
(on connect, then by a heartbeat, and off on disconnect; a page whose process died drops out
when its entry expires): the detail regions are rendered only for clusters with a page open.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.core.exceptions import PermissionDenied
from django.http import Http404
from django.template.loader import render_to_string
from django.utils import translation

from billing.queries import month_to_date
from clusters.models import Cluster
from clusters.web import live, queries
from clusters.web.groups import cluster_group, tenant_group
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
    joined: list[str]
    # They only forward the HTML in the message: straight from the event loop, no thread hop.
    push_types = frozenset({"cluster.row", "cluster.detail"})

    def _query(self) -> dict[str, str]:
        raw = parse_qs(self.scope.get("query_string", b"").decode(), keep_blank_values=True)
        return {key: values[-1] for key, values in raw.items()}

    async def _join(self, groups: list[str]) -> None:
        self.joined = []
        for group in groups:
            await self.channel_layer.group_add(group, self.channel_name)
            self.joined.append(group)

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "joined", []):
            try:
                await self.channel_layer.group_discard(group, self.channel_name)
            except Exception:  # the group entry expires by itself; never fail a disconnect
                logger.warning("cluster.live.discard_failed", extra={"group": group})


class ClusterDetailConsumer(_LiveConsumer):
    """``/ws/t/<slug>/clusters/<name>/``: one cluster's detail page."""

    metrics_name = "cluster_detail"

    presence: live.DetailPresence | None = None
    heartbeat: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.lang = live.pick_language(self._query().get("lang"))
        found = await database_sync_to_async(self._load)(kwargs["tenant_slug"],
                                                         kwargs["cluster_name"])
        if found is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.tier, cluster_id, tenant_id = found
        self.presence = live.DetailPresence(cluster_id, self.lang, self.tier)
        await self._join([cluster_group(tenant_id, cluster_id)])
        await self.accept()
        snapshot = await database_sync_to_async(self._snapshot)(cluster_id)
        self.heartbeat = asyncio.create_task(self._beat())
        if snapshot:
            await self.send(text_data=snapshot)

    def _load(self, slug: str, name: str) -> tuple[str, int, int] | None:
        ctx = _authorize(self.scope, slug)
        if ctx is None:
            return None
        cluster = (Cluster.objects.for_tenant(ctx.tenant).live().filter(name=name)
                   .values_list("pk", flat=True).first())
        if cluster is None:
            return None
        return live.tier_of(ctx), cluster, ctx.tenant.pk

    def _snapshot(self, cluster_id: int) -> str:
        # Registered before the state is read: a change broadcast without this page's
        # variant was committed before that, so the snapshot has it.
        self._register()
        state = queries.cluster_state_by_id(cluster_id)
        if state is None:
            return ""
        with translation.override(self.lang):
            return live.render_detail(state, self.tier)

    def _register(self) -> None:
        if self.presence is None:
            return
        try:
            self.presence.beat()
        except Exception:  # the heartbeat tries again; the page has its snapshot meanwhile
            logger.warning("cluster.live.register_failed", exc_info=True)

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(live.PRESENCE_SECONDS / 3)
            if self.presence is not None and self.presence.due():
                await sync_to_async(self._register, thread_sensitive=False)()

    async def disconnect(self, code: int) -> None:
        if self.heartbeat is not None:
            self.heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.heartbeat
        if self.presence is not None:
            try:
                await sync_to_async(self.presence.leave, thread_sensitive=False)()
            except Exception:  # the entry expires by itself; never fail a disconnect
                logger.warning("cluster.live.unregister_failed", exc_info=True)
        await super().disconnect(code)

    async def cluster_detail(self, event: dict[str, Any]) -> None:
        # Rendered only for the pages registered at the time; one that registered since has
        # the change in its snapshot.
        variants = event["html"].get(self.lang, {})
        tiered = variants.get(self.tier)
        if tiered is not None:
            await self.send(text_data=variants["common"] + tiered)


class ClusterListConsumer(_LiveConsumer):
    """``/ws/t/<slug>/clusters/``: the list, with the page's filters and page number."""

    metrics_name = "cluster_list"

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        query = self._query()
        self.lang = live.pick_language(query.get("lang"))
        self.phase = query.get("phase", "")
        self.version = query.get("version", "")
        self.page = query.get("page", "1")
        ctx = await database_sync_to_async(_authorize)(self.scope, kwargs["tenant_slug"])
        if ctx is None:
            await self.close(code=CLOSE_FORBIDDEN)
            return
        self.tenant = ctx.tenant
        self.shown: set[int] = set()
        self.last_page = True
        await self._join([tenant_group(ctx.tenant.pk)])
        await self.accept()
        await self.send(text_data=await database_sync_to_async(self._snapshot)())

    def _snapshot(self) -> str:
        facets = queries.list_facets(self.tenant)
        page, rows = queries.cluster_rows_page(self.tenant, phase=self.phase,
                                               version=self.version, page=self.page,
                                               facets=facets)
        self.shown = {row.cluster.pk for row in rows}
        self.last_page = not page.has_next()
        with translation.override(self.lang):
            return render_to_string(f"{live.LIST_TEMPLATE}#rows", {
                "rows": rows, "row_html": live.rows_html(rows, self.tenant.slug),
                "page": page, "tenant_slug": self.tenant.slug, "oob": True,
                "facets": facets, "filters": {"phase": self.phase, "version": self.version},
                "costs": month_to_date(self.tenant.pk)})

    async def cluster_row(self, event: dict[str, Any]) -> None:
        cluster_id = event["cluster_id"]
        matches = (not event["deleted"]
                   and (not self.phase or event["phase"] == self.phase)
                   and (not self.version or event["version"] == self.version))
        if cluster_id in self.shown:
            if matches:
                await self.send(text_data=self._variant(event))
            else:
                self.shown.discard(cluster_id)
                await self.send(text_data=f'<tbody id="cluster-{cluster_id}" '
                                          f'hx-swap-oob="delete"></tbody>')
        elif matches and self.last_page:
            self.shown.add(cluster_id)
            # The table first: a leading <tbody> would make the HTML parser drop the wrapper.
            await self.send(text_data='<table hx-swap-oob="beforeend:#cluster-table">'
                            + self._variant(event).replace(' hx-swap-oob="true"', "", 1)
                            + '</table><div id="clusters-empty" hx-swap-oob="delete"></div>')

    def _variant(self, event: dict[str, Any]) -> str:
        return event["html"].get(self.lang) or next(iter(event["html"].values()), "")
