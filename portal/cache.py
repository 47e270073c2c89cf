"""Django's Redis cache with one connection pool, and one client, per server in the process.

Django builds a cache backend, and with it a connection pool, per thread and per asyncio
context. Under ASGI every request runs in a context of its own, so every request opened a
Redis connection of its own (and left it to the garbage collector). This backend shares the
pool between every backend instance of the process, so connections are reused from one
request to the next. It also keeps the redis-py client that wraps the pool: Django builds one
per cache call, which costs about as much as the round trip to Redis.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, ClassVar

import redis
from django.core.cache.backends import redis as django_redis


class SharedRedisCacheClient(django_redis.RedisCacheClient):
    _shared: ClassVar[dict[str, Any]] = {}  # (server, pool options) → redis.Redis
    _lock: ClassVar[threading.Lock] = threading.Lock()
    # What Django's client sets up and this one reuses; private there, so not in its stubs
    # (declared only: the values and the method stay Django's).
    _servers: list[str]
    _pool_options: dict[str, Any]
    _pool_class: type[redis.ConnectionPool]
    _client: type[redis.Redis]
    _get_connection_pool_index: Callable[[bool], int]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._clients: dict[int, Any] = {}

    def get_client(self, key: Any = None, *, write: bool = False) -> Any:
        index = self._get_connection_pool_index(write)
        client = self._clients.get(index)
        if client is None:
            client = self._clients[index] = self._shared_client(index)
        return client

    def _get_connection_pool(self, write: bool) -> Any:
        return self.get_client(write=write).connection_pool

    def _shared_client(self, index: int) -> Any:
        server = self._servers[index]
        key = repr((server, sorted(self._pool_options.items(), key=lambda item: item[0])))
        with self._lock:
            client = self._shared.get(key)
            if client is None:
                # redis-py replaces the connections of a pool it finds in a forked child.
                pool = self._pool_class.from_url(server, **self._pool_options)
                client = self._shared[key] = self._client(connection_pool=pool)
        return client


class RedisCache(django_redis.RedisCache):
    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient
