"""The clusters domain in the metrics: finished operations (a subscriber of
``OperationFinished``), and, read at each scrape of the web role, the operations in flight and
the watcher's last word (the health it publishes in the cache).

In flight: ``queued`` (not taken by a worker yet), ``running`` (a worker sends it, or the
platform works on it), ``scheduled`` (a worker backed off and scheduled its next attempt; an
operation scheduled for a later time counts there too once the model has such a state).
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from django.db.models import Count, Min, Q
from django.utils import timezone
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from clusters import events
from clusters.events import OperationFinished
from clusters.models import Operation
from clusters.watcher import streams, watcher_health
from portal import metrics

IN_FLIGHT_STATES = ("queued", "running", "scheduled")
FINAL_STATES = (Operation.State.SUCCEEDED, Operation.State.FAILED, Operation.State.CANCELLED)


def on_operation_finished(event: OperationFinished) -> None:
    """Count the operation (after commit: a rolled-back finish never counts)."""
    operation = event.operation
    seconds = None
    if operation.finished_at is not None and operation.created_at is not None:
        seconds = (operation.finished_at - operation.created_at).total_seconds()
    metrics.operation_finished(operation.kind, operation.state, seconds)


def _backing_off() -> Q:
    return Q(state=Operation.State.RUNNING, submitted_at__isnull=True) & ~Q(lease_token="")


def operations_in_flight() -> Iterable[Metric]:
    states = [str(s) for s in Operation.State.values
              if s in Operation.ACTIVE_STATES or s == "scheduled"]
    scheduled = _backing_off() | Q(state="scheduled")
    counts = Operation.objects.filter(state__in=states).aggregate(
        queued=Count("pk", filter=Q(state=Operation.State.QUEUED)),
        running=Count("pk", filter=Q(state=Operation.State.RUNNING) & ~_backing_off()),
        scheduled=Count("pk", filter=scheduled),
        oldest=Min("created_at"))
    family = GaugeMetricFamily("portal_operations_in_flight",
                               "Operations not finished, by state (queued, running, scheduled), "
                               "read at scrape.", labels=["state"])
    for state in IN_FLIGHT_STATES:
        family.add_metric([state], counts[state] or 0)
    oldest = GaugeMetricFamily("portal_operation_oldest_in_flight_seconds",
                               "Age of the oldest operation not finished (0 if none), read at "
                               "scrape.",
                               value=(timezone.now() - counts["oldest"]).total_seconds()
                               if counts["oldest"] else 0)
    return [family, oldest]


def watcher_state() -> Iterable[Metric]:
    health = watcher_health()
    heartbeat = GaugeMetricFamily(
        "portal_watcher_heartbeat_age_seconds",
        "Seconds since the active watcher last reported (every 5 s while it runs); absent "
        "before any watcher ran.")
    since = GaugeMetricFamily(
        "portal_watcher_seconds_since_last_event",
        "Seconds since the watcher last applied an event, by stream (absent before the "
        "first one).", labels=["stream"])
    if health:
        now = time.time()
        heartbeat.add_metric([], max(now - float(health.get("published_at") or 0), 0.0))
        for name, stream in sorted((health.get("streams") or {}).items()):
            if stream.get("last_event_at"):
                since.add_metric([name], max(now - float(stream["last_event_at"]), 0.0))
    return [heartbeat, since]


def register() -> None:
    for kind in Operation.Kind.values:
        for state in FINAL_STATES:
            metrics.initialize(metrics.OPERATIONS_FINISHED, (kind, str(state)))
            metrics.initialize(metrics.OPERATION_DURATION, (kind, str(state)))
    for name in (stream.name for stream in streams()):
        for metric in (metrics.WATCHER_EVENTS, metrics.WATCHER_APPLIED, metrics.WATCHER_RELISTS,
                       metrics.WATCHER_RECONNECTS, metrics.WATCHER_LAG):
            metrics.initialize(metric, (name,))
    for outcome in ("ok", "unreachable"):
        metrics.initialize(metrics.RESYNCS, (outcome,))
    for repair in ("requeued", "polled", "changed", "orphans"):
        metrics.initialize(metrics.RESYNC_REPAIRS, (repair,))
    events.subscribe(OperationFinished, on_operation_finished, moment="after_commit")
    metrics.register_collector("operations", operations_in_flight)
    metrics.register_collector("watcher", watcher_state)
