"""Models whose rows feed a cache must say which caches a change drops (portal/caching.py)."""

from __future__ import annotations

import pytest
from django.apps import apps
from django.db import models

from portal.caching import CachedRows


def test_a_cached_model_without_forget_cached_is_refused_when_defined():
    with pytest.raises(TypeError, match="Forgetful must say which caches to drop"):
        class Forgetful(CachedRows):
            name = models.CharField(max_length=10)

            class Meta:
                app_label = "portal"

    assert "forgetful" not in apps.all_models["portal"]

