"""Celery tasks of notifications: send a delivery, send an event's emails, and the two beat
jobs (hand due work to workers; forget the delivery log after 30 days).

Each takes ids, claims its work with a conditional UPDATE and is safe to repeat. A message
lost on the way (the broker was briefly down when a transaction committed) costs only time:
the rows are the outbox, and ``dispatch_due`` finds them.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from celery import shared_task
from django.db import transaction
from django.utils import timezone

from notifications import delivery, emails

logger = logging.getLogger("notifications.tasks")

TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True,
                                "max_retries": 0, "soft_time_limit": 60, "time_limit": 90}
# A retry sooner than this is handed to the broker with a countdown; later ones wait for the
# periodic dispatch (long countdowns outlive the broker's visibility timeout).
COUNTDOWN_MAX = timedelta(minutes=5)


def enqueue(task: Any, *args: Any, countdown: float | None = None) -> bool:
    """Hand work to a worker; a broker that cannot be reached only delays it (the periodic
    dispatch takes it up), so the failure is logged, never raised."""
    try:
        task.apply_async(args, countdown=countdown)
    except Exception:  # noqa: BLE001 - the outbox rows stay due; dispatch_due picks them up
        logger.warning("notifications.enqueue_failed", extra={"task": task.name})
        return False
    return True


def enqueue_after_commit(delivery_ids: list[int], email_event_id: Any = None) -> None:
    """Once the current transaction commits, ask workers to send these deliveries and this
    event's emails."""
    def send() -> None:
        for delivery_id in delivery_ids:
            enqueue(deliver, delivery_id)
        if email_event_id is not None:
            enqueue(send_emails, str(email_event_id))

    if delivery_ids or email_event_id is not None:
        transaction.on_commit(send, robust=True)


@shared_task(name="notifications.deliver", **TASK_OPTIONS)
def deliver(delivery_id: int) -> str | None:
    """Send one delivery if it is due and nobody else is sending it.

    Changes: an attempt in the delivery log, the delivery's state or next attempt, the
    endpoint's health. Safe to repeat: the claim lets one worker send at a time, and a
    delivery not due yet is left for its time.
    """
    outcome = delivery.attempt(delivery_id)
    if outcome is None:
        return None
    if outcome.state == delivery.Delivery.State.PENDING and outcome.next_attempt_at:
        wait = outcome.next_attempt_at - timezone.now()
        if wait <= COUNTDOWN_MAX:
            enqueue(deliver, delivery_id, countdown=max(wait.total_seconds(), 0.0))
    if outcome.email_event_id is not None:
        enqueue(send_emails, str(outcome.email_event_id))
    return outcome.result


@shared_task(name="notifications.send_emails", **TASK_OPTIONS)
def send_emails(event_id: str) -> int:
    """Email one event to those who want it. Safe to repeat: sent once (see
    ``emails.send_event_emails``)."""
    return emails.send_event_emails(event_id)


@shared_task(name="notifications.dispatch_due", **TASK_OPTIONS)
def dispatch_due() -> dict[str, int]:
    """Hand every due delivery and due email nobody holds to a worker (beat, every 30 s):
    retries whose time came, and whatever a lost message or a dead worker left behind.
    Changes nothing itself; safe to repeat."""
    return dispatch(timezone.now())


def dispatch(now: datetime) -> dict[str, int]:
    """``dispatch_due`` as of ``now``."""
    deliveries = delivery.due(now)
    for delivery_id in deliveries:
        enqueue(deliver, delivery_id)
    events = emails.due(now)
    for event_id in events:
        enqueue(send_emails, str(event_id))
    return {"deliveries": len(deliveries), "emails": len(events)}


@shared_task(name="notifications.cleanup", **TASK_OPTIONS)
def cleanup() -> dict[str, int]:
    """Forget finished deliveries and events older than ``WEBHOOK_LOG_DAYS`` (beat, daily),
    and previous secrets whose overlap ended. Safe to repeat."""
    return delivery.forget_old(timezone.now())

