"""The base of the portal's WebSocket consumers (cluster pages, operations console)."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncWebsocketConsumer


class PushConsumer(AsyncWebsocketConsumer):
    """A consumer whose channel-layer messages of ``push_types`` go straight to their handler.

    Channels' ``dispatch`` first closes stale database connections, on the single thread that
    runs synchronous code, before every message. With a thousand sockets in a worker, each
    push queued a thousand such hops on that one thread: a third of the worker's time, and
    most of the delay until the last page had the change. Push handlers never use a database
    connection on the event loop (a query they need goes through ``database_sync_to_async``,
    which closes stale connections around it by itself), so for them the hop buys nothing.
    The socket's own events (connect, receive, disconnect) keep channels' path.
    """

    push_types: frozenset[str] = frozenset()

    async def dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") in self.push_types:
            await getattr(self, get_handler_name(message))(message)
        else:
            await super().dispatch(message)
