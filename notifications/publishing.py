"""From domain events to notifications: the subscribers ``NotificationsConfig.ready`` registers.

Each runs *in the transaction* of what it reports (``moment="in_transaction"``): the event row
and one delivery row per endpoint that wants it are written with the change itself, so they
exist exactly when the change committed, and nothing is lost if the broker is down at that
moment. Workers are asked to send once the transaction commits; the periodic dispatch takes
up anything that message did not reach.

A subscriber's own failure must never undo the change it reports: each runs in a savepoint,
and a failure is logged and rolled back to it.

Which domain event becomes which notification:

- ``ClusterPhaseChanged`` to *running* from *creating*, *degraded* or *failed*:
  ``cluster.ready``; to *deleted*: ``cluster.deleted``;
- ``OperationFinished`` succeeded / failed: ``operation.succeeded`` / ``operation.failed``
  (with the operation's error class);
- ``BudgetThresholdReached``: ``budget.threshold``; ``InvoiceFinalized``:
  ``invoice.finalized`` (billing emails those itself);
- ``VersionEndOfLifeSoon`` (the clusters domain's periodic check, once per cluster and
  version): ``version.end_of_life_soon``;
- ``MaintenanceScheduled`` (the maintenance planner, once per scheduled automatic upgrade):
  ``maintenance.scheduled``.
- ``ClusterHibernated`` / ``ClusterWoken`` (a hibernate or wake operation succeeded):
  ``cluster.hibernated`` / ``cluster.woken``.
- ``ClusterExpiring`` (the expiry planner, 24 hours and 1 hour before): ``cluster.expiring``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from django.db import transaction
from django.utils import timezone

from billing.events import BudgetThresholdReached, InvoiceFinalized
from clusters.events import (
    ClusterExpiring,
    ClusterHibernated,
    ClusterPhaseChanged,
    ClusterWoken,
    MaintenanceScheduled,
    OperationFinished,
    VersionEndOfLifeSoon,
)
from clusters.models import Cluster, Operation
from notifications import emails, payloads, tasks
from notifications.models import Delivery, Event, WebhookEndpoint
from portal.models import Tenant
from portal.notifications import EventType

logger = logging.getLogger("notifications.publishing")
E = TypeVar("E")

READY_FROM = frozenset({Cluster.Phase.CREATING, Cluster.Phase.DEGRADED, Cluster.Phase.FAILED})


def record_event(tenant: Tenant | int, event_type: str, data: dict[str, Any], *,
                 occurred_at: datetime | None = None) -> Event:
    """Write ``event_type`` for ``tenant`` and a pending delivery to each of its enabled
    endpoints that wants it, in the current transaction; workers are asked to send them (and
    the event's emails) once it commits."""
    tenant_id = tenant if isinstance(tenant, int) else tenant.pk
    now = timezone.now()
    event = Event.objects.create(tenant_id=tenant_id, type=event_type, data=data,
                                 occurred_at=occurred_at or now, created_at=now,
                                 email_due=event_type in emails.EMAILED_HERE)
    endpoints = [e for e in WebhookEndpoint.objects.filter(tenant_id=tenant_id, enabled=True)
                 if e.wants(event_type)]
    deliveries = Delivery.objects.bulk_create([
        Delivery(endpoint=e, event=event, created_at=now, next_attempt_at=now)
        for e in endpoints])
    tasks.enqueue_after_commit([d.pk for d in deliveries],
                               event.pk if event.email_due else None)
    return event


def _guarded(handler: Callable[[E], None]) -> Callable[[E], None]:
    """Run ``handler`` in a savepoint; a failure is logged and undone, the change kept."""

    @wraps(handler)
    def run(event: E) -> None:
        try:
            with transaction.atomic():
                handler(event)
        except Exception:
            logger.exception("notification.record.failed",
                             extra={"event": type(event).__name__})

    return run


@_guarded
def on_cluster_phase_changed(event: ClusterPhaseChanged) -> None:
    cluster = event.cluster
    if cluster.phase == Cluster.Phase.RUNNING and event.before in READY_FROM:
        record_event(cluster.tenant_id, EventType.CLUSTER_READY,
                     payloads.cluster_phase(cluster, event.before), occurred_at=event.at)
    elif cluster.phase == Cluster.Phase.DELETED:
        record_event(cluster.tenant_id, EventType.CLUSTER_DELETED,
                     payloads.cluster_phase(cluster, event.before), occurred_at=event.at)


@_guarded
def on_operation_finished(event: OperationFinished) -> None:
    operation = event.operation
    kinds = {Operation.State.SUCCEEDED: EventType.OPERATION_SUCCEEDED,
             Operation.State.FAILED: EventType.OPERATION_FAILED}
    event_type = kinds.get(Operation.State(operation.state))
    if event_type is not None:
        record_event(operation.tenant_id, event_type, payloads.operation(operation),
                     occurred_at=operation.finished_at)


@_guarded
def on_budget_threshold(event: BudgetThresholdReached) -> None:
    alert = event.alert
    record_event(alert.tenant_id, EventType.BUDGET_THRESHOLD, payloads.budget_threshold(alert),
                 occurred_at=alert.created_at)


@_guarded
def on_invoice_finalized(event: InvoiceFinalized) -> None:
    invoice = event.invoice
    record_event(invoice.tenant_id, EventType.INVOICE_FINALIZED, payloads.invoice(invoice),
                 occurred_at=invoice.issued_at)


@_guarded
def on_version_end_of_life_soon(event: VersionEndOfLifeSoon) -> None:
    record_event(event.cluster.tenant_id, EventType.VERSION_END_OF_LIFE_SOON,
                 payloads.end_of_life(event.cluster, event.version, event.end_of_life_on,
                                      event.upgrade_to, event.at), occurred_at=event.at)


@_guarded
def on_maintenance_scheduled(event: MaintenanceScheduled) -> None:
    record_event(event.cluster.tenant_id, EventType.MAINTENANCE_SCHEDULED,
                 payloads.maintenance_scheduled(event.cluster, event.from_version,
                                                event.to_version, event.starts_at,
                                                event.ends_at, event.time_zone, event.rolls),
                 occurred_at=event.at)


@_guarded
def on_cluster_hibernated(event: ClusterHibernated) -> None:
    record_event(event.cluster.tenant_id, EventType.CLUSTER_HIBERNATED,
                 payloads.hibernation(event.cluster, event.hibernation, event.wakes_at),
                 occurred_at=event.at)


@_guarded
def on_cluster_woken(event: ClusterWoken) -> None:
    record_event(event.cluster.tenant_id, EventType.CLUSTER_WOKEN,
                 payloads.hibernation(event.cluster, event.hibernation), occurred_at=event.at)


@_guarded
def on_cluster_expiring(event: ClusterExpiring) -> None:
    record_event(event.cluster.tenant_id, EventType.CLUSTER_EXPIRING,
                 payloads.expiring(event.cluster, event.expires_at, event.lead_hours),
                 occurred_at=event.at)
