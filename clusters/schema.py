"""The platform's published values schema, cached so that forms can validate as you type.

Actions validate against the cached copy (a web request must not wait on the platform); the
task validates again against a fresh copy right before it sends anything.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache

from clusters.platform import catalog
from clusters.platform.gateway import PlatformError, get_gateway

logger = logging.getLogger("clusters.schema")
CACHE_KEY = "clusters:platform-schema:v1"
CACHE_SECONDS = 300


def platform_schema(*, fresh: bool = False) -> dict[str, Any]:
    """The schema of the platform in use; the bundled upstream copy if it cannot be read.

    ``fresh=True`` always asks the platform (and raises when it cannot answer): the engine
    uses it before a write, so a spec that fails the live schema never leaves the portal.
    """
    if not fresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return cached
    try:
        schema = get_gateway().kubernetes_schema()
    except PlatformError:
        if fresh:
            raise
        logger.warning("cluster.schema.fallback_to_bundled")
        return catalog.bundled_kubernetes_schema()
    cache.set(CACHE_KEY, schema, CACHE_SECONDS)
    return schema
