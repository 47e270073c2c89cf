"""The portal's Prometheus metrics: every name is defined here, once, with the functions that
record them (``http_request``, ``operation_finished``, ``webhook_delivered`` …).

Code of every floor records through these functions; none creates a metric of its own, so the
exposition, the Grafana dashboard and the alert rules in ``deploy/`` name one set of metrics
(``tests/deploy`` checks that every name they use is defined here).

Several processes: with ``PROMETHEUS_MULTIPROC_DIR`` set in the environment *before* the
process starts, ``prometheus_client`` keeps each process's values in memory-mapped files in
that directory, and a scrape adds them up (``portal.metrics.exposition``). Every uvicorn worker
and Celery process of one host (or one pod) shares the directory; it must be empty when the
first of them starts (systemd's ``RuntimeDirectory``, a Kubernetes ``emptyDir``, or
``run_portal`` clear it). Without it, each process keeps its own values in memory.

Values that are the state of the whole service, not of one process (operations in flight,
the Celery queue's length, open usage segments, the watcher's last event) are read when they
are scraped, by collectors the apps register (``register_collector``).
"""

from __future__ import annotations

import atexit
import logging
import os
import time
from collections.abc import Callable, Iterable

from prometheus_client import Counter, Gauge, Histogram, multiprocess
from prometheus_client.metrics_core import Metric

logger = logging.getLogger("portal.metrics")

MULTIPROC_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
if MULTIPROC_DIR:  # prometheus_client writes there from the first value on
    os.makedirs(MULTIPROC_DIR, exist_ok=True)

ROLES = ("web", "worker", "beat", "watcher", "embedded", "other")

# --------------------------------------------------------------------------- processes

PROCESS = Gauge(
    "portal_process_start_time_seconds",
    "When each live process of the portal started (one sample per process and role).",
    ["role"], multiprocess_mode="liveall")

# --------------------------------------------------------------------------- HTTP

HTTP_REQUESTS = Counter(
    "portal_http_requests_total",
    "HTTP requests answered, by route name (the URL pattern's name), method and status.",
    ["route", "method", "status"])
