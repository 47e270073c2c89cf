"""Billing fixtures: clusters made directly with the ORM, a test price book, an observer.

Tests use their own SKU codes (instance type ``t1.test``, control-plane preset ``test``…) with
round prices, so hand-computed answers do not depend on the seeded example price book.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from billing import metering
from billing.models import Price, Sku
from clusters.models import Cluster, NodeGroup

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)

# 0.36 CHF/h = 0.0001 CHF per second: easy to compute by hand.
NODE_SKU = "node.t1.test"
NODE_PRICE = Decimal("0.36")


def at(hours: float = 0, *, base: datetime = T0) -> datetime:
    return base + timedelta(hours=hours)


def add_price(code: str, per_hour: str | Decimal,
              since: datetime = datetime(2020, 1, 1, tzinfo=UTC), kind: str = "node",
              unit: str = "node-hour") -> Price:
    sku, _ = Sku.objects.get_or_create(code=code, defaults={"kind": kind, "unit": unit,
                                                            "description": code})
    return Price.objects.create(sku=sku, per_hour=Decimal(per_hour), effective_from=since)


@pytest.fixture
def price_book(db):
    """Round test prices (CHF/h): node 0.36, GPU 1.80, disk 0.0036/GiB, CP 0.072/replica."""
    add_price(NODE_SKU, NODE_PRICE)
    add_price("gpu.test/gpu", "1.80", kind="gpu", unit="gpu-hour")
    # disk.gib is in the seeded example book; a newer test price replaces it from 2025.
    add_price("disk.gib", "0.0036", since=datetime(2025, 1, 1, tzinfo=UTC), kind="disk",
              unit="gib-hour")
    add_price("cp.test", "0.072", kind="cp", unit="replica-hour")
    add_price("addon.testaddon", "0.036", kind="addon", unit="cluster-hour")


@dataclass
class Rig:
    """A cluster and its node groups, observed at chosen instants."""

    cluster: Cluster
    groups: list[NodeGroup] = field(default_factory=list)

    def observe(self, when: datetime, **nodes: int) -> metering.MeterResult:
        """Observe with ``group_name=node_count`` (others keep their last count)."""
        for group in self.groups:
            if group.name in nodes:
                group.observed_nodes = nodes[group.name]
        live = [g for g in self.groups if g.removed_at is None]
        return metering.observe_cluster(self.cluster, live, when)

    def delete(self, when: datetime) -> metering.MeterResult:
        self.cluster.platform_deleted_at = when
        self.cluster.deleted_at = when
        Cluster.objects.filter(pk=self.cluster.pk).update(platform_deleted_at=when,
                                                          deleted_at=when)
        return metering.observe_cluster(self.cluster, [], when)

    def group(self, name: str) -> NodeGroup:
        return next(g for g in self.groups if g.name == name)


def make_rig(tenant, name: str = "web", *, groups: dict[str, dict] | None = None,
             cp_replicas: int = 0, cp_preset: str = "test", addons: dict | None = None) -> Rig:
    """A cluster with node groups of instance type ``t1.test`` and no disk unless asked."""
    cluster = Cluster.objects.create(tenant=tenant, name=name, version="v1.33",
                                     control_plane_replicas=cp_replicas or 1,
                                     control_plane_preset=cp_preset, addons=addons or {})
    if not cp_replicas:
        # Control-plane metering off for node-only scenarios (replicas 0 is not a valid
        # model value, so it is set on the instance only).
        cluster.control_plane_replicas = 0
    rig = Rig(cluster)
    for i, (group_name, options) in enumerate((groups or {"md0": {}}).items()):
        values = {"instance_type": "t1.test", "min_replicas": 0, "max_replicas": 10,
                  "disk_gib": 0, **options}
        rig.groups.append(NodeGroup.objects.create(cluster=cluster, name=group_name,
                                                   position=i, **values))
    return rig


@pytest.fixture
def rig_factory(tenant, price_book):
    def make(name: str = "web", **kwargs) -> Rig:
        return make_rig(tenant, name, **kwargs)

    return make
