"""Billing in the metrics, read at each scrape of the web role: the usage segments open now
(what the ledger is metering) and how long ago the ledger was last reconciled. Metering runs
themselves are counted where they happen (``billing.metering.reconcile_ledger``)."""

from __future__ import annotations

from collections.abc import Iterable

from django.utils import timezone
from prometheus_client.metrics_core import GaugeMetricFamily, Metric

from billing.models import MeteringRun, UsageSegment
from portal import metrics


def ledger_state() -> Iterable[Metric]:
    open_segments = GaugeMetricFamily(
        "portal_metering_open_segments",
        "Usage segments open now (usage being metered), read at scrape.",
        value=UsageSegment.objects.filter(end__isnull=True).count())
    last = MeteringRun.objects.order_by("-started_at").values_list("started_at", flat=True)
    age = GaugeMetricFamily(
        "portal_metering_last_run_age_seconds",
        "Seconds since the ledger was last reconciled (absent before the first run).")
    started = last.first()
    if started is not None:
        age.add_metric([], max((timezone.now() - started).total_seconds(), 0.0))
    return [open_segments, age]


TRIGGERS = ("watcher", "beat")


def register() -> None:
    for trigger in TRIGGERS:
        metrics.initialize(metrics.METERING_RUNS, (trigger,))
    metrics.register_collector("metering", ledger_state)
