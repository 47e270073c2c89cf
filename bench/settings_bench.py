"""Benchmark settings: the test settings (no collectstatic needed) with DEBUG off, as served
in production (no query log), logging at WARNING (LOG_LEVEL), and a URLconf that adds a
minimal baseline view to the portal's."""

from __future__ import annotations

import os

os.environ["DEBUG"] = "false"
os.environ.setdefault("SECURE_COOKIES", "false")
os.environ.setdefault("EMAIL_BACKEND", "django.core.mail.backends.locmem.EmailBackend")

from portal.settings_test import *  # noqa: E402,F403

DEBUG = False
ROOT_URLCONF = "bench.urls"
LOGGING["root"]["level"] = os.environ.get("LOG_LEVEL", "WARNING")  # noqa: F405

# Under ASGI each request runs in its own context, so it opens its own database connection;
# a connection kept for CONN_MAX_AGE seconds is not closed when the request ends, and 20
# concurrent clients then reach PostgreSQL's max_connections. The portal's default is 0
# (DATABASE_CONN_MAX_AGE); the web benchmarks (``_ui_stack``) still set BENCH_CONN_MAX_AGE=0 so
# that a different value in the environment cannot skew them.
if os.environ.get("BENCH_CONN_MAX_AGE") and "CONN_MAX_AGE" in DATABASES["default"]:  # noqa: F405
    DATABASES["default"]["CONN_MAX_AGE"] = int(os.environ["BENCH_CONN_MAX_AGE"])  # noqa: F405

# The benchmarks' echo socket (bench/routing.py), beside the portal's.
WEBSOCKET_ROUTES = [*WEBSOCKET_ROUTES, "bench.routing"]  # noqa: F405
