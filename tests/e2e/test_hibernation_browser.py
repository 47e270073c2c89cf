"""A person in a real browser gives a cluster a hibernation schedule, hibernates it now and
sees its nodes go to 0 live, then wakes it and sees them come back, without reloading.

Everything runs for real: uvicorn, a Celery worker, the watcher and the simulated platform on
the real clock. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from clusters.models import HibernationSchedule
from portal.permissions import Role
from tests.e2e.conftest import Stack, screenshot
from tests.e2e.test_clusters_browser import create_cluster, expect_live, wait_running

pytestmark = pytest.mark.browser
LIVE = 60_000  # ms


def open_hibernation(page: Page) -> None:
    section = page.locator("#act-hibernation")
    if section.get_attribute("open") is None:
        section.locator("> summary").click()


@pytest.mark.browser
def test_schedule_hibernate_now_nodes_go_to_zero_live_and_wake_brings_them_back(
        stack: Stack, page: Page):
    slug = stack.tenant.slug
    create_cluster(stack, "sleepy")
    wait_running("sleepy")
    stack.sign_in(page, Role.OWNER)
    page.goto(stack.page_url(f"/t/{slug}/clusters/sleepy/"))
    page.evaluate("window.__sameDocument = true")
    expect_live(page)
    nodes = page.locator("tr[data-group=md0] [data-testid=observed]")
    limits = page.locator("tr[data-group=md0] [data-testid=limits]")
    expect(nodes).to_have_text("1", timeout=LIVE)

    # The schedule: a preset in a time zone (refusals beside their fields are tested in
    # tests/clusters/test_hibernation_views.py).
    open_hibernation(page)
    form = page.get_by_test_id("hibernation-schedule")
    form.locator("[name=hibernation-time_zone]").fill("Europe/Zurich")
    form.locator("[name=hibernation-preset]").select_option("nights_weekends")
    form.get_by_test_id("save-schedule").click()
    expect(page.get_by_test_id("action-done")).to_contain_text("Hibernation schedule saved.")
    assert HibernationSchedule.objects.get(cluster__name="sleepy").preset == "nights_weekends"

    # Hibernate now: every group to 0, the nodes leave live.
    open_hibernation(page)
    with page.expect_response(lambda r: r.url.endswith("/sleepy/hibernate/")) as answer:
        page.get_by_test_id("hibernate-now").click()
    assert answer.value.status == 200
    expect(limits).to_have_text("0–0", timeout=LIVE)
    expect(nodes).to_have_text("0", timeout=LIVE)
    expect(page.get_by_test_id("hibernating")).to_contain_text(
        re.compile(r"Hibernating since .+ UTC\s+·\s+wakes at .+ UTC"), timeout=LIVE)
    screenshot(page, "cluster-hibernating")

    # Wake now: the exact limits come back, and the node with them.
    open_hibernation(page)
    expect(page.get_by_test_id("wake-now")).to_be_enabled(timeout=LIVE)
    with page.expect_response(lambda r: r.url.endswith("/sleepy/wake/")) as answer:
        page.get_by_test_id("wake-now").click()
    assert answer.value.status == 200
    expect(limits).to_have_text("1–3", timeout=LIVE)
    expect(nodes).to_have_text("1", timeout=LIVE)
    expect(page.get_by_test_id("hibernating")).to_have_count(0, timeout=LIVE)
    screenshot(page, "cluster-woken")
