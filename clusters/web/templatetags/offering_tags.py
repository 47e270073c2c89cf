"""The end-of-life warning a tenant sees on a cluster whose Kubernetes version staff retired.

``{% load offering_tags %}{% eol_warning cluster.version %}`` renders
``components/eol_warning.html`` (nothing when the version is supported); pass an upgrade URL
as a second argument to add a link. ``{{ cluster.version|version_warning }}`` gives the sentence
alone. Each distinct version is looked up once per page, however many clusters it lists.
"""

from __future__ import annotations

from typing import Any

from django import template

from clusters.offerings import version_warning as _version_warning

register = template.Library()
_CACHE_KEY = "offering_tags.eol_warnings"


def _cached_warning(context: template.Context | None, version: str) -> str:
    if not version:
        return ""
    if context is None:
        return _version_warning(version)
    cache = context.render_context.get(_CACHE_KEY)
    if cache is None:
        cache = context.render_context[_CACHE_KEY] = {}
    if version not in cache:
        cache[version] = _version_warning(version)
    return cache[version]


@register.inclusion_tag("components/eol_warning.html", takes_context=True)
def eol_warning(context: template.Context, version: str, upgrade_url: str = "") -> dict[str, Any]:
    return {"message": _cached_warning(context, str(version or "")), "version": version,
            "upgrade_url": upgrade_url}


@register.filter
def version_warning(version: str) -> str:
    """The warning sentence for ``version`` ("" while it is supported)."""
    return _cached_warning(None, str(version or ""))
