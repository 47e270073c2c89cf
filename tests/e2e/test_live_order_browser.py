"""In a real browser: a page never goes back to an older state of a cluster, whichever way the
older state comes (a push that raced through another web process, a poll answered before the
change, a snapshot read before it). Every region and row carries the cluster's revision, and
the page keeps what it shows when what arrives is older; anything at least as new replaces it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection, transaction
from django.template.loader import render_to_string
from django.utils import translation
from playwright.sync_api import Page, expect

from clusters import events
from clusters.models import Cluster
from clusters.web import live, queries
from portal.permissions import Role
from tests.clusters.ui import make_cluster
from tests.e2e.conftest import Stack, screenshot

pytestmark = pytest.mark.browser
LIVE = 30_000  # ms


def publish(cluster_id: int, **fields) -> None:
    """A committed, published change, from a thread of its own (Playwright's event loop in this
    one would stop the broadcast after commit)."""

    def run() -> None:
        try:
            with transaction.atomic():
                Cluster.objects.filter(pk=cluster_id).update(**fields)
                events.cluster_changed(cluster_id)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(run).result()


def in_thread(fn, *args):
    def run():
        try:
            return fn(*args)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(run).result()


def detail_regions(cluster_id: int, revision: int | None = None) -> str:
    state = queries.cluster_state_by_id(cluster_id)
    if revision is not None:
        state.revision = revision
    with translation.override("en"):
        return live.render_detail(state, live.VIEW)


def list_region(stack: Stack) -> str:
    """The list's region as the polling fallback and a socket's snapshot send it."""
    tenant = stack.tenant
    facets = queries.list_facets(tenant)
    current, rows = queries.cluster_rows_page(tenant, facets=facets)
    with translation.override("en"):
        return render_to_string(f"{live.LIST_TEMPLATE}#rows", {
            "rows": rows, "row_html": live.rows_html(rows, tenant.slug), "page": current,
            "tenant_slug": tenant.slug, "oob": True, "facets": facets,
            "filters": {"phase": "", "version": ""}})


def arrives(page: Page, html: str) -> None:
    """``html`` reaches the page as a push does: its out-of-band parts are swapped in."""
    page.evaluate("(html) => window.htmx.swap(document.body, html, {swapStyle: 'none'})", html)


def expect_live(page: Page) -> None:
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live",
                                                                  timeout=15_000)


@pytest.mark.browser
def test_a_detail_page_keeps_the_newer_state_when_an_older_push_arrives_after_it(
        stack: Stack, page: Page):
    cluster = make_cluster(stack.tenant, "steady", status_message="Running: at first.")
    older = in_thread(detail_regions, cluster.pk)  # read before the change: revision 0
    stack.sign_in(page, Role.VIEWER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/steady/"))
    expect_live(page)

    publish(cluster.pk, status_message="Running: changed.")
    message = page.get_by_test_id("status-message")
    expect(message).to_have_text("Running: changed.", timeout=LIVE)

    arrives(page, older)  # the push that lost the race
    page.wait_for_timeout(300)
    expect(message).to_have_text("Running: changed.")

    # Anything at least as new is taken (what shows the guard is the one that acted above).
    in_thread(lambda: Cluster.objects.filter(pk=cluster.pk).update(
        status_message="Running: newer still."))
    arrives(page, in_thread(detail_regions, cluster.pk, 10 ** 6))
    expect(message).to_have_text("Running: newer still.")
    screenshot(page, "cluster-detail-order")


@pytest.mark.browser
def test_the_list_keeps_a_newer_row_when_an_older_snapshot_or_poll_arrives_after_it(
        stack: Stack, page: Page):
    cluster = make_cluster(stack.tenant, "steady", status_message="Running: at first.")
    make_cluster(stack.tenant, "other", status_message="Running: untouched.")
    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/"))
    expect_live(page)
    older = in_thread(list_region, stack)  # read before the change

    publish(cluster.pk, status_message="Running: changed.")
    row = page.locator(f"#cluster-{cluster.pk}")
    expect(row).to_contain_text("Running: changed.", timeout=LIVE)

    # The whole list again, read before the change (with the other row as new as the one
    # shown: its wording moved on meanwhile, at the same revision).
    arrives(page, older.replace("Running: untouched.", "Running: other moved on."))
    page.wait_for_timeout(300)
    expect(row).to_contain_text("Running: changed.")
    # The rest of what came is taken.
    expect(page.locator("tbody.cluster-row", has_text="other")).to_contain_text(
        "Running: other moved on.")
    screenshot(page, "clusters-list-order")
