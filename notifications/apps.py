from __future__ import annotations

from django.apps import AppConfig

from billing.events import BudgetThresholdReached, InvoiceFinalized
from clusters import events
from portal.events import Moment


class NotificationsConfig(AppConfig):
    """Emails and webhooks about what happens in a tenant. Every notification starts from a
    domain event, subscribed here; no domain calls this app."""

    name = "notifications"
    verbose_name = "Notifications"

    def ready(self) -> None:
        # Start-up order: the subscribers import the models, which exist only now.
        from notifications import publishing  # noqa: PLC0415

        # In the transaction of each change: the rows are written with what they report.
        moment: Moment = "in_transaction"
        events.subscribe(events.ClusterPhaseChanged, publishing.on_cluster_phase_changed,
                         moment=moment)
        events.subscribe(events.OperationFinished, publishing.on_operation_finished,
                         moment=moment)
        events.subscribe(events.VersionEndOfLifeSoon, publishing.on_version_end_of_life_soon,
                         moment=moment)
        events.subscribe(events.MaintenanceScheduled, publishing.on_maintenance_scheduled,
                         moment=moment)
        events.subscribe(events.ClusterHibernated, publishing.on_cluster_hibernated,
                         moment=moment)
        events.subscribe(events.ClusterWoken, publishing.on_cluster_woken, moment=moment)
        events.subscribe(events.ClusterExpiring, publishing.on_cluster_expiring, moment=moment)
        events.subscribe(BudgetThresholdReached, publishing.on_budget_threshold, moment=moment)
        events.subscribe(InvoiceFinalized, publishing.on_invoice_finalized, moment=moment)
