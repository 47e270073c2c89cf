"""One hub per web process: it hears of changes for the process's open cluster pages, renders
once what they need, and sends it to each.

The notices (``clusters.web.broadcast``) carry no HTML, only which clusters changed, their
tenants and revisions. While a page is open in this process, the hub is in the live group
(one member per process, not one per socket: a notice is one message per process however
many pages show its clusters, and one for a whole batch of changes); it keeps the changes of
the tenants whose pages it serves. For each notice it marks the cluster pending on the pages that
show it; a flush then reads every pending cluster in one snapshot, renders each once per
language (and role tier, for detail pages) in a thread of its own, and hands each page its
part.

Per page and per cluster, pushes leave at most once every ``PUSH_SECONDS``: a cluster that
changes fifty times in a second reaches an open page a few times, the last push carrying the
state the cluster ended in (read after its last change). Each page also keeps the revision it
shows of each cluster and takes nothing older: two reads of one cluster may finish in any
order, and a page never goes back to an older state (``live.js`` holds to the same rule for
what reaches the page by other ways, polls and snapshots).

A page registers before it reads its snapshot and is handed nothing before that snapshot is
sent (the notices meanwhile wait, and those the snapshot already covers are dropped), so it
misses no change. If the hub loses a message of the channel layer, every page sends its
snapshot again once the layer answers; if the layer stays away, the pages' sockets are closed
with 1013 (the pages poll and connect again).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from channels.layers import get_channel_layer
from django.db import DatabaseError, connection, connections

from clusters.web import live
from clusters.web.broadcast import NOTICE, changes_of
from clusters.web.groups import LIVE_GROUP
from portal.caching import held

logger = logging.getLogger("clusters.web.hub")

PUSH_SECONDS = 0.25
"""A page gets at most one push of a given cluster per this many seconds (the newest state
follows when they are up)."""
HOLD_SECONDS = 2.0
"""How long the render thread keeps what all pushes read alike (release, offerings, costs)."""
RETRY_SECONDS = 0.2
"""The first wait after the channel layer failed (then doubling, up to 10 s)."""
REJOIN_SECONDS = 3600.0
"""The hub's group memberships are renewed this often (the Redis layer forgets them after a
day)."""


class Page:
    """What the hub knows of one open page: its tenant, language and role tier, what it shows
    (cluster → revision) and what it still waits for. ``send`` delivers a frame to its socket;
    ``resync`` makes it send its snapshot again; ``lost`` tells it the channel layer went away
    (its socket closes with 1013, and the page polls until it connects again)."""

    def __init__(self, tenant_id: int, tenant_slug: str, lang: str, tier: str,
                 send: Callable[[str], Awaitable[None]],
                 resync: Callable[[], Awaitable[None]] | None = None,
                 lost: Callable[[str], Awaitable[None]] | None = None) -> None:
        self.tenant_id, self.tenant_slug, self.lang, self.tier = tenant_id, tenant_slug, lang, tier
        self.send, self.resync, self.lost = send, resync, lost
        self.ready = False
        self.closed = False
        self.shown: dict[int, int] = {}  # cluster → the revision the page shows
        self.pending: dict[int, int] = {}  # cluster → the newest revision noticed, not sent
        self.due: dict[int, float] = {}  # cluster → when its next push may leave (monotonic)

    def wants(self, cluster_id: int) -> bool:
        raise NotImplementedError

    def frame(self, push: Any) -> str | None:
        """What to send the page for ``push`` (a newer revision than it shows), if anything;
        updates what the page shows."""
        raise NotImplementedError


class ListPage(Page):
    """A page of a tenant's cluster list with its filters. It follows the clusters it shows;
    the last page of the list also takes in new clusters that match its filters."""

    def __init__(self, *args: Any, phase: str = "", version: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase, self.version = phase, version
        self.last_page = True

    def wants(self, cluster_id: int) -> bool:
        return cluster_id in self.shown or self.last_page

    def frame(self, push: live.RowPush) -> str | None:
        cluster_id = push.cluster_id
        matches = (not push.deleted
                   and (not self.phase or push.phase == self.phase)
                   and (not self.version or push.version == self.version))
        html = push.html.get(self.lang) or next(iter(push.html.values()), "")
        if cluster_id in self.shown:
            if matches:
                self.shown[cluster_id] = push.revision
                return push.oob(self.lang)
            del self.shown[cluster_id]
            return f'<tbody id="cluster-{cluster_id}" hx-swap-oob="delete"></tbody>'
        if matches and self.last_page:
            self.shown[cluster_id] = push.revision
            # The table first: a leading <tbody> would make the HTML parser drop the wrapper.
            return ('<table hx-swap-oob="beforeend:#cluster-table">' + html + '</table>'
                    '<div id="clusters-empty" hx-swap-oob="delete"></div>')
        return None


class DetailPage(Page):
    """A cluster's detail page: its regions, and the action forms only when they changed
    (``actions_key``), so that a push never disturbs someone filling them in for nothing."""

    def __init__(self, *args: Any, cluster_id: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.cluster_id = cluster_id
        self.actions_key = ""

    def wants(self, cluster_id: int) -> bool:
        return cluster_id == self.cluster_id

    def frame(self, push: live.DetailPush) -> str | None:
        variant = (self.lang, self.tier)
        regions = push.regions.get(variant)
        if regions is None:
            return None
        self.shown[push.cluster_id] = push.revision
        key, actions = push.actions.get(variant, ("", None))
        if key != self.actions_key and actions is not None:
            self.actions_key = key
            regions += actions
        return regions


@dataclass
class _Job:
    """One flush's reading and rendering: what each kind of page asks for."""

    rows: dict[int, set[str]] = field(default_factory=dict)  # cluster → languages
    slugs: dict[int, str] = field(default_factory=dict)  # tenant → slug
    details: dict[int, dict[live.Variant, set[str]]] = field(default_factory=dict)
    tenants: dict[int, int] = field(default_factory=dict)  # cluster → tenant it was noticed in


