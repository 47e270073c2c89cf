"""Metering of ``KubernetesNodes`` pools (worker pools the platform runs for a cluster outside
its spec, Cozystack v1.6): their nodes are the cluster's, metered as the platform reports them,
under no node group, once; the SQL path and the portable one write the same ledger."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing import metering
from billing.models import UsageSegment
from billing.pricing import PriceTable, pool_monthly_costs
from clusters.models import NodePool
from tests.billing.conftest import NODE_SKU, at, make_rig

pytestmark = pytest.mark.django_db


@pytest.fixture(params=["postgres", "portable"])
def path(request, monkeypatch):
    monkeypatch.setattr(metering, "FORCE_PORTABLE", request.param == "portable")
    return request.param


def ledger(cluster) -> list[tuple]:
    return sorted((s.node_group_id is not None, s.sku, s.quantity, s.start, s.end)
                  for s in UsageSegment.objects.filter(cluster=cluster))


def pool(rig, name: str = "gpu", **values) -> NodePool:
    fields = {"spec_seen": True, "instance_type": "t1.test", "min_replicas": 1,
              "max_replicas": 4, "disk_gib": 10, "observed_nodes": 2, **values}
    return NodePool.objects.create(cluster=rig.cluster, name=name, **fields)


def observe(rig, when, pools) -> metering.MeterResult:
    live = [g for g in rig.groups if g.removed_at is None]
    return metering.observe_cluster(rig.cluster, live, when, pools=pools)


def test_pool_nodes_are_the_clusters_under_no_group(tenant, price_book, path):
    rig = make_rig(tenant)
    rig.group("md0").observed_nodes = 1
    gpu = pool(rig, gpu_model="gpu.test", gpus_per_node=0)
    observe(rig, at(0), [gpu])
    segments = {(s.node_group_id, s.sku): s.quantity
                for s in UsageSegment.objects.filter(cluster=rig.cluster, end__isnull=True)}
    assert segments == {(rig.group("md0").pk, NODE_SKU): Decimal(1),
                        (None, NODE_SKU): Decimal(2), (None, "disk.gib"): Decimal(20)}


def test_pools_sharing_a_size_add_up_and_follow_their_node_counts(tenant, price_book, path):
    rig = make_rig(tenant)
    rig.group("md0").observed_nodes = 0
    first, second = pool(rig, "a", disk_gib=0), pool(rig, "b", disk_gib=0, observed_nodes=1)
    observe(rig, at(0), [first, second])
    second.observed_nodes = 3
    observe(rig, at(1), [first, second])
    assert observe(rig, at(1), [first, second]).changed is False  # a replay writes nothing
    assert [(q, s, e) for _g, _sku, q, s, e in ledger(rig.cluster)] == [
        (Decimal(3), at(0), at(1)), (Decimal(5), at(1), None)]


def test_a_pool_of_unknown_size_is_not_metered_until_it_is_known(tenant, price_book, path):
    rig = make_rig(tenant)
    rig.group("md0").observed_nodes = 0
    late = pool(rig, "late", spec_seen=False, instance_type="", disk_gib=0)
    observe(rig, at(0), [late])
    assert ledger(rig.cluster) == []
    late.spec_seen, late.instance_type = True, "t1.test"
    observe(rig, at(2), [late])
    assert ledger(rig.cluster) == [(False, NODE_SKU, Decimal(2), at(2), None)]


def test_the_sql_and_portable_paths_agree_on_pools(tenant, price_book, monkeypatch):
    ledgers = []
    for name, portable in (("sql", False), ("portable", True)):
        monkeypatch.setattr(metering, "FORCE_PORTABLE", portable)
        rig = make_rig(tenant, name)
        rig.group("md0").observed_nodes = 2
        pools = [pool(rig, "a"), pool(rig, "b", observed_nodes=1, gpu_model="gpu.test",
                                      gpus_per_node=1)]
        observe(rig, at(0), pools)
        pools[0].observed_nodes = 0
        observe(rig, at(1), pools)
        ledgers.append(ledger(rig.cluster))
    assert ledgers[0] == ledgers[1]


def test_a_pool_costs_its_current_nodes_for_a_month(tenant, price_book):
    rig = make_rig(tenant)
    sized = pool(rig, disk_gib=0)  # 2 nodes at 0.36 CHF/h for 730 h
    unknown = pool(rig, "late", spec_seen=False, instance_type="")
    unpriced = pool(rig, "odd", instance_type="x9.none")
    costs = pool_monthly_costs([sized, unknown, unpriced], prices=PriceTable.load())
    assert costs == {sized.pk: Decimal("525.60"), unknown.pk: None, unpriced.pk: None}
