"""What the platform offers a tenant: its Option API (Cozystack v1.6, PLATFORM-v1.6.md rows 16, 22).

From v1.6 the platform computes, per tenant namespace, the choices of its dropdowns:
``core.cozystack.io/v1alpha1`` ``options`` ``instancetype``, ``gpu`` and ``storageclass``, each
``spec.items[{value, label, description, default}]`` (a GPU's description says how many are
available on which nodes). The pickers and the rules read them here, through the gateway, and
keep each tenant's answer in the cache for ``PLATFORM_OPTIONS_SECONDS`` (a few keys per tenant,
each expiring: never an unbounded store).

When the platform has no Option API (v1.3, or a release that answers 404), or the read fails
(an error, or the platform cannot be reached), a source falls back to the catalogues bundled
with the portal (``cozystack/data/…``): ``from_platform`` is then False and callers use the
catalogue as before. A failed read is tried again after a quarter of the time, so pages never
wait on a platform that is down more than once in a while.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache

from clusters import platform_release
from cozystack.dialects import OPTION_API
from cozystack.gateway import (
    NotFound,
    OptionItem,
    PlatformError,
    PlatformUnavailable,
    get_gateway,
)
from portal.caching import forget_generation, read_through

logger = logging.getLogger("clusters.options")

INSTANCE_TYPES, GPUS, STORAGE_CLASSES = "instancetype", "gpu", "storageclass"
SOURCES = (INSTANCE_TYPES, GPUS, STORAGE_CLASSES)
# A page may wait for this read (on a cache miss): bounded well below the request timeout.
READ_TIMEOUT = 3.0
CACHE_PREFIX = "clusters:options:v1:"
# Bumped by ``forget_all`` (a platform upgrade): answers cached under an older one are stale.
GENERATION_KEY = "clusters:options:generation"

# Why a source falls back to the bundled catalogue.
NO_OPTION_API = "no_option_api"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class SourceOptions:
    """One source as the platform answered it (``from_platform``), or the bundled fallback
    (``fallback`` says why: ``no_option_api`` or ``unreadable``)."""

    items: tuple[OptionItem, ...] = ()
    from_platform: bool = False
    fallback: str = ""

    @property
    def names(self) -> frozenset[str] | None:
        """The values offered, or None where the bundled catalogue applies."""
        return frozenset(item.value for item in self.items) if self.from_platform else None

    def item(self, value: str) -> OptionItem | None:
        return next((item for item in self.items if item.value == value), None)


@dataclass(frozen=True)
class TenantOptions:
    """What the platform offers one namespace, by source (``generation``: see
    ``forget_all``)."""

    namespace: str
    sources: dict[str, SourceOptions] = field(default_factory=dict)
    generation: int = 0

    def of(self, source: str) -> SourceOptions:
        return self.sources.get(source) or SourceOptions(fallback=UNREADABLE)

    @property
    def complete(self) -> bool:
        """Every source answered, or the platform has no Option API: worth keeping long."""
        return all(s.from_platform or s.fallback == NO_OPTION_API for s in self.sources.values())


BUNDLED = SourceOptions(fallback=NO_OPTION_API)


def _key(namespace: str) -> str:
    return f"{CACHE_PREFIX}{namespace}"


def tenant_options(namespace: str) -> TenantOptions:
    """What the platform offers ``namespace`` (cached; read from the platform on a miss)."""
    return read_through(_key(namespace), GENERATION_KEY, TenantOptions,
                        lambda: _read(namespace), seconds=settings.PLATFORM_OPTIONS_SECONDS,
                        settled=lambda answer: answer.complete)


def source_options(namespace: str | None, source: str) -> SourceOptions:
    """One source for ``namespace``; without a namespace (the tenant-less catalogue) the
    bundled catalogue."""
    if not namespace:
        return BUNDLED
    return tenant_options(namespace).of(source)


def forget(namespace: str) -> None:
    """Read the tenant's options again on next use."""
    cache.delete(_key(namespace))


def forget_all() -> None:
    """Read every tenant's options again on next use (the platform runs another release, or
    the portal talks to another platform)."""
    forget_generation(GENERATION_KEY)


def _read(namespace: str) -> TenantOptions:
    if not platform_release.shown_dialect().supports(OPTION_API):
        return TenantOptions(namespace, dict.fromkeys(SOURCES, BUNDLED))
    sources: dict[str, SourceOptions] = {}
    try:
        gateway = get_gateway()
    except PlatformError as exc:
        logger.warning("cluster.options.unreadable", extra={"namespace": namespace,
                                                            "error": exc.message})
        return TenantOptions(namespace, dict.fromkeys(SOURCES, SourceOptions(
            fallback=UNREADABLE)))
    for source in SOURCES:
        try:
            items = gateway.read_options(namespace, source, timeout=READ_TIMEOUT)
        except NotFound:
            sources[source] = BUNDLED
            logger.info("cluster.options.not_served",
                        extra={"namespace": namespace, "source": source})
            continue
        except PlatformError as exc:
            logger.warning("cluster.options.unreadable",
                           extra={"namespace": namespace, "source": source,
                                  "error": exc.message})
            sources[source] = SourceOptions(fallback=UNREADABLE)
            if isinstance(exc, PlatformUnavailable):
                # Down or overloaded: the other sources would only wait for the same answer.
                for rest in SOURCES:
                    sources.setdefault(rest, SourceOptions(fallback=UNREADABLE))
                break
            continue
        if not items:
            logger.warning("cluster.options.empty",
                           extra={"namespace": namespace, "source": source})
        sources[source] = SourceOptions(items=items, from_platform=True)
    return TenantOptions(namespace, sources)
