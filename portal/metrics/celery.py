"""Celery's side of the metrics: task failures and retries, each process's role, and the
metrics port of the worker and beat (``METRICS_PORT``). Connected when ``portal.celery`` is
imported, so every Celery process has them.

``queue_depth`` reads the broker's queues when the web role is scraped: the number of tasks
waiting in Redis (every priority list of each queue) and the number taken by workers but not
acknowledged yet (running, or waiting for their countdown).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable
from typing import Any

import redis
from celery import signals
from django.conf import settings
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from portal import metrics
from portal.metrics.exposition import serve_on_port

# kombu's Redis transport keeps a queue's priorities in lists "<queue>", "<queue>\x06\x163" …
PRIORITY_SEPARATOR = "\x06\x16"
PRIORITY_STEPS = (0, 3, 6, 9)
UNACKED_KEY = "unacked"


def _task_name(sender: Any) -> str:
    return str(getattr(sender, "name", None) or sender or "unknown")


def _on_failure(sender: Any = None, **kwargs: Any) -> None:
    metrics.task_failed(_task_name(sender))


def _on_retry(sender: Any = None, **kwargs: Any) -> None:
    metrics.task_retried(_task_name(sender))


def _on_worker_init(sender: Any = None, **kwargs: Any) -> None:
    metrics.set_role("worker")
    app = getattr(sender, "app", None)
    if app is not None:
        app.loader.import_default_modules()
        for name in app.tasks:
            if not name.startswith("celery."):
                metrics.initialize(metrics.TASK_FAILURES, (name,))
                metrics.initialize(metrics.TASK_RETRIES, (name,))
    serve_on_port()


def _on_beat_init(**kwargs: Any) -> None:
    metrics.set_role("beat")
    serve_on_port()


def _on_child_init(**kwargs: Any) -> None:
    metrics.set_role("worker")


def _on_child_shutdown(pid: int | None = None, **kwargs: Any) -> None:
    # In the pool's parent, for a child that ended: its open gauges go with it.
    metrics.mark_process_dead(pid or os.getpid())


def connect() -> None:
    signals.task_failure.connect(_on_failure, weak=False, dispatch_uid="metrics.task_failure")
    signals.task_retry.connect(_on_retry, weak=False, dispatch_uid="metrics.task_retry")
    signals.worker_init.connect(_on_worker_init, weak=False, dispatch_uid="metrics.worker")
    signals.beat_init.connect(_on_beat_init, weak=False, dispatch_uid="metrics.beat")
    signals.worker_process_init.connect(_on_child_init, weak=False,
                                        dispatch_uid="metrics.child")
    signals.worker_process_shutdown.connect(_on_child_shutdown, weak=False,
                                            dispatch_uid="metrics.child_end")


@functools.lru_cache(maxsize=4)
def _broker(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def queue_names() -> list[str]:
    """The queues tasks are sent to: the default one and any a route names."""
    names = {str(getattr(settings, "CELERY_TASK_DEFAULT_QUEUE", "celery") or "celery")}
    routes = getattr(settings, "CELERY_TASK_ROUTES", None) or {}
    if isinstance(routes, dict):
        names.update(str(r["queue"]) for r in routes.values()
                     if isinstance(r, dict) and r.get("queue"))
    return sorted(names)


def queue_depth() -> Iterable[Metric]:
    """``portal_celery_queue_length{queue}`` and ``portal_celery_unacked_tasks`` (Redis
    broker only: the in-process broker of the embedded default has no queue to read)."""
    url = str(getattr(settings, "CELERY_BROKER_URL", "") or "")
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return []
    client = _broker(url)
    names = queue_names()
    pipe = client.pipeline(transaction=False)
    for name in names:
        for step in PRIORITY_STEPS:
            pipe.llen(name if not step else f"{name}{PRIORITY_SEPARATOR}{step}")
    pipe.hlen(UNACKED_KEY)
    counts = pipe.execute()
    length = GaugeMetricFamily("portal_celery_queue_length",
                               "Tasks waiting in the broker, by queue (read at scrape).",
                               labels=["queue"])
    for i, name in enumerate(names):
        per = len(PRIORITY_STEPS)
        length.add_metric([name], sum(int(c) for c in counts[i * per:(i + 1) * per]))
    unacked = GaugeMetricFamily("portal_celery_unacked_tasks",
                                "Tasks a worker has taken and not yet acknowledged (running, "
                                "or held for a countdown), read at scrape.",
                                value=int(counts[-1]))
    return [length, unacked]
