"""Domain events of billing (published through ``portal.events``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BudgetChanged:
    """A tenant's budget was set or changed: its thresholds deserve a fresh look."""

    tenant_id: int
