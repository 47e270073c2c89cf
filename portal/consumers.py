"""The base of the portal's WebSocket consumers (cluster pages, operations console)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer
from django.db import InterfaceError, OperationalError

from portal import metrics
from portal.cache import OUTAGE_ERRORS

logger = logging.getLogger("portal.consumers")

# RFC 6455 "Try Again Later": a dependency (Redis, PostgreSQL) is out of reach. The page polls
# meanwhile and its socket connects again by itself (htmx's ws extension retries on 1013).
CLOSE_TRY_AGAIN_LATER = 1013
UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    *OUTAGE_ERRORS, OperationalError, InterfaceError)
_LAYER_LOST = "portal.layer_lost"


class PushConsumer(AsyncWebsocketConsumer):
    """A consumer whose channel-layer messages of ``push_types`` go straight to their handler.

    Channels' ``dispatch`` first closes stale database connections, on the single thread that
    runs synchronous code, before every message. With a thousand sockets in a worker, each
    push queued a thousand such hops on that one thread: a third of the worker's time, and
    most of the delay until the last page had the change. Push handlers never use a database
    connection on the event loop (a query they need goes through ``database_sync_to_async``,
    which closes stale connections around it by itself), so for them the hop buys nothing.
    The socket's own events (connect, receive, disconnect) keep channels' path.

    Every consumer counts in the metrics: its sockets open now (from ``accept`` to the
    disconnect) and the frames it sends (``portal_websocket_*``, labelled ``metrics_name``).

    When Redis (the channel layer) or PostgreSQL is out of reach, at connect or later while
    the consumer waits for pushes, the socket is closed with 1013 (try again later) and a
    warning, instead of the consumer crashing with a traceback per socket.
    """

    push_types: frozenset[str] = frozenset()
    metrics_name = ""
    _counted_open = False
    accepted = False
    unavailable = False  # closed with 1013: nothing more is sent
    _layer_receive: Callable[[], Awaitable[dict[str, Any]]]
    _layer_lost = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.metrics_name:  # its series exist (at zero) from the first scrape on
            metrics.initialize(metrics.WEBSOCKETS_OPEN, (cls.metrics_name,))
            metrics.initialize(metrics.WEBSOCKET_PUSHES, (cls.metrics_name,))

    def _metrics_label(self) -> str:
        return self.metrics_name or type(self).__name__

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._counted_open:
            self._counted_open = False
            metrics.websocket_closed(self._metrics_label())
        await super().websocket_disconnect(message)

    # channels sets ``channel_receive`` when the consumer starts: a layer that fails while the
    # consumer waits on it becomes one message, which closes the socket.
    @property
    def channel_receive(self) -> Callable[[], Awaitable[dict[str, Any]]]:
        return self._guarded_receive

    @channel_receive.setter
    def channel_receive(self, receive: Callable[[], Awaitable[dict[str, Any]]]) -> None:
        self._layer_receive = receive

    async def _guarded_receive(self) -> dict[str, Any]:
        if self._layer_lost:  # the socket is closing: nothing more from the layer
            await asyncio.Event().wait()
        try:
            return await self._layer_receive()
        except OUTAGE_ERRORS as error:
            self._layer_lost = True
            return {"type": _LAYER_LOST, "error": f"{type(error).__name__}: {error}"[:200]}

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == _LAYER_LOST:
            await self._unavailable("channel layer", message["error"])
        elif message.get("type") in self.push_types:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        if self.unavailable:
            return
        await super().accept(subprotocol, headers)
        self.accepted = True
        if not self._counted_open:
            self._counted_open = True
            metrics.websocket_opened(self._metrics_label())

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                   close: bool = False) -> None:
        if self.unavailable:
            return
        await super().send(text_data, bytes_data, close)
        if text_data is not None or bytes_data is not None:
            metrics.websocket_pushed(self._metrics_label())

    async def close(self, code: int | bool | None = None, reason: str | None = None) -> None:
        if not self.unavailable:
            await super().close(code, reason)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_connect(message)
        except UNAVAILABLE_ERRORS as error:
            await self._unavailable("connect", f"{type(error).__name__}: {error}"[:200])

    async def _unavailable(self, stage: str, error: str) -> None:
        """Close with 1013, once (the layer and the connect handler may both fail)."""
        if self.unavailable:
            return
        logger.warning("websocket.dependency_unavailable", extra={
            "stage": stage, "error": error, "path": self.scope.get("path", "")})
        if not self.accepted:  # a refused handshake reaches the page as 1006, not 1013
            await self.accept()
        await self.close(code=CLOSE_TRY_AGAIN_LATER)
        self.unavailable = True
