"""The "saved this month by hibernation" figure: billing's one pricing path, from the price
book and the sizes waking restores, over the hours spent hibernating."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from billing import pricing, queries
from clusters import hibernation
from clusters.models import Cluster, Hibernation
from cozystack.specs import NodeGroupSpec
from tests.billing.conftest import add_price

pytestmark = pytest.mark.django_db

MD0 = NodeGroupSpec(name="md0", instance_type="t1.test", min_replicas=2, max_replicas=5,
                    disk_gib=50)
MD1 = NodeGroupSpec(name="md1", instance_type="t1.test", min_replicas=1, max_replicas=2,
                    disk_gib=0, gpus=("test/gpu",))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def sleep(cluster: Cluster, start: datetime, end: datetime | None, *,
          state: str = Hibernation.State.WOKEN) -> Hibernation:
    return Hibernation.objects.create(
        tenant=cluster.tenant, cluster=cluster, state=state, started_at=start, ended_at=end,
        restore=hibernation.groups_to_json((MD0, MD1)))


@pytest.fixture
def week_prices(db):
    add_price("node.t1.test", "0.36")  # CHF 0.0001 per node-second
    add_price("gpu.test/gpu", "1.80", kind="gpu", unit="gpu-hour")  # 0.0005 per GPU-second
    add_price("disk.gib", "0.0036", since=utc(2025, 1, 1), kind="disk",
              unit="gib-hour")  # 0.000001 per GiB-second
    add_price("cp.test", "0.072", kind="cp", unit="replica-hour")


def test_a_scripted_week_saves_what_was_computed_by_hand(tenant, other_tenant, week_prices):
    """The week of Monday 2 March 2026 with "nights 20:00–08:00 on weekdays and all weekend"
    (UTC), waking restoring md0 (t1.test, min 2, 50 GiB disk) and md1 (t1.test, min 1, one
    GPU test/gpu, no disk):

    - nights Mon–Thu: 4 × 12 h = 48 h; Friday 20:00 → Monday 08:00:30 = 60 h 30 s;
      together 108 h 30 s = 388,830 s. A failed hibernation and another tenant's cluster
      count nothing, nor does the control plane (it keeps running and is billed).
    - nodes: (2 + 1) nodes × 388,830 s × CHF 0.0001 = 116.649 → line 116.65
    - disk: 2 × 50 GiB × 388,830 s × CHF 0.000001 = 38.883 → line 38.88
    - GPU: 1 × 388,830 s × CHF 0.0005 = 194.415 → line 194.42 (half-up)
    - saved: 116.65 + 38.88 + 194.42 = CHF 349.95 (each line rounded once, then summed).
    """
    cluster = Cluster.objects.create(tenant=tenant, name="dev", version="v1.33",
                                     control_plane_preset="test")
    for day in range(2, 6):  # Monday to Thursday nights
        sleep(cluster, utc(2026, 3, day, 20), utc(2026, 3, day + 1, 8))
    sleep(cluster, utc(2026, 3, 6, 20), utc(2026, 3, 9, 8, 0, 30))
    sleep(cluster, utc(2026, 3, 9, 9), utc(2026, 3, 9, 10), state=Hibernation.State.FAILED)
    others = Cluster.objects.create(tenant=other_tenant, name="dev", version="v1.33")
    sleep(others, utc(2026, 3, 2, 20), utc(2026, 3, 9, 8))

    saved = queries.hibernation_savings_mtd(tenant, now=utc(2026, 3, 9, 12))

    assert saved == {cluster.pk: Decimal("349.95")}
    assert queries.hibernation_savings_mtd(tenant, cluster_id=cluster.pk,
                                           now=utc(2026, 3, 9, 12)) == saved


def test_only_this_months_hours_count_and_an_open_hibernation_counts_until_now(
        tenant, week_prices):
    cluster = Cluster.objects.create(tenant=tenant, name="dev", version="v1.33")
    # From the last evening of February, still asleep on 1 March at 10:00: 10 h in March.
    sleep(cluster, utc(2026, 2, 28, 20), None, state=Hibernation.State.HIBERNATING)
    saved = queries.hibernation_savings_mtd(tenant, now=utc(2026, 3, 1, 10))
    # 3.24 CHF per hour (0.72 nodes + 0.36 md1 node + 0.36 disk + 1.80 GPU) × 10 h.
    assert saved == {cluster.pk: Decimal("32.40")}


def test_a_price_change_during_a_night_splits_its_seconds_between_the_two_prices(tenant,
                                                                                week_prices):
    add_price("node.t1.test", "0.72", since=utc(2026, 3, 3, 2))
    period = pricing.SleepPeriod(7, utc(2026, 3, 2, 20), utc(2026, 3, 3, 8),
                                 (NodeGroupSpec(name="md0", instance_type="t1.test",
                                                min_replicas=1, max_replicas=3, disk_gib=0),))
    # 6 h at 0.36 + 6 h at 0.72 = 2.16 + 4.32
    assert pricing.hibernation_savings([period]) == {7: Decimal("6.48")}


def test_a_group_whose_minimum_is_zero_saves_nothing(tenant, week_prices):
    period = pricing.SleepPeriod(7, utc(2026, 3, 2, 20), utc(2026, 3, 3, 8),
                                 (NodeGroupSpec(name="md0", instance_type="t1.test",
                                                min_replicas=0, max_replicas=3, disk_gib=0),))
    assert pricing.hibernation_savings([period]) == {}
    assert pricing.hibernation_savings([]) == {}
