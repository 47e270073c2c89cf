"""The range of every number a person or an API client can send, defined once.

The platform's schema types these numbers but bounds none of them, and a number is also the
size of what the portal builds from it (a node group's list of GPUs, the manifest, the price
estimate, the quota sums). So the portal sets its own ranges here, and every entry point uses
the same ones: the HTML forms and the API serializers refuse a value outside its range before
anything is built from it, the platform rules (``rules``) check the spec against them whatever
made it, and the admin and the billing pages bound quotas and budgets with them.

Plain data, no Django: the contract package and every app import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(frozen=True)
class Range:
    """Whole numbers from ``lo`` to ``hi``, both included."""

    lo: int
    hi: int

    def allows(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and \
            self.lo <= value <= self.hi


@dataclass(frozen=True)
class DecimalRange:
    """Amounts from ``lo`` to ``hi``, both included, with ``places`` decimal places."""

    lo: Decimal
    hi: Decimal
    places: int

    def allows(self, value: Any) -> bool:
        return isinstance(value, Decimal) and value.is_finite() and self.lo <= value <= self.hi


# --------------------------------------------------------------------------- a cluster

CONTROL_PLANE_REPLICAS = Range(1, 5)
"""API-server pods the platform runs (Kamaji)."""

NODE_GROUPS = Range(1, 20)
"""Worker node groups in one cluster."""

MIN_NODES = Range(0, 100)
MAX_NODES = Range(1, 100)
"""The autoscaler's limits of one node group."""

DISK_GIB = Range(10, 2048)
"""A node's ephemeral disk, in GiB."""

GPUS_PER_NODE = Range(1, 8)
"""GPUs passed through to each node of a GPU group."""

CUSTOM_CPU_CORES = Range(1, 128)
CUSTOM_MEMORY_GIB = Range(1, 1024)
"""A custom-sized node (no instance type): at most this much CPU and memory. CPU may be a
fraction of a core (``500m``) above zero; ``lo`` is the memory floor and the CPU unit."""

NODE_ROLES = 10
INGRESS_HOSTS = 50
"""List lengths: roles of one node group, host names routed by Ingress NGINX."""

# --------------------------------------------------------------------------- budgets

BUDGET_CHF = DecimalRange(Decimal("0.01"), Decimal("9999999999.99"), places=2)
"""A monthly budget, in CHF before VAT (what the budget table stores)."""

BUDGET_THRESHOLD_PERCENT = Range(1, 1000)
BUDGET_THRESHOLDS = 10
"""Budget alerts: each a whole percentage of the budget, at most this many."""
