"""Metering: how observations become open and closed segments."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, connection, transaction

from billing import metering
from billing.models import ImmutableRecord, MeteringRun, UsageSegment
from clusters.models import Cluster
from tests.billing.conftest import NODE_SKU, add_price, at


def segments(rig):
    return list(UsageSegment.objects.filter(cluster=rig.cluster).order_by("sku", "start")
                .values_list("node_group__name", "sku", "quantity", "start", "end"))


def test_first_observation_opens_one_segment_per_sku(rig_factory):
    rig = rig_factory(groups={"md0": {"disk_gib": 50, "gpu_model": "test/gpu",
                                      "gpus_per_node": 2}}, cp_replicas=3)
    result = rig.observe(at(0), md0=4)
    assert result.opened == 4 and result.closed == 0
    assert segments(rig) == [
        (None, "cp.test", Decimal(3), at(0), None),
        ("md0", "disk.gib", Decimal(200), at(0), None),      # 50 GiB × 4 nodes
        ("md0", "gpu.test/gpu", Decimal(8), at(0), None),    # 2 GPUs × 4 nodes
        ("md0", NODE_SKU, Decimal(4), at(0), None),
    ]


def test_replaying_an_observation_changes_nothing(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=2)
    before = segments(rig)
    assert not rig.observe(at(0), md0=2).changed
    assert not rig.observe(at(1), md0=2).changed
    assert segments(rig) == before


def test_a_scale_change_closes_and_opens_at_the_same_instant(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=2)
    result = rig.observe(at(1), md0=5)
    assert (result.opened, result.closed) == (1, 1)
    assert segments(rig) == [("md0", NODE_SKU, Decimal(2), at(0), at(1)),
                             ("md0", NODE_SKU, Decimal(5), at(1), None)]


def test_scaling_to_zero_closes_and_opens_nothing(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=2)
    rig.observe(at(1), md0=0)
    assert segments(rig) == [("md0", NODE_SKU, Decimal(2), at(0), at(1))]


def test_an_older_observation_is_ignored(rig_factory):
    rig = rig_factory()
    rig.observe(at(1), md0=2)
    result = rig.observe(at(0.5), md0=7)
    assert result.ignored
    rig.observe(at(2), md0=3)
    assert rig.observe(at(1.5), md0=9).ignored  # older than a closed segment's end
    assert segments(rig) == [("md0", NODE_SKU, Decimal(2), at(1), at(2)),
                             ("md0", NODE_SKU, Decimal(3), at(2), None)]


def test_instants_are_truncated_to_the_second(rig_factory):
    rig = rig_factory()
    rig.observe(at(0) + timedelta(microseconds=999_999), md0=1)
    assert segments(rig)[0][3] == at(0)


def test_two_changes_in_the_same_second_leave_no_empty_segment(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=1)
    rig.observe(at(1), md0=2)
    rig.observe(at(1) + timedelta(milliseconds=300), md0=3)
    assert segments(rig) == [("md0", NODE_SKU, Decimal(1), at(0), at(1)),
                             ("md0", NODE_SKU, Decimal(3), at(1), None)]


def test_an_instance_type_change_moves_usage_to_the_new_sku(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=2)
    rig.group("md0").instance_type = "t1.big"
    rig.observe(at(1), md0=2)
    assert segments(rig) == [("md0", "node.t1.big", Decimal(2), at(1), None),
                             ("md0", NODE_SKU, Decimal(2), at(0), at(1))]


def test_add_ons_are_metered_only_when_the_price_book_has_them(rig_factory):
    rig = rig_factory(addons={"testaddon": {"enabled": True}, "fluxcd": {"enabled": True},
                              "velero": {"enabled": False}})
    rig.observe(at(0), md0=1)
    assert [s[1] for s in segments(rig)] == ["addon.testaddon", NODE_SKU]
    rig.cluster.addons = {"testaddon": {"enabled": False}}
    rig.observe(at(1), md0=1)
    assert ("addon.testaddon" in {s[1] for s in segments(rig) if s[4] is None}) is False


def test_deletion_closes_everything_at_the_deletion_time(rig_factory):
    rig = rig_factory(groups={"md0": {}, "gpu": {"gpu_model": "test/gpu", "gpus_per_node": 1}},
                      cp_replicas=2)
    rig.observe(at(0), md0=2, gpu=1)
    rig.cluster.platform_deleted_at = at(5)
    # The watcher notices later; usage stops at the platform's deletion time.
    metering.observe_cluster(rig.cluster, [], at(7))
    assert UsageSegment.objects.filter(cluster=rig.cluster, end__isnull=True).count() == 0
    assert set(UsageSegment.objects.filter(cluster=rig.cluster).values_list("end", flat=True)) \
        == {at(5)}
    assert not metering.observe_cluster(rig.cluster, [], at(8)).changed


def test_removing_a_node_group_closes_only_its_segments(rig_factory):
    rig = rig_factory(groups={"a": {}, "b": {}})
    rig.observe(at(0), a=1, b=2)
    rig.group("b").removed_at = at(1)
    rig.observe(at(1))
    open_ = UsageSegment.objects.filter(cluster=rig.cluster, end__isnull=True)
    assert list(open_.values_list("node_group__name", flat=True)) == ["a"]


def test_metering_never_fails_on_an_unknown_instance_type(rig_factory):
    rig = rig_factory(groups={"md0": {"instance_type": "x9.unheard-of"}})
    assert rig.observe(at(0), md0=1).opened == 1


def test_a_closed_segment_cannot_be_saved_or_deleted(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=1)
    rig.observe(at(1), md0=2)
    closed = UsageSegment.objects.get(end__isnull=False)
    closed.quantity = Decimal(9)
    with pytest.raises(ImmutableRecord):
        closed.save()
    with pytest.raises(ImmutableRecord):
        closed.delete()


def test_the_database_allows_one_open_segment_per_key(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=1)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageSegment.objects.create(tenant=rig.cluster.tenant, cluster=rig.cluster,
                                    node_group=rig.group("md0"), sku=NODE_SKU,
                                    quantity=Decimal(1), start=at(2))


def test_postgres_refuses_overlapping_and_rewritten_segments(rig_factory):
    from django.db import DatabaseError

    rig = rig_factory()
    rig.observe(at(0), md0=1)
    rig.observe(at(2), md0=2)
    group = rig.group("md0")
    with pytest.raises(IntegrityError), transaction.atomic():  # overlaps [0, 2)
        UsageSegment.objects.bulk_create([UsageSegment(
            tenant=rig.cluster.tenant, cluster=rig.cluster, node_group=group, sku=NODE_SKU,
            quantity=Decimal(1), start=at(1), end=at(1.5))])
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE billing_usagesegment SET quantity = 5 WHERE "end" IS NOT NULL')
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('DELETE FROM billing_usagesegment WHERE "end" IS NOT NULL')
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE billing_usagesegment SET quantity = 5 WHERE "end" IS NULL')
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE billing_usagesegment SET start = start - interval '1 second' "
                       'WHERE "end" IS NULL')
    with pytest.raises(DatabaseError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE billing_usagesegment SET "end" = "end" + interval \'1 second\' '
                       'WHERE "end" IS NOT NULL')
    # Closing an open segment is the one change allowed, and rewriting a column with its own
    # value is not a change.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute('UPDATE billing_usagesegment SET sku = sku, quantity = quantity '
                       'WHERE "end" IS NULL')
        cursor.execute('UPDATE billing_usagesegment SET "end" = %s WHERE "end" IS NULL',
                       [at(3)])
        transaction.set_rollback(True)


def test_reconcile_closes_clusters_deleted_while_nobody_watched(rig_factory):
    running = rig_factory("running")
    gone = rig_factory("gone")
    running.observe(at(0), md0=1)
    gone.observe(at(0), md0=3)
    Cluster.objects.filter(pk=gone.cluster.pk).update(platform_deleted_at=at(3),
                                                      deleted_at=at(3))
    run = metering.reconcile_ledger(at(10), trigger="test")
    assert (run.clusters_closed, run.segments_closed) == (1, 1)
    assert UsageSegment.objects.get(cluster=gone.cluster).end == at(3)
    assert UsageSegment.objects.get(cluster=running.cluster).end is None
    again = metering.reconcile_ledger(at(11), trigger="test")
    assert again.segments_closed == 0
    assert MeteringRun.objects.count() == 2


def test_reconcile_uses_the_portal_deletion_time_when_the_platform_gave_none(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=1)
    Cluster.objects.filter(pk=rig.cluster.pk).update(deleted_at=at(2))
    metering.reconcile_ledger(at(4))
    assert UsageSegment.objects.get(cluster=rig.cluster).end == at(2)


def test_a_deletion_reported_before_the_last_change_never_rewrites_history(rig_factory):
    rig = rig_factory()
    rig.observe(at(0), md0=1)
    rig.observe(at(5), md0=2)
    Cluster.objects.filter(pk=rig.cluster.pk).update(platform_deleted_at=at(3),
                                                     deleted_at=at(3))
    metering.reconcile_ledger(at(6))
    # [0, 5) stays as recorded; the segment opened at 5 billed nothing and is gone.
    assert segments(rig) == [("md0", NODE_SKU, Decimal(1), at(0), at(5))]


def test_metering_refuses_naive_datetimes(rig_factory):
    rig = rig_factory()
    with pytest.raises(ValueError):
        metering.observe_cluster(rig.cluster, rig.groups, datetime(2026, 3, 1))


def test_an_add_on_sku_added_later_is_metered_from_the_next_observation(rig_factory):
    rig = rig_factory(addons={"lateaddon": {"enabled": True}})
    rig.observe(at(0), md0=1)
    add_price("addon.lateaddon", "0.01", kind="addon", unit="cluster-hour")
    rig.observe(at(1), md0=1)
    assert UsageSegment.objects.get(sku="addon.lateaddon").start == datetime(
        2026, 3, 1, 1, tzinfo=UTC)


ODD_TEXT = ["node.u1.large", "gpu.nvidia.com/AD102GL_L40S", 'say "hi"', "back\\slash\\",
            "NULL", "", "a,b", "{braces}", " padded ", "ünïcode", None]


@pytest.mark.django_db
def test_metering_arrays_reach_postgres_unchanged():
    """Every value survives ``_pg_array`` and the server's array input, whatever it holds."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT %s::varchar[], %s::bigint[], %s::numeric[], %s::boolean[], "
                       "%s::bigint[]",
                       [metering._pg_array(ODD_TEXT), metering._pg_array([1, None, 2**62]),
                        metering._pg_array([Decimal("2"), Decimal("0.0001"), Decimal("1E+3")]),
                        metering._pg_array(["t", "f"]), metering._pg_array([])])
        assert cursor.fetchone() == (ODD_TEXT, [1, None, 2**62],
                                     [Decimal("2"), Decimal("0.0001"), Decimal("1000")],
                                     [True, False], [])


def test_an_odd_gpu_model_is_metered_under_its_own_name(rig_factory):
    model = 'lab\\"gpu", {v2}'
    rig = rig_factory(groups={"md0": {"gpu_model": model, "gpus_per_node": 1}})
    rig.observe(at(0), md0=2)
    rig.observe(at(5), md0=3)
    assert segments(rig) == [
        ("md0", f"gpu.{model}", Decimal(2), at(0), at(5)),
        ("md0", f"gpu.{model}", Decimal(3), at(5), None),
        ("md0", NODE_SKU, Decimal(2), at(0), at(5)),
        ("md0", NODE_SKU, Decimal(3), at(5), None),
    ]
