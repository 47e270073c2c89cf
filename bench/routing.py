"""The benchmarks' own WebSocket route (``settings_bench`` adds it to the portal's): a socket
that joins one channel-layer group and sends every message of it as it comes, the floor any
push through the channel layer stands on (``bench_live.py``'s fan-out baseline)."""

from __future__ import annotations

from typing import Any

from django.urls import path

from portal.consumers import PushConsumer

ECHO_GROUP = "bench.echo"


class EchoConsumer(PushConsumer):
    """``/ws/bench/echo/``: joins ``bench.echo``; sends the ``text`` of each message."""

    push_types = frozenset({"bench.echo"})

    async def connect(self) -> None:
        await self.channel_layer.group_add(ECHO_GROUP, self.channel_name)
        await self.accept()

    async def disconnect(self, code: int) -> None:
        await self.channel_layer.group_discard(ECHO_GROUP, self.channel_name)

    async def bench_echo(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


websocket_urlpatterns = [path("ws/bench/echo/", EchoConsumer.as_asgi())]
