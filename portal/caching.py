"""Short-lived caches of rows that many pages read (announcements, offerings).

Whoever changes those rows drops the cache: the actions that write them do so once the change
commits (directly, or through a domain event's after-commit subscribers), so readers never
rebuild a cache from rows that are about to roll back. Models themselves stay free of such
effects: saving a row drops nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from django.core.cache import cache

_T = TypeVar("_T")


def get_or_load(key: str, load: Callable[[], _T], seconds: int) -> _T:
    """``load()``'s answer, kept in the cache under ``key`` for ``seconds``. ``load`` never
    answers None here, so the cache's None (no value, no default) cannot come back."""
    value = cache.get_or_set(key, load, seconds)
    return load() if value is None else value
