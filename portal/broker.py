"""The Celery broker's Redis transport, as kombu ships it, with one repair for Redis going away.

When a worker loses its broker connection, Celery closes the connection (``Connection.close``)
and kombu closes its channel, whose last act is to put the messages the worker took but did
not acknowledge back on their queue (``restore_unacked``). That needs connection parameters,
which kombu reads from the transport's ``client``; on that path the client can already be
detached (``None``), and the ``AttributeError`` that follows is not a connection error, so
Celery treats it as unrecoverable and the worker exits. Every worker exited when Redis was
down for 30 s (``make chaos``, fault ``redis-down``).

Here a channel keeps its connection's parameters from when it was opened and uses them when
the client is gone: the restore then fails as what it is (Redis refuses the connection), which
Celery ignores while it reconnects; the messages stay in the unacknowledged index and are
delivered again once their visibility timeout passes.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._opened_with = self.connection.client

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        transport = self.connection
        if transport.client is not None or self._opened_with is None:
            return super()._connparams(asynchronous)
        transport.client = self._opened_with
        try:
            return super()._connparams(asynchronous)
        finally:
            transport.client = None


class Transport(redis.Transport):
    Channel = Channel
