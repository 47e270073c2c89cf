"""The Redis cache reuses its connections from one request to the next (portal/cache.py)."""

from __future__ import annotations

import asyncio

from django.core.cache import caches


def _as_requests(count: int) -> list:
    """Use the cache the way ``count`` ASGI requests do: each in an asyncio context of its
    own, where Django builds a cache backend of its own."""

    async def one_request():
        backend = caches["default"]
        backend.set("probe", 1)
        assert backend.get("probe") == 1
        return backend

    async def requests():
        return await asyncio.gather(*(asyncio.create_task(one_request())
                                      for _ in range(count)))

    return asyncio.run(requests())


def test_requests_in_contexts_of_their_own_share_one_redis_connection():
    [first] = _as_requests(1)
    pool = first._cache.get_client().connection_pool
    created = pool._created_connections

    backends = _as_requests(5)

    assert len({id(backend) for backend in [first, *backends]}) == 6
    assert {id(b._cache.get_client().connection_pool) for b in backends} == {id(pool)}
    assert pool._created_connections == created
