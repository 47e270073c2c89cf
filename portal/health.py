"""/healthz (the process answers) and /readyz (its dependencies answer), both JSON.

The foundation checks its own dependencies (the database, Redis when configured); an app that
depends on more registers a named check at start-up (``register_check``), as the clusters app
does for the management cluster.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache

Check = Callable[[], None]

_REGISTERED: dict[str, Check] = {}


def register_check(name: str, check: Check) -> None:
    """Report ``check`` in /readyz under ``name``, after the foundation's own. A check returns
    when its dependency answers and raises (with the reason) when it does not."""
    _REGISTERED[name] = check


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


def _check_redis() -> None:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()


def _checks() -> dict[str, Check]:
    checks = {"database": _check_database}
    if settings.REDIS_URL:
        checks["redis"] = _check_redis
    return {**checks, **_REGISTERED}


@never_cache
def readyz(request: HttpRequest) -> JsonResponse:
    results: dict[str, dict[str, object]] = {}
    ready = True
    for name, check in _checks().items():
        started = time.monotonic()
        try:
            check()
        except Exception as exc:  # any failure means "not ready"; the reason is reported
            ready = False
            results[name] = {"ok": False, "error": type(exc).__name__ + ": " + str(exc)[:200]}
        else:
            results[name] = {"ok": True}
        results[name]["ms"] = round((time.monotonic() - started) * 1000, 1)
    return JsonResponse({"status": "ok" if ready else "unavailable", "checks": results},
                        status=200 if ready else 503)
