"""Beat and on-demand billing tasks. Each takes ids (or nothing), re-reads the rows and is
idempotent, so a redelivery after a worker crash (``acks_late``) does no harm."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from billing import actions, budgets, metering
from billing.events import BudgetChanged

logger = logging.getLogger("billing.tasks")

TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True,
                                "max_retries": 0}


@shared_task(name="billing.finalize_invoices", soft_time_limit=540, time_limit=600,
             **TASK_OPTIONS)
def finalize_invoices() -> dict[str, int]:
    """Finalize the invoices of months over for longer than the grace period.

    Changes: due drafts become final invoices (numbered, emailed). Safe to repeat: an invoice
    that is final already is skipped, numbers are taken under a lock.
    """
    return actions.finalize_due_invoices()


@shared_task(name="billing.check_budgets", soft_time_limit=240, time_limit=300, **TASK_OPTIONS)
def check_budgets(tenant_ids: list[int] | None = None) -> int:
    """Alert every budget threshold crossed this month (all tenants, or ``tenant_ids``).

    Changes: one ``BudgetAlert`` (and one email) per tenant, threshold and month. Safe to
    repeat and to run concurrently: the alert's unique key lets only one run send.
    """
    return len(budgets.check_budgets(tenant_ids=tenant_ids))


@shared_task(name="billing.reconcile_ledger", soft_time_limit=240, time_limit=300,
             **TASK_OPTIONS)
def reconcile_ledger() -> dict[str, int]:
    """Close open usage segments of clusters that no longer run; record the run.

    Changes: open segments of deleted clusters get their end (the deletion time). Safe to
    repeat: closed segments are never touched again.
    """
    run = metering.reconcile_ledger(trigger="beat")
    return {"clusters": run.clusters_closed, "segments": run.segments_closed}


def check_budgets_soon(event: BudgetChanged) -> None:
    """After a budget change commits, check its thresholds now rather than at the next beat."""
    try:
        check_budgets.delay(tenant_ids=[event.tenant_id])
    except Exception:  # noqa: BLE001 - the beat check catches up; never fail the request
        logger.warning("billing.budget.check_enqueue_failed",
                       extra={"tenant_id": event.tenant_id})
