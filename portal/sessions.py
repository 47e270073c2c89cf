"""Sessions read from the cache and written through to the database, as Django's
``cached_db`` engine does, but a cache that fails is a cache that misses.

Django's engine already reads the database when the cache cannot be read, then fails on the
write back to the cache (and on ``exists`` and ``delete``): with Redis down, every signed-in
request answered 500. Here every cache call that fails is logged and treated as a miss, so the
database row alone carries the session. (``portal.cache.ResilientRedisCache`` already misses
instead of failing, and deletes afterwards what it could not write; this engine also holds
with any other cache backend.)
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.sessions.backends import cached_db

logger = logging.getLogger("portal.sessions")


class _MissingCache:
    """The session cache's calls, each a miss (or a no-op) when the cache raises."""

    def __init__(self, cache: Any) -> None:
        self._cache = cache

    def __repr__(self) -> str:
        return repr(self._cache)

    def _failed(self, action: str) -> None:
        logger.warning("session.cache_failed", exc_info=True, extra={"action": action})

    def get(self, key: str, default: Any = None) -> Any:
        try:
            return self._cache.get(key, default)
        except Exception:  # any cache failure: the database has the session
            self._failed("get")
            return default

    def set(self, key: str, value: Any, timeout: Any) -> None:
        try:
            self._cache.set(key, value, timeout)
        except Exception:  # the database row was written; the cache only saves a query
            self._failed("set")

    def delete(self, key: str) -> bool:
        try:
            return bool(self._cache.delete(key))
        except Exception:  # the database row was deleted, which is what ends the session
            self._failed("delete")
            return False

    def __contains__(self, key: str) -> bool:
        try:
            return key in self._cache
        except Exception:  # ask the database instead
            self._failed("exists")
            return False

    async def aget(self, key: str, default: Any = None) -> Any:
        try:
            return await self._cache.aget(key, default)
        except Exception:  # as get()
            self._failed("get")
            return default

    async def aset(self, key: str, value: Any, timeout: Any) -> None:
        try:
            await self._cache.aset(key, value, timeout)
        except Exception:  # as set()
            self._failed("set")

    async def adelete(self, key: str) -> bool:
        try:
            return bool(await self._cache.adelete(key))
        except Exception:  # as delete()
            self._failed("delete")
            return False


class SessionStore(cached_db.SessionStore):
    _cache: Any  # the cache of the session alias, behind _MissingCache

    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self._cache = _MissingCache(self._cache)
