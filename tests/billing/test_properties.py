"""Property-based: random observation sequences against a model of what was observed.

For any sequence: billed seconds equal observed seconds per node group and SKU (also through
the rating SQL), segments of a key never overlap, and replaying any prefix changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from billing import metering, rating
from tests.billing.conftest import T0, make_rig

observation = st.fixed_dictionaries({
    "dt": st.integers(min_value=1, max_value=20_000),  # seconds since the previous one
    "a": st.integers(min_value=0, max_value=4),         # nodes in group a
    "b": st.integers(min_value=0, max_value=3),         # nodes in group b (1 GPU each)
    "type_a": st.sampled_from(["t1.test", "t1.big"]),
    "cp": st.integers(min_value=0, max_value=3),
    "addon": st.booleans(),
})
PROPERTY_SETTINGS = settings(max_examples=30, deadline=None, derandomize=True,
                             suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                    HealthCheck.too_slow])


def _expected(obs: dict) -> dict[tuple[str | None, str], int]:
    """What one observation says is running, written independently of billing.metering."""
    usage: dict[tuple[str | None, str], int] = {}
    if obs["a"]:
        usage[("a", f"node.{obs['type_a']}")] = obs["a"]
        usage[("a", "disk.gib")] = obs["a"] * 10
    if obs["b"]:
        usage[("b", "node.t1.test")] = obs["b"]
        usage[("b", "gpu.test/gpu")] = obs["b"]
    if obs["cp"]:
        usage[(None, "cp.test")] = obs["cp"]
    if obs["addon"]:
        usage[(None, "addon.testaddon")] = 1
    return usage


@pytest.fixture(params=["native", "portable"])
def metering_path(request, monkeypatch):
    """Both implementations of the metering diff: the PostgreSQL statement and the Python one
    (the only one on SQLite)."""
    monkeypatch.setattr(metering, "FORCE_PORTABLE", request.param == "portable")
    return request.param


class Harness:
    def __init__(self, tenant, name: str = "prop") -> None:
        self.rig = make_rig(tenant, name, groups={"a": {"disk_gib": 10},
                                                    "b": {"gpu_model": "test/gpu",
                                                          "gpus_per_node": 1}})
        self.names = {g.pk: g.name for g in self.rig.groups}

    def apply(self, obs: dict, when) -> None:
        cluster = self.rig.cluster
        cluster.platform_deleted_at = cluster.deleted_at = None
        cluster.control_plane_replicas = obs["cp"]
        cluster.addons = {"testaddon": {"enabled": obs["addon"]}}
        a, b = self.rig.groups
        a.instance_type, a.observed_nodes, b.observed_nodes = obs["type_a"], obs["a"], obs["b"]
        metering.observe_cluster(cluster, [a, b], when)

    def delete(self, when) -> None:
        self.rig.cluster.platform_deleted_at = when
        metering.observe_cluster(self.rig.cluster, [], when)

    def snapshot(self) -> list[tuple]:
        rows = [(self.names.get(s.node_group_id), s.sku, s.quantity, s.start, s.end)
                for s in self.rig.cluster.usage_segments.all()]
        return sorted(rows, key=lambda r: (r[0] or "", r[1], r[3]))


def _times(sequence: list[dict]) -> list:
    times, when = [], T0
    for obs in sequence:
        when += timedelta(seconds=obs["dt"])
        times.append(when)
    return times


@PROPERTY_SETTINGS
@given(sequence=st.lists(observation, min_size=1, max_size=10),
       tail=st.integers(min_value=1, max_value=20_000), delete=st.booleans(),
       prefix=st.integers(min_value=0, max_value=10))
def test_billed_seconds_equal_observed_seconds(tenant, price_book, metering_path, sequence,
                                               tail, delete, prefix):
    with transaction.atomic():
        harness = Harness(tenant)
        times = _times(sequence)
        for obs, when in zip(sequence, times, strict=True):
            harness.apply(obs, when)
        end = times[-1] + timedelta(seconds=tail)
        if delete:
            harness.delete(end)

        # The model: each observation's usage holds until the next one (or the end).
        observed: dict[tuple, int] = defaultdict(int)
        bounds = [*times[1:], end]
        for obs, start, stop in zip(sequence, times, bounds, strict=True):
            for key, quantity in _expected(obs).items():
                observed[key] += quantity * int((stop - start).total_seconds())

        segments = harness.snapshot()
        billed: dict[tuple, int] = defaultdict(int)
        for group, sku, quantity, start, stop in segments:
            billed[(group, sku)] += int(quantity) * int(((stop or end) - start).total_seconds())
        assert dict(billed) == dict(observed)

        # The same through the rating SQL (per SKU: lines are per cluster and SKU).
        per_sku: dict[str, int] = defaultdict(int)
        for (_group, sku), seconds in observed.items():
            per_sku[sku] += seconds
        rated = defaultdict(Decimal)
        for line in rating.rate_usage([(T0, end + timedelta(days=1))], as_of=end,
                                      cluster_ids=[harness.rig.cluster.pk]):
            rated[line.sku] += line.unit_seconds
        assert dict(rated) == {sku: Decimal(s) for sku, s in per_sku.items() if s}

        # Segments of a key never overlap, at most one is open, none is empty.
        by_key: dict[tuple, list] = defaultdict(list)
        for group, sku, _q, start, stop in segments:
            by_key[(group, sku)].append((start, stop))
        for spans in by_key.values():
            spans.sort()
            assert sum(stop is None for _s, stop in spans) <= 1
            for (_s1, e1), (s2, _e2) in zip(spans, spans[1:], strict=False):
                assert e1 is not None and e1 <= s2
            assert all(stop is None or stop > start for start, stop in spans)

        # Replaying any prefix of the sequence changes nothing.
        before = harness.snapshot()
        k = min(prefix, len(sequence))
        for obs, when in zip(sequence[:k], times[:k], strict=True):
            harness.apply(obs, when)
        if delete:
            harness.delete(end)
        assert harness.snapshot() == before
        transaction.set_rollback(True)


@PROPERTY_SETTINGS
@given(sequence=st.lists(observation, min_size=1, max_size=10),
       tail=st.integers(min_value=1, max_value=20_000), delete=st.booleans())
def test_both_metering_paths_write_the_same_ledger(tenant, price_book, sequence, tail, delete):
    ledgers = []
    with transaction.atomic():
        for portable in (False, True):
            metering.FORCE_PORTABLE = portable
            try:
                harness = Harness(tenant, f"path{int(portable)}")
                times = _times(sequence)
                for obs, when in zip(sequence, times, strict=True):
                    harness.apply(obs, when)
                    harness.apply(obs, when)  # a replay on the spot
                if delete:
                    harness.delete(times[-1] + timedelta(seconds=tail))
                ledgers.append(harness.snapshot())
            finally:
                metering.FORCE_PORTABLE = False
        assert ledgers[0] == ledgers[1]
        transaction.set_rollback(True)
