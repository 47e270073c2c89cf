"""Pushes to open pages through the channel layer. A push never fails, nor holds up, what it
reports: the pages it misses poll, and catch up when their socket connects again.

While the channel layer (Redis) is out of reach, a per-process circuit breaker
(``portal.breaker``) skips pushes for ``OUTAGE_RETRY_SECONDS`` after a failure, so a request or
the watcher's delivery thread does not wait on every push for a connection to be refused.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from portal.breaker import Breaker
from portal.cache import OUTAGE_ERRORS

OUTAGE_RETRY_SECONDS = 3.0
_breaker = Breaker("channel layer", OUTAGE_RETRY_SECONDS)


def group_send(group: str, message: dict[str, Any], *,
               loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """Send ``message`` to ``group``; False when it was not sent because the channel layer is
    out of reach (or there is none). ``loop``: an event loop of the calling thread to send in
    (``async_to_sync`` starts a loop, and the layer a connection, per call).

    Errors other than an unreachable layer (a message that cannot be encoded, ...) propagate.
    """
    layer = get_channel_layer()
    if layer is None or not _breaker.allows():
        return False
    try:
        if loop is not None:
            loop.run_until_complete(layer.group_send(group, message))
        else:
            async_to_sync(layer.group_send)(group, message)
    except OUTAGE_ERRORS as error:  # TimeoutError is an OSError
        _breaker.failed(error)
        return False
    _breaker.succeeded()
    return True


def group_send_many(sends: list[tuple[str, dict[str, Any]]], *,
                    loop: asyncio.AbstractEventLoop | None = None) -> bool:
    """``group_send`` of several messages at once (concurrently, on one loop); False when they
    were not sent because the channel layer is out of reach (or there is none)."""
    layer = get_channel_layer()
    if layer is None or not _breaker.allows():
        return False

    async def send_all() -> None:
        await asyncio.gather(*(layer.group_send(group, message) for group, message in sends))

    try:
        if loop is not None:
            loop.run_until_complete(send_all())
        else:
            async_to_sync(send_all)()
    except OUTAGE_ERRORS as error:
        _breaker.failed(error)
        return False
    _breaker.succeeded()
    return True
