"""The tenant's quota on the platform: its ResourceQuotas, combined (PLATFORM.md f, PLATFORM-v1.6.md
row 27).

A tenant namespace may hold two ResourceQuotas: ``tenant-quota``, rendered by the tenant chart
from the Tenant's ``resourceQuotas``, and, from v1.6, ``tenant-quota-allocated``, written by the
platform's hierarchical quota controller to clamp the tenant to its share of its parent's budget.
Kubernetes enforces every quota of a namespace, so the most restrictive one binds: per resource,
the smaller hard limit wins, and so does the smaller remaining headroom (the two may count usage
differently: the allocated quota aggregates a whole sub-tree).

Pure functions over the objects as the API serves them (``status.hard`` / ``status.used``);
the gateway reads them, the clusters domain caches and shows them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from cozystack.specs import parse_quantity

TENANT_QUOTA = "tenant-quota"
ALLOCATED_QUOTA = "tenant-quota-allocated"
QUOTA_NAMES = (TENANT_QUOTA, ALLOCATED_QUOTA)
GIB = Decimal(2**30)

# What a cluster's machines count against, per kind of demand. In a ResourceQuota, ``cpu`` and
# ``memory`` mean their requests.
CPU_KEYS = ("limits.cpu", "requests.cpu", "cpu")
MEMORY_KEYS = ("limits.memory", "requests.memory", "memory")
# Shown first, in this order; then GPUs, then anything else the platform limits, by name.
ORDER = (*CPU_KEYS, *MEMORY_KEYS, "requests.storage", "services.loadbalancers", "pods")
GPU_PREFIX = "requests.nvidia.com/"


@dataclass(frozen=True)
class QuotaResource:
    """One resource the platform limits for the tenant, combined over its quotas.

    ``hard`` is the smaller limit (set by ``hard_quota``); ``remaining`` the smaller headroom
    (left in ``binding_quota``, which counts ``used``). Amounts are in base units: cores for
    CPU, bytes for memory and storage, a count otherwise.
    """

    resource: str
    hard: Decimal
    used: Decimal
    remaining: Decimal
    hard_quota: str
    binding_quota: str

    @property
    def is_bytes(self) -> bool:
        return "memory" in self.resource or "storage" in self.resource

    @property
    def exhausted(self) -> bool:
        return self.remaining <= 0

    @property
    def hard_text(self) -> str:
        return self.amount(self.hard)

    @property
    def used_text(self) -> str:
        return self.amount(self.used)

    @property
    def remaining_text(self) -> str:
        return self.amount(self.remaining)

    def amount(self, value: Decimal) -> str:
        """``value`` in this resource's words: GiB for memory and storage, else as is."""
        return amount_text(self.resource, value)


def amount_text(resource: str, value: Decimal) -> str:
    if "memory" in resource or "storage" in resource:
        value = (value / GIB).quantize(Decimal("0.01"))
        return f"{value.normalize():f} GiB"
    return f"{value.quantize(Decimal('0.001')).normalize():f}"


def _amounts(raw: Any) -> dict[str, Decimal]:
    """``status.hard`` or ``status.used`` as numbers; what is no quantity is left out."""
    if not isinstance(raw, Mapping):
        return {}
    parsed = {}
    for key, value in raw.items():
        number = parse_quantity(value)
        if isinstance(key, str) and number is not None:
            parsed[key] = number
    return parsed


def _sort_key(resource: str) -> tuple[int, str]:
    if resource in ORDER:
        return (ORDER.index(resource), resource)
    return (len(ORDER) + (0 if resource.startswith(GPU_PREFIX) else 1), resource)


def combine_quotas(quotas: Mapping[str, Mapping[str, Any] | None]) -> tuple[QuotaResource, ...]:
    """Every resource limited by any of ``quotas`` (name -> ResourceQuota object, or None when
    the platform has none by that name), combined: the smaller hard limit and the smaller
    headroom win. A quota whose status the platform has not written yet limits nothing."""
    found: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    for name in sorted(quotas):
        obj = quotas[name]
        status = obj.get("status") if isinstance(obj, Mapping) else None
        if not isinstance(status, Mapping):
            continue
        in_use = _amounts(status.get("used"))
        for resource, hard in _amounts(status.get("hard")).items():
            found.setdefault(resource, []).append(
                (name, hard, in_use.get(resource, Decimal(0))))
    combined = []
    for resource in sorted(found, key=_sort_key):
        entries = found[resource]
        hard_name, hard, _used = min(entries, key=lambda e: (e[1], e[0]))
        binding, limit, taken = min(entries,
                                    key=lambda e: (max(e[1] - e[2], Decimal(0)), e[0]))
        combined.append(QuotaResource(resource, hard, taken, max(limit - taken, Decimal(0)),
                                      hard_name, binding))
    return tuple(combined)


@dataclass(frozen=True)
class Headroom:
    """What the quotas leave for one kind of demand (vCPU, memory): the tightest resource among
    those that count it, or None where the platform limits none of them."""

    kind: str  # "cpu" | "memory"
    resource: QuotaResource | None

    @property
    def remaining(self) -> Decimal | None:
        return None if self.resource is None else self.resource.remaining


def headroom(resources: tuple[QuotaResource, ...], kind: str) -> Headroom:
    """The tightest of the CPU (``kind="cpu"``) or memory limits.

    ``requests.cpu`` is left out for CPU: the platform requests only a fraction of a node's
    vCPUs (its CPU allocation ratio), so a vCPU does not spend a whole request core.
    """
    keys = {"cpu": ("limits.cpu",), "memory": MEMORY_KEYS}[kind]
    candidates = [r for r in resources if r.resource in keys]
    if not candidates:
        return Headroom(kind, None)
    return Headroom(kind, min(candidates, key=lambda r: (r.remaining, r.resource)))


def shortfall(resources: tuple[QuotaResource, ...], *, vcpu: Decimal, memory_bytes: Decimal
              ) -> list[tuple[QuotaResource, Decimal]]:
    """The limits that ``vcpu`` and ``memory_bytes`` more would exceed: (resource, needed in
    its base units), CPU first. Empty when everything fits or nothing is limited."""
    found = []
    for kind, needed in (("cpu", vcpu), ("memory", memory_bytes)):
        room = headroom(resources, kind)
        if needed > 0 and room.resource is not None and needed > room.resource.remaining:
            found.append((room.resource, needed))
    return found
