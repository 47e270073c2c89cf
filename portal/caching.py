"""Rows that caches are built from: every change drops those caches once it commits.

A model says what to drop in its ``forget_cached`` class method (a model without one is
refused when its class is defined); saving or deleting one row, and creating, updating or
deleting rows in bulk (the admin's catalogue import, "delete selected" and list edits), each
call it once the transaction commits, so readers never rebuild a cache from rows that are
about to roll back.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from django.core.cache import cache
from django.db import models, transaction

_T = TypeVar("_T")


def get_or_load(key: str, load: Callable[[], _T], seconds: int) -> _T:
    """``load()``'s answer, kept in the cache under ``key`` for ``seconds``. ``load`` never
    answers None here, so the cache's None (no value, no default) cannot come back."""
    value = cache.get_or_set(key, load, seconds)
    return load() if value is None else value


class CachedRowsQuerySet(models.QuerySet["CachedRows"]):
    def bulk_create(self, *args: Any, **kwargs: Any) -> list[Any]:
        created = super().bulk_create(*args, **kwargs)
        self.model.forget_on_commit()
        return created

    def bulk_update(self, *args: Any, **kwargs: Any) -> int:
        count = super().bulk_update(*args, **kwargs)
        self.model.forget_on_commit()
        return count

    def delete(self) -> tuple[int, dict[str, int]]:
        result = super().delete()
        self.model.forget_on_commit()
        return result

    def update(self, **kwargs: Any) -> int:
        count = super().update(**kwargs)
        self.model.forget_on_commit()
        return count


class CachedRows(models.Model):
    objects = CachedRowsQuerySet.as_manager()
    # Each concrete model defines it as a class method (declared here, not defined, so that
    # ``__init_subclass__`` can refuse a model that forgets it).
    forget_cached: ClassVar[Callable[[], None]]

    class Meta:
        abstract = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if not callable(getattr(cls, "forget_cached", None)):
            raise TypeError(f"{cls.__name__} must say which caches to drop in forget_cached()")

    def save(self, *args: Any, **kwargs: Any) -> None:
        super().save(*args, **kwargs)
        self.forget_on_commit()

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        result = super().delete(*args, **kwargs)
        self.forget_on_commit()
        return result

    @classmethod
    def forget_on_commit(cls) -> None:
        transaction.on_commit(cls.forget_cached)
