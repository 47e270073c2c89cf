"""The platform's published values schema, cached so that forms can validate as you type.

The schema lives in the platform's ``ApplicationDefinition`` named ``kubernetes`` (PLATFORM.md
§0), so the portal validates against the platform it is actually talking to, and recognises from
it which release the platform runs (``clusters.platform_release``). Actions validate against the
cached copy (a web request must not wait on the platform); the task validates again against a
fresh copy right before it sends anything. The cache is refreshed when it expires and at once
when the watcher sees the ApplicationDefinition change.
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.cache import cache

from cozystack import dialects
from cozystack.gateway import PlatformError, get_gateway
from cozystack.validation import schema_from_application_definition

logger = logging.getLogger("clusters.schema")
CACHE_KEY = "clusters:platform-schema:v3"
CACHE_SECONDS = 300
# The last schema the platform published, kept without expiry: while the platform cannot be
# reached, forms keep following the release it last ran.
LAST_KEY = "clusters:platform-schema:last"
# While the platform cannot be reached, forms use the last known schema; retry this often.
FALLBACK_SECONDS = 30
# The dialect chosen for a schema (``clusters.platform_release``), and the last one chosen
# (without expiry: what observed state is read with, without calling the platform).
RELEASE_KEY = "clusters:platform-release:v1"
LAST_DIALECT_KEY = "clusters:platform-release:last-dialect"
# The newest chart revision (``status.version``) the platform's clusters reported.
CHART_KEY = "clusters:platform-release:chart"


def platform_schema(*, fresh: bool = False) -> dict[str, Any]:
    """The schema of the platform in use; the last one it published (else the newest release
    the portal knows) if it cannot be read.

    ``fresh=True`` always asks the platform (and raises ``PlatformError`` when it cannot
    answer): the engine uses it before a write, so a spec that fails the live schema never
    leaves the portal.
    """
    return schema_entry(fresh=fresh)["schema"]


def schema_entry(*, fresh: bool = False) -> dict[str, Any]:
    """``{"version", "schema", "bundled"}``: the cached schema with its resourceVersion, and
    whether it is a stand-in because the platform could not be read."""
    if not fresh:
        cached = cache.get(CACHE_KEY)
        if cached is not None:
            return dict(cached)
    try:
        version, schema = get_gateway().kubernetes_schema()
    except PlatformError:
        if fresh:
            raise
        logger.warning("cluster.schema.fallback")
        last = cache.get(LAST_KEY)
        entry = {"version": "", "schema": last["schema"] if last else
                 dialects.newest().bundled_schema(), "bundled": True}
        cache.set(CACHE_KEY, entry, FALLBACK_SECONDS)
        return entry
    return _store(version, schema)


def _store(version: str, schema: dict[str, Any]) -> dict[str, Any]:
    cached = cache.get(CACHE_KEY)
    entry = {"version": version, "schema": schema, "bundled": False}
    if cached is None or cached.get("version") != version:
        cache.set(CACHE_KEY, entry, CACHE_SECONDS)
        last = cache.get(LAST_KEY)
        if last is None or last.get("version") != version:
            cache.set(LAST_KEY, entry, None)
            if last is not None:
                logger.info("cluster.schema.changed", extra={"version": version})
    else:
        cache.touch(CACHE_KEY, CACHE_SECONDS)
    return entry


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
    """Forget the schema and the release chosen from it (tests point at another platform)."""
    cache.delete_many([CACHE_KEY, LAST_KEY, RELEASE_KEY, LAST_DIALECT_KEY, CHART_KEY])
