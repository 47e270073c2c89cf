"""Domain events of billing (published through ``portal.events``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the events name models in their fields only
    from billing.models import BudgetAlert, Invoice


@dataclass(frozen=True)
class BudgetChanged:
    """A tenant's budget was set or changed: its thresholds deserve a fresh look."""

    tenant_id: int


@dataclass(frozen=True)
class BudgetThresholdReached:
    """A tenant's costs of a month reached one of its budget thresholds (published once per
    tenant, month and threshold, in the transaction that records the alert)."""

    alert: BudgetAlert


@dataclass(frozen=True)
class InvoiceFinalized:
    """An invoice or a credit note was finalized: numbered, frozen, due (published in the
    transaction that finalizes it)."""

    invoice: Invoice
