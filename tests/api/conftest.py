"""Fixtures for the API tests: token clients per persona, a cluster, an isolated cache."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from tests.api.factories import make_cluster, make_operation, make_token


@pytest.fixture(autouse=True)
def isolated_cache(settings):
    """Throttle counters live in the cache (Redis in CI): a namespace per test, dropped after."""
    prefix = f"test-{uuid.uuid4().hex}"
    settings.CACHES = {name: {**config, "KEY_PREFIX": prefix}
                       for name, config in settings.CACHES.items()}
    yield prefix
    client = getattr(getattr(cache, "_cache", None), "get_client", None)
    if client is None:
        cache.clear()
        return
    redis = client(write=True)
    keys = list(redis.scan_iter(match=f"{prefix}:*"))
    if keys:
        redis.delete(*keys)


@pytest.fixture
def api():
    """``api(user, scope=…, tenant=…)``: an APIClient sending a fresh token of ``user``."""

    def make(user=None, *, token: str | None = None, **token_options) -> APIClient:
        client = APIClient()
        if token is None and user is not None:
            token = make_token(user, **token_options)
        if token is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
        return client

    return make


@pytest.fixture
def cluster(tenant):
    cluster = make_cluster(tenant)
    make_operation(cluster)
    return cluster
