"""Which release the platform runs, hence which dialect the portal speaks to it.

Never a setting: the dialect is chosen from the schema the platform publishes in its
``kubernetes`` ApplicationDefinition (``clusters.schema``) and the chart revision its clusters
report (``status.version``, kept as ``Cluster.chart_revision``). When the watcher sees the
schema change (a platform upgrade), the next call chooses again: no restart.

A schema that matches no dialect the portal knows stops every write, with the same sentence to
tenants (beside the submit button, and as an API problem) and to staff (on the operations
console); reads and billing go on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.schema import CHART_KEY, LAST_DIALECT_KEY, schema_entry
from clusters.schema import RELEASE_KEY as CACHE_KEY
from cozystack import catalog, dialects
from cozystack.dialects import Dialect, parse_chart_version
from cozystack.rules import FieldError
from cozystack.validation import allowed_versions_from_schema
from portal.caching import remembered

logger = logging.getLogger("clusters.platform_release")
CACHE_SECONDS = 30
UNKNOWN_CODE = "platform_release_unknown"
# The same sentence as ``dialects.UNKNOWN_RELEASE_MESSAGE``, in the catalogue for translation.
UNKNOWN_MESSAGE = gettext_noop(
    "The platform runs a release this portal does not know yet; changes are paused.")


class PlatformReleaseUnknown(ValidationError):
    """A write refused because the platform runs a release no dialect knows."""

    def __init__(self) -> None:
        super().__init__(_(UNKNOWN_MESSAGE), code=UNKNOWN_CODE)


@dataclass(frozen=True)
class PlatformRelease:
    """What the portal knows of the release the platform runs.

    ``dialect`` is None when the schema matches no dialect: then ``shown`` is the newest
    dialect, whose catalogue pages may still show while writes are paused. ``stand_in``: the
    platform could not be read, so this is the last release it was seen to run.
    """

    dialect: Dialect | None
    schema: dict[str, Any]
    schema_version: str
    chart_version: str
    stand_in: bool = False

    @property
    def known(self) -> bool:
        return self.dialect is not None

    @property
    def shown(self) -> Dialect:
        return self.dialect or dialects.newest()

    @property
    def label(self) -> str:
        if self.dialect is None:
            return _("unknown release")
        chart = f" (chart {self.chart_version})" if self.chart_version else ""
        return f"{self.dialect.label}{chart}"


def newest_chart_revision() -> str:
    """The newest chart revision (``status.version``) the platform's clusters reported, or
    ``""`` (kept by ``note_chart_revision`` as observations arrive: no query here)."""
    return str(cache.get(CHART_KEY) or "")


def note_chart_revision(revision: str) -> None:
    """An observed cluster reports chart ``revision``: remember it if it is the newest."""
    parsed = parse_chart_version(revision)
    if parsed is None:
        return
    known = parse_chart_version(newest_chart_revision())
    if known is None or parsed > known:
        cache.set(CHART_KEY, revision, None)
        cache.delete(CACHE_KEY)  # a newer chart: choose again with it


def current(*, fresh: bool = False) -> PlatformRelease:
    """The release the platform runs, from its published schema (cached; ``fresh=True`` reads
    the schema from the platform and raises ``PlatformError`` when it cannot answer). A thread
    that holds what it reads (``portal.caching.held``: the live pushes' renderer) reads it
    once a moment."""
    if fresh:
        return _current(fresh=True)
    return remembered(CACHE_KEY, lambda: _current(fresh=False))


def _current(*, fresh: bool) -> PlatformRelease:
    entry = schema_entry(fresh=fresh)
    version = str(entry.get("version") or "")
    stand_in = bool(entry.get("bundled"))
    cached = None if fresh else cache.get(CACHE_KEY)
    if cached is not None and (cached["schema_version"], cached.get("stand_in")) == (
            version, stand_in):
        dialect = dialects.by_name(cached["dialect"]) if cached["dialect"] else None
        return PlatformRelease(dialect, entry["schema"], version, cached["chart_version"],
                               bool(entry.get("bundled")))
    chart = newest_chart_revision()
    dialect = dialects.choose(entry["schema"], chart)
    if dialect is None:
        logger.warning("cluster.platform_release.unknown",
                       extra={"schema_version": version, "chart_version": chart})
    name = dialect.name if dialect else ""
    if not stand_in:
        last = cache.get(LAST_DIALECT_KEY)
        if last and last != name:
            logger.info("cluster.platform_release.changed", extra={"from": last, "to": name})
        if dialect is not None:
            cache.set(LAST_DIALECT_KEY, name, None)
    cache.set(CACHE_KEY, {"schema_version": version, "chart_version": chart, "dialect": name,
                          "stand_in": stand_in}, CACHE_SECONDS)
    return PlatformRelease(dialect, entry["schema"], version, chart, bool(entry.get("bundled")))


def current_dialect(*, fresh: bool = False) -> Dialect:
    """The dialect to speak to the platform; raises ``PlatformReleaseUnknown`` when its release
    is unknown (pages that only show things use ``current().shown``)."""
    release = current(fresh=fresh)
    if release.dialect is None:
        raise PlatformReleaseUnknown
    return release.dialect


def shown_dialect() -> Dialect:
    """The dialect whose catalogue and features pages show: the platform's, or the newest the
    portal knows while it runs an unknown release (nothing can be written then anyway)."""
    return current().shown


def allowed_versions() -> tuple[str, ...]:
    """The Kubernetes versions the platform's schema accepts, newest first."""
    release = current()
    return allowed_versions_from_schema(release.schema, release.shown)


def next_version(version: str) -> str | None:
    """The one version a cluster on ``version`` may move to on this platform, if any."""
    return catalog.next_minor(version, allowed_versions())


def observed_dialect() -> Dialect:
    """The dialect to read observed state with: the one last chosen (never calls the
    platform; the watcher applies events inside a transaction, and holds the answer a
    moment: ``portal.caching.held``), else the newest."""
    name = remembered(LAST_DIALECT_KEY, lambda: cache.get(LAST_DIALECT_KEY))
    return (dialects.by_name(name) if name else None) or dialects.newest()


def unknown_release_error() -> FieldError:
    return FieldError("__all__", _(UNKNOWN_MESSAGE), UNKNOWN_CODE)


def forget() -> None:
    cache.delete_many([CACHE_KEY, LAST_DIALECT_KEY, CHART_KEY])
