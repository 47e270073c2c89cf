"""The operations console's WebSocket: pushes the board to staff as it changes.

Only active staff whose session passed their second factor connect (others are closed with 4403,
as on the tenant pages), and the socket closes the same way once that no longer holds: each
render re-reads the staff member first (``portal.mfa``). The socket joins the ``staff`` group
and sends the board at once (delivery is at most once and browsers reconnect). The board differs
from the tenant pages in two ways that shape this consumer: what it shows changes with time
alone (an operation *becomes* stuck, "last event 30 s ago" ages), and each socket picks its own
"stuck after" threshold. So it renders the board itself, for its own threshold and language,
when the ``staff`` group says something changed and at least every few seconds otherwise, and
sends it only when it differs from the last one sent. Staff sockets are few; the tenant pages
keep the render-once-per-change design.

``PushConsumer`` (``portal.consumers``), the base of the portal's consumers, runs channel-layer
pushes straight on the event loop (see there).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import time
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.utils import translation

from portal.consumers import PushConsumer
from portal.mfa import is_trusted_staff
from staff import views as staff

logger = logging.getLogger("portal.consumers")
CLOSE_FORBIDDEN = 4403
REFRESH_SECONDS = 5.0  # the board re-reads at least this often (time passes, ages change)
MIN_GAP_SECONDS = 1.0  # and at most once a second, however many changes are announced
_READ_AT = re.compile(r'<p [^>]*data-testid="refreshed-at"[^>]*>.*?</p>', re.S)


def _is_trusted_staff(scope: dict[str, Any], *, reread: bool = False) -> bool:
    """Whether the socket's user is staff whose session passed their second factor; with
    ``reread``, as the database says now (the scope keeps the user of the connection)."""
    user = scope.get("user")
    if reread and user is not None and getattr(user, "is_authenticated", False):
        user = get_user_model().objects.filter(pk=user.pk).first()
    return is_trusted_staff(user, scope.get("session"))


class StaffConsoleConsumer(PushConsumer):
    """``/ws/staff/?stuck=<minutes>&lang=<code>``: the board of ``/staff/``."""

    metrics_name = "staff_console"
    push_types = frozenset({"staff.changed"})  # renders through database_sync_to_async
    refused = False  # the staff member's standing was lost: the socket is closing

    async def connect(self) -> None:
        if not await database_sync_to_async(_is_trusted_staff)(self.scope):
            await self.close(code=CLOSE_FORBIDDEN)
            return
        query = parse_qs(self.scope.get("query_string", b"").decode())
        self.stuck = staff.stuck_minutes_from((query.get("stuck") or [""])[-1])
        lang = (query.get("lang") or [""])[-1]
        self.lang = lang if lang in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE
        self.digest = ""
        self.dirty = False
        self.rendered_at = 0.0
        await self.channel_layer.group_add(staff.STAFF_GROUP, self.channel_name)
        self.joined = True
        await self.accept()
        await self.push()
        self.ticker = asyncio.create_task(self._tick())

    async def disconnect(self, code: int) -> None:
        ticker = getattr(self, "ticker", None)
        if ticker is not None:
            ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await ticker
        if getattr(self, "joined", False):
            try:
                await self.channel_layer.group_discard(staff.STAFF_GROUP, self.channel_name)
            except Exception:  # the group entry expires by itself; never fail a disconnect
                logger.warning("staff.live.discard_failed")

    async def staff_changed(self, event: dict[str, Any]) -> None:
        self.dirty = True
        if time.monotonic() - self.rendered_at >= MIN_GAP_SECONDS:
            await self.push()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(MIN_GAP_SECONDS)
            due = time.monotonic() - self.rendered_at >= REFRESH_SECONDS
            if self.dirty or due:
                try:
                    await self.push()
                except Exception:  # keep the socket: the next tick tries again
                    logger.exception("staff.live.render_failed")

    async def push(self) -> None:
        if self.refused:
            return
        self.dirty = False
        self.rendered_at = time.monotonic()
        html = await database_sync_to_async(self._render)()
        if html is None:
            self.refused = True
            await self.close(code=CLOSE_FORBIDDEN)
            return
        digest = hashlib.sha1(_READ_AT.sub("", html).encode(),
                              usedforsecurity=False).hexdigest()
        if digest != self.digest:
            self.digest = digest
            await self.send(text_data=html)

    def _render(self) -> str | None:
        if not _is_trusted_staff(self.scope, reread=True):
            return None
        with translation.override(self.lang):
            return staff.render_board(self.stuck)
