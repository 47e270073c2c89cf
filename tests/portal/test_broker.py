"""The broker transport (portal/broker.py): a channel whose connection was detached while
Redis was away still knows where Redis is, so closing it fails as a connection error (which
Celery ignores while it reconnects) instead of an AttributeError that stops the worker."""

from __future__ import annotations

import pytest
from kombu import Connection
from kombu.common import ignore_errors
from kombu.transport import redis as stock
from redis.exceptions import ConnectionError as RedisConnectionError

from portal import broker


def _taken_unacked(url: str, transport) -> Connection:
    """A connection holding one message it took and did not acknowledge, as a worker
    running a task (acks_late) does."""
    connection = Connection(url, transport=transport)
    queue = connection.SimpleQueue("broker-test")
    queue.put({"n": 1})
    message = queue.get(timeout=5)
    assert message.payload == {"n": 1}  # taken, never acknowledged
    return connection


def _detach(connection: Connection) -> None:
    """What kombu leaves when the connection was closed under the channel: the transport's
    client is gone (``Connection._do_close_transport``)."""
    connection.transport.client = None


def test_the_stock_transport_stops_the_worker_there(own_redis):
    connection = _taken_unacked(f"redis://127.0.0.1:{own_redis.port}/0", stock.Transport)
    channel = connection.default_channel
    own_redis.stop()
    _detach(connection)

    with pytest.raises(AttributeError):
        channel.close()


def test_the_portal_transport_fails_as_a_connection_error_which_celery_ignores(own_redis):
    connection = _taken_unacked(f"redis://127.0.0.1:{own_redis.port}/0",
                                "portal.broker:Transport")
    channel = connection.default_channel
    assert isinstance(channel, broker.Channel)
    own_redis.stop()
    _detach(connection)

    with pytest.raises(RedisConnectionError):
        channel.close()
    assert channel._connparams()["port"] == own_redis.port  # still knows where Redis is
    assert connection.transport.client is None  # left as kombu left it


def test_with_redis_back_the_message_taken_is_put_back_on_its_queue(own_redis):
    url = f"redis://127.0.0.1:{own_redis.port}/0"
    connection = _taken_unacked(url, "portal.broker:Transport")
    channel = connection.default_channel
    _detach(connection)

    ignore_errors(connection, channel.close)

    with Connection(url, transport="portal.broker:Transport") as again:
        queue = again.SimpleQueue("broker-test")
        assert queue.get(timeout=5).payload == {"n": 1}
