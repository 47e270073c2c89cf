"""Django's Redis cache with one connection pool, and one client, per server in the process;
and a cache that misses, instead of failing, while Redis is unreachable.

Django builds a cache backend, and with it a connection pool, per thread and per asyncio
context. Under ASGI every request runs in a context of its own, so every request opened a
Redis connection of its own (and left it to the garbage collector). This backend shares the
pool between every backend instance of the process, so connections are reused from one
request to the next. It also keeps the redis-py client that wraps the pool: Django builds one
per cache call, which costs about as much as the round trip to Redis.

Every use of the cache has the database (or a render) behind it, so a Redis outage must cost
speed, not answers: while Redis refuses or times out, a read is a miss, a write does nothing,
``incr``/``decr`` find no key (``ValueError``). After a failure a per-process circuit breaker
(``portal.breaker``) skips Redis for ``OUTAGE_RETRY_SECONDS``, so requests do not each wait for
a connection to be refused or to time out. The keys written or deleted while Redis was out of
reach may hold values that are no longer true (a session that was ended, a cache entry that was
invalidated): the process remembers them (up to ``MAX_STALE_KEYS``) and deletes them as soon as
Redis answers again, before it reads anything else from it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar, TypeVar

import redis
from django.core.cache.backends import redis as django_redis
from django.core.cache.backends.base import BaseCache

from portal.breaker import Breaker

logger = logging.getLogger("portal.cache")

OUTAGE_RETRY_SECONDS = 3.0
MAX_STALE_KEYS = 10_000
# What an unreachable (or failing-over) Redis raises; anything else is a bug and propagates.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError, redis.exceptions.TimeoutError,
    redis.exceptions.ReadOnlyError, OSError)

_T = TypeVar("_T")


class _Server:
    """What the process knows about one Redis server: its breaker and its stale keys."""

    def __init__(self, location: str) -> None:
        self.breaker = Breaker(f"cache {location.rsplit('@', 1)[-1]}", OUTAGE_RETRY_SECONDS)
        self.stale: OrderedDict[Any, None] = OrderedDict()
        self.lock = threading.Lock()
        self.dropped = False

    def remember(self, keys: Iterable[Any]) -> None:
        with self.lock:
            for key in keys:
                self.stale[key] = None
                self.stale.move_to_end(key)
            while len(self.stale) > MAX_STALE_KEYS:
                self.stale.popitem(last=False)
                if not self.dropped:
                    self.dropped = True
                    logger.warning("cache.stale_keys_dropped", extra={"kept": MAX_STALE_KEYS})

    def take(self) -> list[Any]:
        with self.lock:
            keys = list(self.stale)
            self.stale.clear()
            self.dropped = False
        return keys


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


class ResilientRedisCacheClient(SharedRedisCacheClient):
    """The shared client, answering as an empty cache while Redis is out of reach."""

    _known: ClassVar[dict[str, _Server]] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        location = ",".join(self._servers)
        with self._lock:
            self._server = self._known.setdefault(location, _Server(location))

    @property
    def reachable(self) -> bool:
        return not self._server.breaker.is_open

    def _guard(self, call: Callable[[], _T], miss: _T, written: Iterable[Any] = ()) -> _T:
        server = self._server
        if not server.breaker.allows() or not self._forget_stale():
            server.remember(written)
            return miss
        try:
            result = call()
        except OUTAGE_ERRORS as error:
            server.breaker.failed(error)
            server.remember(written)
            return miss
        server.breaker.succeeded()
        return result

    def _forget_stale(self) -> bool:
        """Delete the keys written while Redis was out of reach; False if it still is."""
        keys = self._server.take() if self._server.stale else []
        if not keys:
            return True
        try:
            for start in range(0, len(keys), 1000):
                self.get_client(write=True).delete(*keys[start:start + 1000])
        except OUTAGE_ERRORS as error:
            self._server.breaker.failed(error)
            self._server.remember(keys)
            return False
        logger.info("cache.stale_keys_deleted", extra={"count": len(keys)})
        return True

    def add(self, key: Any, value: Any, timeout: Any) -> bool:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).add(
            key, value, timeout), False)

    def get(self, key: Any, default: Any) -> Any:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).get(key, default),
                           default)

    def set(self, key: Any, value: Any, timeout: Any) -> None:
        self._guard(lambda: super(ResilientRedisCacheClient, self).set(key, value, timeout),
                    None, written=[key])

    def touch(self, key: Any, timeout: Any) -> bool:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).touch(key, timeout),
                           False)

    def delete(self, key: Any) -> bool:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).delete(key), False,
                           written=[key])

    def get_many(self, keys: Any) -> dict[Any, Any]:
        keys = list(keys)
        return self._guard(lambda: super(ResilientRedisCacheClient, self).get_many(keys), {})

    def has_key(self, key: Any) -> bool:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).has_key(key), False)

    def incr(self, key: Any, delta: int) -> Any:
        missing = object()
        value = self._guard(lambda: super(ResilientRedisCacheClient, self).incr(key, delta),
                            missing)
        if value is missing:
            raise ValueError(f"Key {key!r} not found (the cache is unreachable).")
        return value

    def set_many(self, data: Mapping[Any, Any], timeout: Any) -> None:
        self._guard(lambda: super(ResilientRedisCacheClient, self).set_many(data, timeout),
                    None, written=list(data))

    def delete_many(self, keys: Any) -> Any:
        keys = list(keys)
        return self._guard(lambda: super(ResilientRedisCacheClient, self).delete_many(keys),
                           None, written=keys)

    def clear(self) -> bool:
        return self._guard(lambda: super(ResilientRedisCacheClient, self).clear(), False)


class RedisCache(django_redis.RedisCache):
    """Django's Redis cache on the shared client (no fallback: errors propagate)."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = SharedRedisCacheClient


class ResilientRedisCache(django_redis.RedisCache):
    """Django's Redis cache on the shared client, missing instead of failing while Redis is
    out of reach (see the module's docstring)."""

    def __init__(self, server: str | list[str], params: dict[str, Any]) -> None:
        super().__init__(server, params)
        self._class = ResilientRedisCacheClient

    @property
    def reachable(self) -> bool:
        """False while the process skips Redis after a failure."""
        client = self._cache
        return not isinstance(client, ResilientRedisCacheClient) or client.reachable


def cache_reachable(backend: BaseCache) -> bool:
    """Whether ``backend`` is answering (always, for a backend without a breaker)."""
    return bool(getattr(backend, "reachable", True))
