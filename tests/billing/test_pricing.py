"""Cost previews: table-driven, with the hand-computed monthly amounts (730 h)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from billing.pricing import PriceTable, estimate_change, estimate_spec
from billing.rating import line_amount, money, vat_amount
from cozystack.specs import AddonSpec, ClusterSpec, ControlPlaneSpec, NodeGroupSpec

D = Decimal


def spec(*groups: NodeGroupSpec, cp: int = 0, addons: tuple[str, ...] = ()) -> ClusterSpec:
    return ClusterSpec(name="web", namespace="tenant-acme", version="v1.33",
                       control_plane=ControlPlaneSpec(replicas=cp, api_server_preset="test"),
                       node_groups=groups,
                       addons=tuple(AddonSpec(key=k, enabled=True) for k in addons))


def group(name="md0", lo=1, hi=3, disk=0, itype="t1.test", gpus=()) -> NodeGroupSpec:
    return NodeGroupSpec(name=name, instance_type=itype, min_replicas=lo, max_replicas=hi,
                         disk_gib=disk, gpus=gpus)


CASES = [
    # (spec, monthly at min, monthly at max) — 730 h a month, test prices from conftest
    # 1 node: 730 × 0.36 = 262.80; 3 nodes: 788.40
    (spec(group()), D("262.80"), D("788.40")),
    # + 20 GiB disk per node: 20 × 730 × 0.0036 = 52.56 per node → 315.36 / 946.08
    (spec(group(disk=20)), D("315.36"), D("946.08")),
    # GPU group 0..2 nodes × 2 GPUs: max 4 × 730 × 1.80 = 5256.00, plus 2 nodes 525.60
    (spec(group("gpu", 0, 2, gpus=("test/gpu", "test/gpu"))), D("0.00"), D("5781.60")),
    # Control plane 3 × 730 × 0.072 = 157.68; add-on 730 × 0.036 = 26.28; fluxcd has no
    # SKU (not metered); min 0 nodes
    (spec(group(lo=0, hi=1), cp=3, addons=("testaddon", "fluxcd")), D("183.96"), D("446.76")),
]


@pytest.mark.parametrize(("cluster", "low", "high"), CASES)
def test_monthly_estimates(price_book, cluster, low, high):
    estimate = estimate_spec(cluster)
    assert (estimate.monthly_min, estimate.monthly_max) == (low, high)
    assert estimate.monthly_min == sum(line.amount_min for line in estimate.lines)


def test_a_change_shows_the_monthly_difference(price_book):
    before = spec(group(lo=1, hi=3))
    after = spec(group(lo=1, hi=5), group("extra", 2, 2))
    delta = estimate_change(before, after)
    # At min: + 2 nodes of "extra" = 2 × 262.80 = 525.60
    # At max: + 2 more in md0 and 2 in "extra" = 4 × 262.80 = 1051.20
    assert (delta.monthly_min, delta.monthly_max) == (D("525.60"), D("1051.20"))
    assert delta.to_dict()["delta_monthly_max"] == "1051.20"
    assert estimate_change(before, before).is_zero


def test_unpriced_skus_are_listed_not_fatal(price_book):
    estimate = estimate_spec(spec(group(itype="x9.unpriced")))
    assert estimate.unpriced == ["node.x9.unpriced"]
    assert estimate.monthly_max == D("0.00")


def test_estimates_reuse_one_price_load(price_book, django_assert_num_queries):
    with django_assert_num_queries(2):
        prices = PriceTable.load()
    with django_assert_num_queries(0):
        for case, _low, _high in CASES:
            estimate_spec(case, prices=prices)
            estimate_change(case, spec(group()), prices=prices)


@pytest.mark.parametrize(("unit_seconds", "per_hour", "amount"), [
    (D(3600), D("0.36"), D("0.36")),
    (D(50), D("0.36"), D("0.01")),        # 0.005 → 0.01 half-up
    (D(49), D("0.36"), D("0.00")),        # 0.0049 → 0.00
    (D(1), D("4.2"), D("0.00")),          # 0.001166… → 0.00
    (D(150), D("0.36"), D("0.02")),       # 0.015 → 0.02 (half-even would give 0.02 too)
    (D(250), D("0.36"), D("0.03")),       # 0.025 → 0.03 (half-even would give 0.02)
    (D(7200), None, D("0.00")),           # no price
])
def test_line_amount_rounds_once_half_up(unit_seconds, per_hour, amount):
    assert line_amount(unit_seconds, per_hour) == amount


def test_vat_is_rounded_once_on_the_subtotal():
    assert vat_amount(D("12.34"), D("0.081")) == D("1.00")  # 0.99954
    assert money(D("0.125")) == D("0.13")