Rendered = tuple[dict[int, live.RowPush], dict[int, live.DetailPush]]


def render(job: _Job) -> Rendered:
    """Read and render a flush's clusters (in the hub's thread). What every push reads
    besides its cluster (the platform's release, offerings, month-to-date costs) is read at
    most once per ``HOLD_SECONDS``. A database connection that went away is replaced once."""
    for attempt in (1, 2):
        try:
            with held(HOLD_SECONDS):
                rows = live.row_pushes(job.rows, job.slugs) if job.rows else {}
                details = live.detail_pushes(job.details) if job.details else {}
        except DatabaseError:
            connection.close()
            if attempt == 2:
                raise
            continue
        # Never another tenant's cluster, whatever the notice said.
        return ({pk: push for pk, push in rows.items() if push.tenant_id == job.tenants[pk]},
                {pk: push for pk, push in details.items()
                 if push.tenant_id == job.tenants[pk]})
    raise AssertionError("unreachable")


_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def executor() -> ThreadPoolExecutor:
    """The thread that reads and renders for the hubs of this process. One is enough (the
    work holds the interpreter lock), and it keeps its database connection between flushes."""
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(1, thread_name_prefix="live-render")
        return _executor


class Hub:
    def __init__(self, layer: Any) -> None:
        self.layer = layer
        self.loop = asyncio.get_running_loop()
        self.channel = ""
        self.pages: dict[int, set[Page]] = {}  # tenant → open pages
        self.joined: set[str] = set()  # the groups the hub is in (the live group, or none)
        self.dirty: set[Page] = set()
        self.wake = asyncio.Event()
        self.membership = asyncio.Lock()
        self.tasks: list[asyncio.Task[None]] = []
        self.started = False
        # What it took, for the benchmark and the logs: flushes, pushes, seconds rendering.
        self.stats = {"flushes": 0, "pushes": 0, "render_seconds": 0.0, "rendered": 0}

    async def start(self) -> None:
        if self.started:
            return
        self.started = True
        # The layer's usual prefix: the Redis layer receives every channel of the process
        # through one connection per prefix, and takes turns between prefixes.
        self.channel = await self.layer.new_channel()
        self.tasks = [self.loop.create_task(self._receive()), self.loop.create_task(self._flush()),
                      self.loop.create_task(self._rejoin())]

    # ------------------------------------------------------------------ pages

    async def join(self, page: Page) -> None:
        """Register ``page`` (before it reads its snapshot): from now on the hub keeps what
        changes for it, and hands it over once the page is ``ready``."""
        await self.start()
        async with self.membership:
            self.pages.setdefault(page.tenant_id, set()).add(page)
            if LIVE_GROUP not in self.joined:
                await self.layer.group_add(LIVE_GROUP, self.channel)
                self.joined.add(LIVE_GROUP)

    def ready(self, page: Page, shown: dict[int, int], *, last_page: bool = True) -> None:
        """The page sent its snapshot, which shows ``shown`` (cluster → revision)."""
        page.shown = dict(shown)
        if isinstance(page, ListPage):
            page.last_page = last_page
        page.pending = {cid: rev for cid, rev in page.pending.items()
                        if rev > page.shown.get(cid, -1) and page.wants(cid)}
        page.ready = True
        if page.pending:
            self._mark(page)

    async def leave(self, page: Page) -> None:
        page.closed = True
        self.dirty.discard(page)
        async with self.membership:
            pages = self.pages.get(page.tenant_id)
            if pages is None:
                return
            pages.discard(page)
            if pages:
                return
            del self.pages[page.tenant_id]
            if self.pages or LIVE_GROUP not in self.joined:
                return
            self.joined.discard(LIVE_GROUP)
            try:
                await self.layer.group_discard(LIVE_GROUP, self.channel)
            except Exception:  # the membership expires by itself; the page is gone anyway
                logger.warning("cluster.live.discard_failed")

    # ------------------------------------------------------------------ notices

    def notice(self, tenant_id: int, cluster_id: int, revision: int) -> None:
        for page in self.pages.get(tenant_id, ()):
            if page.closed or not page.wants(cluster_id) or revision <= page.shown.get(
                    cluster_id, -1):
                continue
            if revision > page.pending.get(cluster_id, -1):
                page.pending[cluster_id] = revision
            if page.ready:
                self._mark(page)

    def _mark(self, page: Page) -> None:
        self.dirty.add(page)
        self.wake.set()

    async def _receive(self) -> None:
        failures = 0
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # Notices may have been lost. Once the layer answers again (the groups can be
                # joined anew), every open page sends its snapshot again. If it does not answer
                # at the first retry, the pages are told (their sockets close with 1013: live
                # updates pause, the pages poll and connect again when they can).
                failures += 1
                logger.warning("cluster.live.receive_failed", exc_info=failures == 1)
                await asyncio.sleep(min(10.0, RETRY_SECONDS * 2 ** min(failures - 1, 6)))
                if await self._renew():
                    failures = 0
                    self.loop.create_task(self._resync())
                elif failures == 1:
                    self.loop.create_task(self._lost(f"{type(error).__name__}: {error}"[:200]))
                continue
            if message.get("type") == NOTICE:
                for tenant_id, cluster_id, revision in changes_of(message):
                    if tenant_id in self.pages:
                        self.notice(tenant_id, cluster_id, revision)

    async def _lost(self, error: str) -> None:
        for pages in list(self.pages.values()):
            for page in list(pages):
                if page.lost is not None and not page.closed:
                    try:
                        await page.lost(error)
                    except Exception:  # the page's own socket is gone or failing
                        logger.warning("cluster.live.close_failed", exc_info=True)

    async def _resync(self) -> None:
        for pages in list(self.pages.values()):
            for page in list(pages):
                if page.resync is not None and not page.closed:
                    try:
                        await page.resync()
                    except Exception:  # the page's own socket is gone or failing
                        logger.warning("cluster.live.resync_failed", exc_info=True)

    async def _rejoin(self) -> None:
        while True:
            await asyncio.sleep(REJOIN_SECONDS)
            await self._renew()

    async def _renew(self) -> bool:
        """Join every group the hub belongs in again; whether the layer took them all."""
        async with self.membership:
            for group in list(self.joined):
                try:
                    await self.layer.group_add(group, self.channel)
                except Exception:
                    logger.warning("cluster.live.rejoin_failed", extra={"group": group})
                    return False
        return True

    # ------------------------------------------------------------------ flushes

    async def _flush(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            try:
                wait = await self.flush()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next notice tries again; pages also catch up by polling
                logger.exception("cluster.live.flush_failed")
                await asyncio.sleep(1.0)
                self.wake.set()
                continue
            if wait is not None:
                self.loop.call_later(wait, self.wake.set)

    async def flush(self) -> float | None:
        """Push what is due to every page with something pending; the seconds until the
        next push falls due, if any is waiting."""
        now = time.monotonic()
        job = _Job()
        due: list[tuple[Page, int]] = []
        later: float | None = None
        for page in list(self.dirty):
            if page.closed or not page.ready:
                self.dirty.discard(page)
                continue
            for cluster_id in page.pending:
                at = page.due.get(cluster_id, 0.0)
                if at > now:
                    later = at if later is None else min(later, at)
                    continue
                due.append((page, cluster_id))
                job.tenants[cluster_id] = page.tenant_id
                if isinstance(page, DetailPage):
                    variants = job.details.setdefault(cluster_id, {})
                    variants.setdefault((page.lang, page.tier), set()).add(page.actions_key)
                else:
                    job.rows.setdefault(cluster_id, set()).add(page.lang)
                    job.slugs[page.tenant_id] = page.tenant_slug
        if due:
            started = time.perf_counter()
            rows, details = await self.loop.run_in_executor(executor(), render, job)
            self.stats["render_seconds"] += time.perf_counter() - started
            self.stats["rendered"] += len(rows) + len(details)
            self.stats["flushes"] += 1
            sent_at = time.monotonic()
            for page, cluster_id in due:
                if page.closed:
                    continue
                push: Any = (details if isinstance(page, DetailPage) else rows).get(cluster_id)
                if push is None:
                    page.pending.pop(cluster_id, None)  # gone (or not this tenant's)
                    continue
                # A read that began before the newest notice may be older than it: the
                # pending notice stays for the next flush (once due, like any push).
                page.due[cluster_id] = sent_at + PUSH_SECONDS
                if push.revision >= page.pending.get(cluster_id, -1):
                    page.pending.pop(cluster_id, None)
                if push.revision <= page.shown.get(cluster_id, -1):
                    continue
                frame = page.frame(push)
                if frame:
                    await self._send(page, frame)
        for page in list(self.dirty):
            if not page.pending or page.closed:
                self.dirty.discard(page)
                continue
            for cluster_id in page.pending:
                at = page.due.get(cluster_id, 0.0)
                later = at if later is None else min(later, at)
        return None if later is None else max(0.0, later - time.monotonic())

    async def _send(self, page: Page, frame: str) -> None:
        """The servers the portal runs on write a frame without waiting (uvicorn, daphne), so
        the pages are served one after the other without one holding up the rest."""
        try:
            await page.send(frame)
            self.stats["pushes"] += 1
        except Exception:  # the socket went away: its consumer leaves the hub
            page.closed = True
            logger.info("cluster.live.send_failed", exc_info=True)


_hubs: dict[asyncio.AbstractEventLoop, Hub] = {}


def hub() -> Hub:
    """The hub of the running event loop (one per web process; tests run several loops)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        for old in [old for old in _hubs if old.is_closed()]:
            del _hubs[old]
        found = _hubs[loop] = Hub(get_channel_layer())
    return found


async def stop() -> None:
    """Stop the hub of the running loop and leave its groups (as a web process that stops)."""
    found = _hubs.pop(asyncio.get_running_loop(), None)
    if found is None:
        return
    for task in found.tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
    for group in list(found.joined):
        with contextlib.suppress(Exception):
            await found.layer.group_discard(group, found.channel)
    # The render thread's database connection goes too.
    await asyncio.get_running_loop().run_in_executor(executor(), connections.close_all)
