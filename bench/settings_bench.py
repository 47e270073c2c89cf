"""Benchmark settings: the test settings (no collectstatic needed) with DEBUG off, as served
in production, and a URLconf that adds a minimal baseline view to the portal's."""

from __future__ import annotations

import os

os.environ["DEBUG"] = "false"
os.environ.setdefault("SECURE_COOKIES", "false")

from portal.settings_test import *  # noqa: E402,F403

DEBUG = False
ROOT_URLCONF = "bench.urls"
LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "WARNING")  # noqa: F405
