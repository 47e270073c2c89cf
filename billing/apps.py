from __future__ import annotations

from django.apps import AppConfig

from billing.events import BudgetChanged
from clusters import events


class BillingConfig(AppConfig):
    name = "billing"

    def ready(self) -> None:
        # Start-up order: metering and the tasks import the models, which exist only now.
        from billing import checks, metering, tasks  # noqa: PLC0415, F401 - checks register on import
        from billing import metrics as billing_metrics  # noqa: PLC0415

        events.subscribe(events.ClusterObserved, metering.on_cluster_observed,
                         moment="in_transaction")
        events.subscribe(events.WatcherStarted, metering.on_watcher_started,
                         moment="in_transaction")
        events.subscribe(BudgetChanged, tasks.check_budgets_soon, moment="after_commit")
        billing_metrics.register()
