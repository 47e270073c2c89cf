"""The tenant's quota on the platform, beside the portal's own (PLATFORM.md f, PLATFORM-v1.6.md
row 27).

The platform limits a tenant namespace with its ResourceQuotas ``tenant-quota`` and, from v1.6,
``tenant-quota-allocated`` (the hierarchical quota's share of the parent's budget); the smaller
wins (``cozystack.quotas``). Exhausting it is no API error: the cluster is accepted, and the
workers beyond it never start. So where a person decides (the create page, the previews of a
scale or a new group, the API's answers) the portal reads them and *warns* when the nodes that
start now need more vCPU or memory than they leave; it refuses only on its own quota
(``clusters.quotas``).

Read through the gateway with a bounded timeout, kept per tenant in the cache for
``PLATFORM_QUOTA_SECONDS`` (one expiring key per tenant). When the read fails or the platform
cannot be reached, the quota is "unknown" for a quarter of that time: pages say so and never
wait on a platform that is down more than once in a while.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext as _

from clusters import platform_release
from clusters.quotas import node_size
from cozystack.changes import replaces_nodes
from cozystack.gateway import PlatformError, get_gateway
from cozystack.quotas import GIB, QuotaResource, amount_text, combine_quotas, shortfall
from cozystack.specs import ClusterSpec
from portal.caching import forget_generation, read_through

if TYPE_CHECKING:
    from cozystack.dialects import Dialect

logger = logging.getLogger("clusters.platform_quota")

# A page may wait for this read (on a cache miss): bounded well below the request timeout.
READ_TIMEOUT = 3.0
CACHE_PREFIX = "clusters:platform-quota:v1:"
# Bumped by ``forget_all`` (a platform upgrade): answers cached under an older one are stale.
GENERATION_KEY = "clusters:platform-quota:generation"
# What was read: quotas found, no quota on the platform, or nothing readable.
READ, NONE, UNKNOWN = "read", "none", "unknown"


@dataclass(frozen=True)
class PlatformQuota:
    """The platform's limits for one namespace, combined (``state``: ``read``, ``none`` when
    the platform sets no quota, ``unknown`` when it could not be read)."""

    namespace: str
    state: str
    resources: tuple[QuotaResource, ...] = ()
    quotas: tuple[str, ...] = ()  # the ResourceQuotas found, by name
    generation: int = 0

    @property
    def known(self) -> bool:
        return self.state != UNKNOWN

    def as_data(self) -> dict[str, Any]:
        """For the API: every limited resource with its hard limit, use and headroom."""
        return {"state": self.state, "quotas": list(self.quotas), "resources": [
            {"resource": r.resource, "hard": _number(r.hard), "used": _number(r.used),
             "remaining": _number(r.remaining), "unit": _unit(r.resource),
             "hard_quota": r.hard_quota, "binding_quota": r.binding_quota}
            for r in self.resources]}


def _unit(resource: str) -> str:
    if "memory" in resource or "storage" in resource:
        return "bytes"
    return "cores" if "cpu" in resource else "count"


def _number(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _key(namespace: str) -> str:
    return f"{CACHE_PREFIX}{namespace}"


def tenant_platform_quota(namespace: str) -> PlatformQuota:
    """The platform's quota for ``namespace`` (cached; read from the platform on a miss)."""
    return read_through(_key(namespace), GENERATION_KEY, PlatformQuota,
                        lambda: _read(namespace), seconds=settings.PLATFORM_QUOTA_SECONDS,
                        settled=lambda answer: answer.known)


def forget(namespace: str) -> None:
    """Read the tenant's quota again on next use."""
    cache.delete(_key(namespace))


def forget_all() -> None:
    """Read every tenant's quota again on next use (the platform runs another release, or the
    portal talks to another platform)."""
    forget_generation(GENERATION_KEY)


def _read(namespace: str) -> PlatformQuota:
    try:
        found = get_gateway().read_resource_quotas(namespace, timeout=READ_TIMEOUT)
    except PlatformError as exc:
        logger.warning("cluster.platform_quota.unreadable",
                       extra={"namespace": namespace, "error": exc.message})
        return PlatformQuota(namespace, UNKNOWN)
    present = {name: obj for name, obj in found.items() if obj is not None}
    resources = combine_quotas(present)
    return PlatformQuota(namespace, READ if resources else NONE, resources,
                         tuple(sorted(present)))


# --------------------------------------------------------------------------- what starts now


def starting_demand(before: ClusterSpec | None, after: ClusterSpec, dialect: Dialect,
                    node_counts: Mapping[str, int] | None = None) -> tuple[Decimal, Decimal]:
    """(vCPU, bytes of memory) of the nodes that start when ``before`` becomes ``after``.

    A new group starts with the dialect's first nodes (its minimum in v1.6, two in v1.3); a
    group whose minimum rises above the nodes it runs (``node_counts``, else its former
    minimum) starts the difference; a group whose nodes are replaced starts its new nodes
    before the old ones go. The autoscaler's growth toward the maximum comes later, on demand,
    and is not counted here.
    """
    counts = node_counts or {}
    old = {g.name: g for g in before.node_groups} if before is not None else {}
    vcpu, memory = Decimal(0), Decimal(0)
    for group in after.node_groups:
        previous = old.get(group.name)
        if previous is None:
            nodes = dialect.first_nodes(group)
        else:
            running = counts.get(group.name, previous.min_replicas)
            if replaces_nodes(previous, group):
                nodes = max(running, group.min_replicas)
            else:
                nodes = max(0, group.min_replicas - running)
        cpu, gib = node_size(group)
        vcpu += cpu * nodes
        memory += gib * GIB * nodes
    return vcpu, memory


@dataclass(frozen=True)
class QuotaWarning:
    """The nodes that start now need more of ``resource`` than the platform's quota leaves."""

    resource: QuotaResource
    needed: Decimal

    @property
    def message(self) -> str:
        r = self.resource
        return _("The nodes that start now need %(needed)s of %(resource)s, but the platform's "
                 "quota %(quota)s leaves %(left)s (%(used)s of %(hard)s in use). The platform "
                 "accepts the change, but the nodes beyond its quota will not start until it "
                 "is raised or something else stops.") % {
            "needed": amount_text(r.resource, self.needed), "resource": r.resource,
            "quota": r.binding_quota, "left": r.amount(r.remaining), "used": r.amount(r.used),
            "hard": r.amount(r.hard)}

    def as_data(self) -> dict[str, Any]:
        r = self.resource
        return {"code": "platform_quota", "resource": r.resource, "quota": r.binding_quota,
                "needed": _number(self.needed), "remaining": _number(r.remaining),
                "hard": _number(r.hard), "used": _number(r.used), "unit": _unit(r.resource),
                "message": self.message}


def quota_warnings(namespace: str, before: ClusterSpec | None, after: ClusterSpec, *,
                   node_counts: Mapping[str, int] | None = None) -> list[QuotaWarning]:
    """A warning per limit (CPU, memory) that the nodes starting now would exceed; none when
    everything fits, nothing starts, or the quota is unknown or absent."""
    vcpu, memory = starting_demand(before, after, platform_release.shown_dialect(),
                                   node_counts)
    if vcpu <= 0 and memory <= 0:
        return []
    quota = tenant_platform_quota(namespace)
    return [QuotaWarning(resource, needed)
            for resource, needed in shortfall(quota.resources, vcpu=vcpu, memory_bytes=memory)]
