"""The ``data`` of each event type, built from the domain's rows (the OpenAPI document
describes them: ``notifications.api.webhooks``). Plain JSON: strings, numbers, booleans; money
as decimal strings, dates as ISO 8601."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.urls import reverse
from django.utils.translation import gettext as _

from notifications.models import iso

if TYPE_CHECKING:
    from billing.models import BudgetAlert, Invoice
    from clusters.models import Cluster, Hibernation, Operation


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def cluster(cluster: Cluster) -> dict[str, Any]:
    data: dict[str, Any] = {"name": cluster.name, "version": cluster.version,
                            "phase": cluster.phase}
    data["url"] = None if cluster.deleted_at is not None else _absolute(reverse(
        "clusters:detail", kwargs={"tenant_slug": cluster.tenant.slug,
                                   "cluster_name": cluster.name}))
    return data


def cluster_phase(subject: Cluster, before: str) -> dict[str, Any]:
    return {"cluster": cluster(subject), "previous_phase": before}


def operation(op: Operation) -> dict[str, Any]:
    return {
        "operation": {
            "id": op.pk, "kind": op.kind, "state": op.state,
            "error_class": op.error_class or None,
            "error_message": op.error_message or None,
            "created_at": iso(op.created_at),
            "finished_at": iso(op.finished_at) if op.finished_at else None,
        },
        "cluster": cluster(op.cluster),
    }


def _money(value: Decimal | None) -> str | None:
    return None if value is None else f"{value:.2f}"


def budget_threshold(alert: BudgetAlert) -> dict[str, Any]:
    return {"threshold_percent": alert.threshold, "month": f"{alert.period_start:%Y-%m}",
            "budget_amount": _money(alert.budget_amount), "spent": _money(alert.spent),
            "currency": "CHF"}


def invoice(doc: Invoice) -> dict[str, Any]:
    return {"invoice": {
        "id": doc.pk, "number": doc.number, "kind": doc.kind,
        "month": f"{doc.period_start:%Y-%m}", "currency": doc.currency,
        "subtotal": _money(doc.subtotal), "vat_amount": _money(doc.vat_amount),
        "total": _money(doc.total),
        "issued_at": iso(doc.issued_at) if doc.issued_at else None,
        "credits": doc.credits.number if doc.credits_id and doc.credits else None,
    }}


def end_of_life(subject: Cluster, version: str, end: date, upgrade_to: str,
                at: datetime) -> dict[str, Any]:
    return {"cluster": cluster(subject), "version": version,
            "end_of_life_on": end.isoformat(), "days_left": (end - at.date()).days,
            "upgrade_to": upgrade_to or None}


def maintenance_scheduled(subject: Cluster, from_version: str, to_version: str,
                          starts_at: datetime, ends_at: datetime, time_zone: str,
                          rolls: str) -> dict[str, Any]:
    return {"cluster": cluster(subject), "from_version": from_version,
            "to_version": to_version, "starts_at": iso(starts_at), "ends_at": iso(ends_at),
            "time_zone": time_zone, "what_rolls": rolls}


def hibernation(subject: Cluster, held: Hibernation, wakes_at: datetime | None = None
                ) -> dict[str, Any]:
    """``cluster.hibernated`` / ``cluster.woken``: the cluster, since when it slept (and until
    when), why, when it wakes by its schedule, and the node groups waking restores."""
    return {"cluster": cluster(subject), "reason": held.reason,
            "hibernating_since": iso(held.started_at),
            "woken_at": iso(held.woken_at) if held.woken_at else None,
            "wakes_at": iso(wakes_at) if wakes_at else None,
            "node_groups": [{"name": g["name"], "min_replicas": g["min_replicas"],
                             "max_replicas": g["max_replicas"]} for g in held.restore]}


def expiring(subject: Cluster, expires_at: datetime, lead_hours: int) -> dict[str, Any]:
    return {"cluster": cluster(subject), "expires_at": iso(expires_at),
            "lead_hours": lead_hours}


def test_event() -> dict[str, Any]:
    return {"message": _("A test event sent from the portal: your endpoint receives and "
                         "verifies webhooks.")}
