"""Short-lived caches of rows that many pages read (announcements, offerings).

Whoever changes those rows drops the cache: the actions that write them do so once the change
commits (directly, or through a domain event's after-commit subscribers), so readers never
rebuild a cache from rows that are about to roll back. Models themselves stay free of such
effects: saving a row drops nothing.

A thread that renders many small things in a row (the live pushes' renderer) may also hold what
it read in its own memory for a moment (``held``): then it asks the cache for each such value
once per moment rather than once per thing rendered.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol, TypeVar

from django.core.cache import cache

_T = TypeVar("_T")
_local = threading.local()


def get_or_load(key: str, load: Callable[[], _T], seconds: int) -> _T:
    """``load()``'s answer, kept in the cache under ``key`` for ``seconds``. ``load`` never
    answers None here, so the cache's None (no value, no default) cannot come back."""

    def fetch() -> _T:
        value = cache.get_or_set(key, load, seconds)
        return load() if value is None else value

    return remembered(key, fetch)


@contextmanager
def held(seconds: float) -> Iterator[None]:
    """Within the block, ``remembered`` values this thread read less than ``seconds`` ago
    are answered from its memory (kept between blocks, forgotten once older)."""
    previous = getattr(_local, "seconds", None)
    _local.seconds = seconds
    try:
        yield
    finally:
        _local.seconds = previous


def remembered(key: str, fetch: Callable[[], _T]) -> _T:
    """``fetch()``, or inside ``held`` what it answered a moment ago in this thread."""
    seconds = getattr(_local, "seconds", None)
    if seconds is None:
        return fetch()
    values: dict[str, tuple[float, Any]] = _local.__dict__.setdefault("values", {})
    now = time.monotonic()
    found = values.get(key)
    if found is not None and found[0] > now:
        return found[1]
    value = fetch()
    values[key] = (now + seconds, value)
    return value


class _Generational(Protocol):
    @property
    def generation(self) -> int: ...


_G = TypeVar("_G", bound=_Generational)


def read_through(key: str, generation_key: str, kind: type[_G], read: Callable[[], _G], *,
                 seconds: int, settled: Callable[[_G], bool]) -> _G:
    """A platform answer kept in the cache under ``key``: ``read()`` on a miss, or when the
    answer kept was read before the last ``forget_generation(generation_key)`` (the platform
    upgraded). An answer that is not ``settled`` (the platform did not answer in full) is
    kept a quarter of the time (at least 5 s), so a platform that is down is asked again soon
    but never on every page."""
    found = cache.get_many([key, generation_key])
    generation = int(found.get(generation_key) or 0)
    cached = found.get(key)
    if isinstance(cached, kind) and cached.generation == generation:
        return cached
    fresh = dataclasses.replace(read(), generation=generation)  # type: ignore[type-var]
    cache.set(key, fresh, seconds if settled(fresh) else max(5, seconds // 4))
    return fresh


def forget_generation(generation_key: str) -> None:
    """Every answer ``read_through`` kept under ``generation_key`` is stale from now on."""
    cache.set(generation_key, time.time_ns(), None)
