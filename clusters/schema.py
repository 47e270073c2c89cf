"""The platform's published values schema, cached so that forms can validate as you type.

The schema lives in the platform's ``ApplicationDefinition`` named ``kubernetes`` (PLATFORM.md
§0), so the portal validates against the platform it is actually talking to. Actions validate
against the cached copy (a web request must not wait on the platform); the task validates again
against a fresh copy right before it sends anything. The cache is refreshed when it expires and
at once when the watcher sees the ApplicationDefinition change.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache

from cozystack import catalog
from cozystack.gateway import PlatformError, get_gateway
from cozystack.validation import schema_from_application_definition

logger = logging.getLogger("clusters.schema")
CACHE_KEY = "clusters:platform-schema:v2"
CACHE_SECONDS = 300
# While the platform cannot be reached, forms use the bundled schema; retry this often.
FALLBACK_SECONDS = 30


def platform_schema(*, fresh: bool = False) -> dict[str, Any]:
    """The schema of the platform in use; the bundled upstream copy if it cannot be read.

    ``fresh=True`` always asks the platform (and raises ``PlatformError`` when it cannot
    answer): the engine uses it before a write, so a spec that fails the live schema never
    leaves the portal.
    """
    if not fresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return cached["schema"]
    try:
        version, schema = get_gateway().kubernetes_schema()
    except PlatformError:
        if fresh:
            raise
        logger.warning("cluster.schema.fallback_to_bundled")
        schema = catalog.bundled_kubernetes_schema()
        cache.set(CACHE_KEY, {"version": "", "schema": schema, "bundled": True},
                  FALLBACK_SECONDS)
        return schema
    _store(version, schema)
    return schema


def _store(version: str, schema: dict[str, Any]) -> None:
    cached = cache.get(CACHE_KEY)
    if cached is None or cached.get("version") != version:
        cache.set(CACHE_KEY, {"version": version, "schema": schema}, CACHE_SECONDS)
        if cached is not None:
            logger.info("cluster.schema.changed", extra={"version": version})
    else:
        cache.touch(CACHE_KEY, CACHE_SECONDS)


def schema_published(obj: dict[str, Any]) -> None:
    """The watcher saw the ``kubernetes`` ApplicationDefinition (new or changed): cache it."""
    if (obj.get("metadata") or {}).get("name") != "kubernetes":
        return
    try:
        schema = schema_from_application_definition(obj)
    except ValueError:
        logger.warning("cluster.schema.unreadable")
        return
    _store(str(obj["metadata"].get("resourceVersion") or ""), schema)


def forget() -> None:
    cache.delete(CACHE_KEY)
