"""The base of the portal's WebSocket consumers (cluster pages, operations console)."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer

from portal import metrics


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
    """

    push_types: frozenset[str] = frozenset()
    metrics_name = ""
    _counted_open = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.metrics_name:  # its series exist (at zero) from the first scrape on
            metrics.initialize(metrics.WEBSOCKETS_OPEN, (cls.metrics_name,))
            metrics.initialize(metrics.WEBSOCKET_PUSHES, (cls.metrics_name,))

    def _metrics_label(self) -> str:
        return self.metrics_name or type(self).__name__

    async def accept(self, subprotocol: str | None = None, headers: Any = None) -> None:
        await super().accept(subprotocol, headers)
        if not self._counted_open:
            self._counted_open = True
            metrics.websocket_opened(self._metrics_label())

    async def send(self, text_data: str | None = None, bytes_data: bytes | None = None,
                   close: bool = False) -> None:
        await super().send(text_data, bytes_data, close)
        if text_data is not None or bytes_data is not None:
            metrics.websocket_pushed(self._metrics_label())

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        if self._counted_open:
            self._counted_open = False
            metrics.websocket_closed(self._metrics_label())
        await super().websocket_disconnect(message)

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in self.push_types:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)