HTTP_DURATION = Histogram(
    "portal_http_request_duration_seconds",
    "Time to answer an HTTP request, by route name and method.",
    ["route", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
THROTTLED = Counter(
    "portal_throttled_requests_total",
    "Requests refused with 429 by a rate limit (API throttles, sign-in limits), by route.",
    ["route"])
LOGIN_FAILURES = Counter(
    "portal_login_failures_total",
    "Failed sign-in attempts (wrong password, unknown account, inactive account).")

# --------------------------------------------------------------------------- WebSockets

WEBSOCKETS_OPEN = Gauge(
    "portal_websocket_connections",
    "WebSocket connections open now, by consumer.",
    ["consumer"], multiprocess_mode="livesum")
WEBSOCKET_PUSHES = Counter(
    "portal_websocket_pushes_total",
    "Frames sent to open pages (first snapshots and live pushes), by consumer.",
    ["consumer"])

# --------------------------------------------------------------------------- operations

OPERATIONS_FINISHED = Counter(
    "portal_operations_finished_total",
    "Operations that reached a final state, by kind and state (succeeded, failed, cancelled).",
    ["kind", "state"])
OPERATION_DURATION = Histogram(
    "portal_operation_duration_seconds",
    "From an operation's request to its final state, by kind and final state.",
    ["kind", "state"],
    buckets=(5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600))

# --------------------------------------------------------------------------- Celery

TASK_FAILURES = Counter(
    "portal_celery_task_failures_total",
    "Celery tasks that raised (after their own retries), by task name.",
    ["task"])
TASK_RETRIES = Counter(
    "portal_celery_task_retries_total",
    "Celery task retries scheduled, by task name.",
    ["task"])

# --------------------------------------------------------------------------- watcher

WATCHER_EVENTS = Counter(
    "portal_watcher_events_total",
    "Platform watch events received and applied (changed or not), by stream.",
    ["stream"])
WATCHER_APPLIED = Counter(
    "portal_watcher_events_applied_total",
    "Platform watch events that changed the portal's state, by stream.",
    ["stream"])
WATCHER_RELISTS = Counter(
    "portal_watcher_relists_total",
    "Full lists of a stream (at start and when the platform expired the watch), by stream.",
    ["stream"])
WATCHER_RECONNECTS = Counter(
    "portal_watcher_reconnects_total",
    "Watch connections lost and resumed, by stream.",
    ["stream"])
WATCHER_LAG = Histogram(
    "portal_watcher_lag_seconds",
    "From an event's arrival on the watch connection to its change committed, by stream.",
    ["stream"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))
WATCHER_LAST_EVENT = Gauge(
    "portal_watcher_last_event_timestamp_seconds",
    "When the watcher last applied an event, by stream (Unix time).",
    ["stream"], multiprocess_mode="max")
WATCHER_LEADER = Gauge(
    "portal_watcher_leader",
    "1 while this watcher process holds the leader lock and watches.",
    multiprocess_mode="livemax")
RESYNCS = Counter(
    "portal_resyncs_total",
    "Periodic resyncs with the platform, by outcome (ok, unreachable).",
    ["outcome"])
RESYNC_REPAIRS = Counter(
    "portal_resync_repairs_total",
    "What resyncs repaired, by kind (requeued, polled, changed, orphans).",
    ["kind"])

# --------------------------------------------------------------------------- billing

METERING_RUNS = Counter(
    "portal_metering_runs_total",
    "Reconciliations of the usage ledger, by trigger (watcher start, beat).",
    ["trigger"])
METERING_SEGMENTS_CLOSED = Counter(
    "portal_metering_segments_closed_total",
    "Usage segments closed by ledger reconciliations.")

# --------------------------------------------------------------------------- webhooks

WEBHOOK_RESULTS = ("success", "http_error", "timeout", "connection_error", "refused",
                   "circuit_open", "error")
WEBHOOK_DELIVERIES = Counter(
    "portal_webhook_deliveries_total",
    "Webhook delivery attempts, by result (" + ", ".join(WEBHOOK_RESULTS) + ").",
    ["result"])
WEBHOOK_DURATION = Histogram(
    "portal_webhook_delivery_duration_seconds",
    "Time of one webhook delivery attempt, by result.",
    ["result"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0))

# --------------------------------------------------------------------------- recording

_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_role = ""


def set_role(role: str) -> None:
    """Name this process's role (web, worker, beat, watcher) at start-up. The first name
    stays: ``run_portal``'s embedded process, which also starts a worker and imports the web
    application, is ``embedded``."""
    global _role
    if _role:
        return
    _role = role if role in ROLES else "other"
    PROCESS.labels(_role).set(time.time())


def role() -> str:
    return _role


def mark_process_dead(pid: int | None = None) -> None:
    """Drop a process's live gauges (open sockets, leader) from the shared directory: a
    process that ends does it for itself at exit, a Celery worker for its children."""
    if not MULTIPROC_DIR:
        return
    try:
        multiprocess.mark_process_dead(pid or os.getpid(), MULTIPROC_DIR)
    except OSError:  # the directory went away with its role
        logger.info("metrics.mark_dead_failed", extra={"pid": pid})


atexit.register(mark_process_dead)


def http_request(route: str, method: str, status: int, seconds: float) -> None:
    method = method.upper() if method.upper() in _HTTP_METHODS else "OTHER"
    HTTP_REQUESTS.labels(route, method, str(status)).inc()
    HTTP_DURATION.labels(route, method).observe(seconds)
    if status == 429:
        THROTTLED.labels(route).inc()


def login_failed() -> None:
    LOGIN_FAILURES.inc()


def websocket_opened(consumer: str) -> None:
    WEBSOCKETS_OPEN.labels(consumer).inc()


def websocket_closed(consumer: str) -> None:
    WEBSOCKETS_OPEN.labels(consumer).dec()


def websocket_pushed(consumer: str, frames: int = 1) -> None:
    WEBSOCKET_PUSHES.labels(consumer).inc(frames)


def operation_finished(kind: str, state: str, seconds: float | None) -> None:
    OPERATIONS_FINISHED.labels(kind, state).inc()
    if seconds is not None and seconds >= 0:
        OPERATION_DURATION.labels(kind, state).observe(seconds)


def task_failed(task: str) -> None:
    TASK_FAILURES.labels(task).inc()


def task_retried(task: str) -> None:
    TASK_RETRIES.labels(task).inc()


def watcher_applied(stream: str, *, events: int, changed: int, lag: float | None) -> None:
    """A batch of ``events`` of ``stream`` was applied, ``changed`` of them changed state;
    ``lag``: seconds since the batch's first event arrived."""
    WATCHER_EVENTS.labels(stream).inc(events)
    if changed:
        WATCHER_APPLIED.labels(stream).inc(changed)
    if lag is not None:
        WATCHER_LAG.labels(stream).observe(max(lag, 0.0))
    WATCHER_LAST_EVENT.labels(stream).set(time.time())


def watcher_relisted(stream: str) -> None:
    WATCHER_RELISTS.labels(stream).inc()


def watcher_reconnected(stream: str) -> None:
    WATCHER_RECONNECTS.labels(stream).inc()


def watcher_leading(leading: bool) -> None:
    WATCHER_LEADER.set(1 if leading else 0)


def resync_finished(counts: dict[str, int]) -> None:
    RESYNCS.labels("unreachable" if counts.get("unreachable") else "ok").inc()
    for kind in ("requeued", "polled", "changed", "orphans"):
        if counts.get(kind):
            RESYNC_REPAIRS.labels(kind).inc(counts[kind])


def metering_run(trigger: str, *, segments_closed: int) -> None:
    METERING_RUNS.labels(trigger).inc()
    if segments_closed:
        METERING_SEGMENTS_CLOSED.inc(segments_closed)


def webhook_delivered(result: str, seconds: float | None = None) -> None:
    """One webhook delivery attempt ended with ``result`` (one of ``WEBHOOK_RESULTS``; anything
    else counts as ``error``) after ``seconds`` (``None`` when no request was sent, e.g. the
    circuit was open or the address refused)."""
    if result not in WEBHOOK_RESULTS:
        result = "error"
    WEBHOOK_DELIVERIES.labels(result).inc()
    if seconds is not None:
        WEBHOOK_DURATION.labels(result).observe(max(seconds, 0.0))


def initialize(metric: Counter | Gauge | Histogram, *label_sets: tuple[str, ...]) -> None:
    """Create these label sets at zero, so a dashboard shows 0 rather than no data and a
    rate over them is defined before the first event (each app names what it knows)."""
    for labels in label_sets:
        metric.labels(*labels)


for _result in WEBHOOK_RESULTS:
    initialize(WEBHOOK_DELIVERIES, (_result,))
    initialize(WEBHOOK_DURATION, (_result,))


# --------------------------------------------------------------------------- read at scrape

Collect = Callable[[], Iterable[Metric]]
_collectors: dict[str, Collect] = {}


def register_collector(name: str, collect: Collect) -> None:
    """Have ``collect`` read values of the whole service at every scrape of the web role's
    /metrics (the database, Redis, the cache). It returns metric families; if it raises, the
    scrape goes on without it and ``portal_scrape_collector_up{collector=name}`` is 0."""
    _collectors[name] = collect


def collectors() -> dict[str, Collect]:
    return dict(_collectors)
