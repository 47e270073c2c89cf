from __future__ import annotations

from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        from billing import metering, tasks  # start-up order: apps are ready only now
        from billing.events import BudgetChanged
        from clusters import events

        events.subscribe(events.ClusterObserved, metering.on_cluster_observed,
                         moment="in_transaction")
        events.subscribe(events.WatcherStarted, metering.on_watcher_started,
                         moment="in_transaction")
        events.subscribe(BudgetChanged, tasks.check_budgets_soon, moment="after_commit")
