"""Tenant quota: clusters, vCPU, memory and GPUs, counted at every group's maximum size.

Counting at max replicas is deliberate: the autoscaler may grow a group to its maximum at any
time without asking the portal, so that is what the tenant has committed to.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.utils.translation import gettext as _

from clusters.models import Cluster, NodeGroup
from cozystack import catalog
from cozystack.rules import FieldError
from cozystack.specs import ClusterSpec, NodeGroupSpec, parse_quantity
from portal.models import Tenant

DIMENSIONS = ("clusters", "vcpu", "memory_gib", "gpus")


@dataclass(frozen=True)
class Footprint:
    clusters: int = 0
    vcpu: Decimal = Decimal(0)
    memory_gib: Decimal = Decimal(0)
    gpus: int = 0

    def __add__(self, other: Footprint) -> Footprint:
        return Footprint(self.clusters + other.clusters, self.vcpu + other.vcpu,
                         self.memory_gib + other.memory_gib, self.gpus + other.gpus)

    def __sub__(self, other: Footprint) -> Footprint:
        return Footprint(self.clusters - other.clusters, self.vcpu - other.vcpu,
                         self.memory_gib - other.memory_gib, self.gpus - other.gpus)

    def get(self, dimension: str) -> Decimal | int:
        return getattr(self, dimension)


def node_size(group: NodeGroupSpec) -> tuple[Decimal, Decimal]:
    """(vCPU, GiB) of one node of the group; custom sizes come from cpu/memory quantities."""
    if group.instance_type:
        itype = catalog.describe_instance_type(group.instance_type)
        if itype is None:
            return Decimal(0), Decimal(0)
        return Decimal(itype.vcpu), Decimal(itype.memory_gib)
    cpu = parse_quantity(group.cpu) or Decimal(0)
    memory = parse_quantity(group.memory) or Decimal(0)
    return cpu, memory / Decimal(2**30)


def group_footprint(group: NodeGroupSpec) -> Footprint:
    vcpu, memory = node_size(group)
    nodes = group.max_replicas
    return Footprint(0, vcpu * nodes, memory * nodes, len(group.gpus) * nodes)


def spec_footprint(spec: ClusterSpec) -> Footprint:
    total = Footprint(clusters=1)
    for group in spec.node_groups:
        total += group_footprint(group)
    return total


def tenant_footprint(tenant: Tenant, *, exclude_cluster_id: int | None = None) -> Footprint:
    clusters = Cluster.objects.for_tenant(tenant).live()
    if exclude_cluster_id is not None:
        clusters = clusters.exclude(pk=exclude_cluster_id)
    total = Footprint(clusters=clusters.count())
    groups = NodeGroup.objects.filter(cluster__in=clusters, removed_at__isnull=True)
    for group in groups:
        total += group_footprint(group.to_spec())
    return total


@dataclass(frozen=True)
class QuotaLine:
    dimension: str
    label: str
    used: Decimal | int
    requested: Decimal | int
    limit: int

    @property
    def after(self) -> Decimal | int:
        return self.used + self.requested

    @property
    def exceeded(self) -> bool:
        return self.after > self.limit


def _labels() -> dict[str, str]:
    return {"clusters": _("Clusters"), "vcpu": _("vCPU"), "memory_gib": _("Memory (GiB)"),
            "gpus": _("GPUs")}


def quota_lines(tenant: Tenant, spec: ClusterSpec, *, cluster_id: int | None = None
                ) -> list[QuotaLine]:
    """Used / requested / limit per dimension for ``spec`` (replacing ``cluster_id`` if given)."""
    used = tenant_footprint(tenant, exclude_cluster_id=cluster_id)
    if cluster_id is not None:
        existing = Cluster.objects.filter(pk=cluster_id).first()
        current = spec_footprint(existing.to_spec()) if existing else Footprint()
        used = used + current
        requested = spec_footprint(spec) - current
    else:
        requested = spec_footprint(spec)
    limits = tenant.quota()
    labels = _labels()
    return [QuotaLine(d, labels[d], used.get(d), requested.get(d), limits[d]) for d in DIMENSIONS]


def check_quota(tenant: Tenant, spec: ClusterSpec, *, cluster_id: int | None = None
                ) -> list[FieldError]:
    """An error, with the numbers, for each dimension the change would push over the limit.

    Only growth is refused: a change that lowers usage passes even when the tenant is already
    over a limit that staff lowered.
    """
    errors = []
    for line in quota_lines(tenant, spec, cluster_id=cluster_id):
        if line.exceeded and line.requested > 0:
            errors.append(FieldError(
                "quota",
                _("%(label)s quota exceeded: %(used)s in use + %(requested)s requested = "
                  "%(after)s, above the limit of %(limit)s. Lower the maximum nodes, choose a "
                  "smaller instance type, or ask for a higher quota.")
                % {"label": line.label, "used": _num(line.used),
                   "requested": _num(line.requested), "after": _num(line.after),
                   "limit": line.limit},
                "quota_exceeded",
            ))
    return errors


def _num(value: Decimal | int) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)
