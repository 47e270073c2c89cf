"""Month-to-date cost on the cluster pages: per cluster on the list and the detail page, the
tenant's total above the list, the same figures as the invoice draft, kept live."""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache

from billing import queries
from billing.periods import Period
from billing.web.templatetags.billing_tags import chf
from clusters.web import live
from clusters.web import queries as cluster_queries
from tests.billing.conftest import make_rig
from tests.clusters.ui import offline_platform, text_of, url

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]


@pytest.fixture
def running(tenant, price_book):
    """Three clusters running since the start of the month, one of them bigger."""
    start = Period.current().start_at
    rigs = {}
    for name, nodes in (("web", 3), ("batch", 1), ("idle", 0)):
        rig = make_rig(tenant, name, cp_replicas=1)
        rig.observe(start, md0=nodes)
        rigs[name] = rig
    return rigs


def shown_amount(text: str) -> Decimal:
    match = re.search(r"CHF ([\d’]+\.\d\d)", text)
    assert match, text
    return Decimal(match.group(1).replace("’", ""))


def test_the_list_shows_each_clusters_month_to_date_and_the_tenants_total(
        tenant, running, viewer, client_for):
    html = client_for(viewer).get(url("list", tenant)).content.decode()

    snapshot = queries.month_to_date(tenant.pk)  # the one the page used (cached)
    # The same pricing function as the invoice draft, at the same instant.
    assert snapshot.per_cluster == queries.cluster_costs_mtd(tenant, now=snapshot.as_of)
    for name, rig in running.items():
        row = text_of(html, f"cluster-{rig.cluster.pk}")
        assert shown_amount(row) == snapshot.of(rig.cluster.pk), name
    assert snapshot.of(running["web"].cluster.pk) > snapshot.of(running["batch"].cluster.pk)
    total = text_of(html, "cluster-list")
    assert f"CHF {chf(snapshot.total)}" in total
    assert snapshot.total == sum(snapshot.per_cluster.values())
    assert f"as of {snapshot.as_of:%H:%M} UTC" in total


def test_the_detail_page_shows_the_clusters_month_to_date(tenant, running, member,
                                                          client_for):
    web = running["web"].cluster
    html = client_for(member).get(url("detail", tenant, cluster_name=web.name)).content.decode()
    snapshot = queries.month_to_date(tenant.pk)
    assert 'data-testid="cluster-mtd"' in html
    cell = html[html.index('data-testid="cluster-mtd"'):]
    assert shown_amount(cell[:200]) == snapshot.of(web.pk) > 0


def test_one_snapshot_serves_every_page_for_a_minute(tenant, running,
                                                     django_assert_num_queries):
    with django_assert_num_queries(2):  # the price book, one aggregate over the ledger
        first = queries.month_to_date(tenant.pk)
    with django_assert_num_queries(0):
        again = queries.month_to_date(tenant.pk)
    assert again == first
    cache.clear()  # a minute later the snapshot has expired
    assert queries.month_to_date(tenant.pk).as_of >= first.as_of


def test_costs_are_refreshed_on_the_page_without_reloading(tenant, running, viewer,
                                                          client_for):
    client = client_for(viewer)
    web = running["web"].cluster
    page = client.get(url("list", tenant)).content.decode()
    refresher = re.search(r'<div hidden hx-get="([^"]+)" hx-trigger="every (\d+)s"', page)
    assert refresher and int(refresher.group(2)) == queries.MTD_SNAPSHOT_SECONDS
    assert refresher.group(1).startswith(url("list_live", tenant))

    # A minute on, the cluster has used more: the refresh brings the new figures.
    before = queries.month_to_date(tenant.pk)
    running["web"].observe(before.as_of + timedelta(seconds=1), md0=6)
    cache.clear()
    refreshed = client.get(refresher.group(1).replace("&amp;", "&")).content.decode()
    after = queries.month_to_date(tenant.pk)
    assert 'id="cluster-list" class="card" hx-swap-oob="true"' in refreshed
    assert shown_amount(text_of(refreshed, f"cluster-{web.pk}")) == after.of(web.pk)
    assert f"CHF {chf(after.total)}" in text_of(refreshed, "cluster-list")

    detail = client.get(url("detail", tenant, cluster_name=web.name)).content.decode()
    assert re.search(r'<div hidden hx-get="' + re.escape(
        url("detail_live", tenant, cluster_name=web.name)) + r'" hx-trigger="every 60s"', detail)
    pushed = client.get(url("detail_live", tenant, cluster_name=web.name)).content.decode()
    assert f"CHF {chf(after.of(web.pk))}" in pushed


def test_a_pushed_row_carries_the_clusters_cost(tenant, running):
    web = running["web"].cluster
    row = cluster_queries.cluster_row(web.pk)
    assert row.cost_mtd == queries.month_to_date(tenant.pk).of(web.pk)
    html = live.render_row(row, tenant.slug)
    assert f"CHF {chf(row.cost_mtd)}" in html
    # A different figure is a different row: the cached HTML of the old one is not reused.
    other = cluster_queries.ClusterRow(row.cluster, row.operation, row.last_change_at,
                                       row.groups, row.end_of_life_on,
                                       row.cost_mtd + Decimal("0.01"))
    assert other.fingerprint != row.fingerprint


def test_another_tenants_costs_never_show(tenant, other_tenant, running, price_book, owner,
                                          client_for):
    theirs = make_rig(other_tenant, "theirs", cp_replicas=2)
    theirs.observe(Period.current().start_at, md0=9)
    html = client_for(owner).get(url("list", tenant)).content.decode()
    ours = queries.month_to_date(tenant.pk)
    assert set(ours.per_cluster) <= {rig.cluster.pk for rig in running.values()}
    assert f"CHF {chf(ours.total)}" in text_of(html, "cluster-list")
    assert f'id="cluster-{theirs.cluster.pk}"' not in html
