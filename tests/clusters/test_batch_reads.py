"""What the watcher's batches and the live pushes read and write together: the revisions of a
batch counted in one statement, the connections of background threads kept between jobs, and
the savings line of a pushed detail page read only for a cluster that hibernated this month."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from clusters import events, hibernation
from clusters.models import ClusterRevision, Hibernation, Operation
from clusters.web import live, queries
from clusters.web.templatetags import hibernation_tags
from portal.connections import between_jobs
from tests.billing.conftest import add_price
from tests.clusters.conftest import cluster_spec, group
from tests.clusters.ui import make_cluster


def revision(cluster_id: int) -> int | None:
    return (ClusterRevision.objects.filter(cluster_id=cluster_id)
            .values_list("revision", flat=True).first())


@pytest.mark.django_db
def test_a_batch_counts_each_changed_cluster_once_in_one_statement_when_it_ends(tenant):
    a, b = make_cluster(tenant, "alpha"), make_cluster(tenant, "beta")
    before = {pk: revision(pk) or 0 for pk in (a.pk, b.pk)}
    with CaptureQueriesContext(connection) as seen:
        with transaction.atomic(), events.counting():
            for pk in (a.pk, b.pk, a.pk):
                events.count_change(pk)
            assert {pk: revision(pk) or 0 for pk in (a.pk, b.pk)} == before  # not yet
    assert {pk: revision(pk) for pk in (a.pk, b.pk)} == {pk: n + 1 for pk, n in before.items()}
    counted = [q["sql"] for q in seen.captured_queries
               if "INSERT" in q["sql"] and ClusterRevision._meta.db_table in q["sql"]]
    assert len(counted) == 1

    with pytest.raises(RuntimeError), transaction.atomic(), events.counting():
        events.count_change(a.pk)
        raise RuntimeError("the batch failed")
    assert revision(a.pk) == before[a.pk] + 1  # a batch that fails counts nothing


@pytest.mark.django_db(transaction=True)
def test_a_background_thread_keeps_a_healthy_connection_and_drops_a_broken_one():
    connection.ensure_connection()
    kept = connection.connection
    between_jobs()
    assert connection.connection is kept  # CONN_MAX_AGE=0 would have closed it

    connection.errors_occurred = True
    kept.close()  # the server went away under it
    between_jobs()
    assert connection.connection is None

    connection.ensure_connection()
    connection.set_autocommit(False)  # a job left a transaction open
    between_jobs()
    assert connection.connection is None


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


def test_a_pushed_detail_page_shows_the_savings_and_asks_billing_only_after_a_sleep_this_month(
        engine, tenant, monkeypatch):
    cluster = engine.create(cluster_spec(groups=(group("md0", min_replicas=2, max_replicas=5),)))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    add_price("node.u1.large", "0.36", since=datetime(2026, 12, 1, tzinfo=UTC))
    add_price("disk.gib", "0.0036", since=datetime(2026, 12, 1, tzinfo=UTC), kind="disk",
              unit="gib-hour")
    Hibernation.objects.create(
        tenant=tenant, cluster=cluster, state=Hibernation.State.WOKEN,
        started_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        ended_at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        restore=hibernation.groups_to_json(cluster.to_spec().node_groups))
    asked = []
    savings = hibernation_tags.hibernation_savings_mtd

    def counted(*args, **kwargs):
        asked.append(kwargs.get("cluster_id"))
        return savings(*args, **kwargs)

    monkeypatch.setattr(hibernation_tags, "hibernation_savings_mtd", counted)
    variant = ("en", live.VIEW)

    with time_machine.travel(datetime(2026, 12, 7, 12, 5, tzinfo=UTC), tick=False):
        assert queries.cluster_state_by_id(cluster.pk).slept_this_month is True
        regions = live.detail_pushes({cluster.pk: {variant: set()}})[cluster.pk].regions
    # As the page itself says (test_hibernation_views: 2.16 nodes + 0.65 disk).
    assert "Saved this month by hibernation: CHF 2.81" in " ".join(regions[variant].split())
    assert asked == [cluster.pk]

    asked.clear()
    with time_machine.travel(datetime(2027, 1, 3, tzinfo=UTC) + timedelta(hours=1), tick=False):
        assert queries.cluster_state_by_id(cluster.pk).slept_this_month is False
        regions = live.detail_pushes({cluster.pk: {variant: set()}})[cluster.pk].regions
    assert "Saved this month by hibernation" not in regions[variant]
    assert asked == []  # it slept last month only: billing is not asked
