"""A person in a real browser: create a cluster, watch it come up, scale it, upgrade it,
download its kubeconfig and delete it, all without reloading; failures explained live; a viewer
sees no action buttons.

Everything runs for real: uvicorn (HTTP + WebSockets), a Celery worker, the watcher and the
simulated platform on the real clock. Screenshots of each page go to test-artifacts/.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from clusters import actions, offerings
from clusters.models import Cluster, Offering
from cozystack.specs import ClusterSpec, NodeGroupSpec
from portal.audit import Actor
from portal.models import AuditEntry
from portal.permissions import Role
from portal.tenancy import access_tenant
from tests.e2e.conftest import Stack, screenshot
from tests.fixtures.processes import eventually

pytestmark = pytest.mark.browser
LIVE = 60_000  # ms: the platform takes a few seconds; a slow CI machine may take longer


def as_owner(stack: Stack, action, *args, **kwargs):
    """Run an action as the tenant owner, in a thread of its own: Playwright's event loop in
    this thread would make the broadcast after commit (async_to_sync) fail."""
    owner = stack.users[Role.OWNER]
    ctx = access_tenant(owner, stack.tenant.slug)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(_closing, action, Actor(user=owner), ctx, *args, **kwargs).result()


def _closing(action, *args, **kwargs):
    from django.db import connection

    try:
        return action(*args, **kwargs)
    finally:
        connection.close()


def create_cluster(stack: Stack, name: str, version: str = "v1.35") -> Cluster:
    """A cluster requested by the owner through the same action the form uses."""
    spec = ClusterSpec(name=name, namespace=stack.namespace, version=version, node_groups=(
        NodeGroupSpec(name="md0", instance_type="u1.medium", min_replicas=1, max_replicas=3,
                      disk_gib=50, roles=("ingress-nginx",)),))
    return as_owner(stack, actions.do_create_cluster, spec)


def wait_running(name: str) -> None:
    def describe() -> str:
        cluster = Cluster.objects.filter(name=name).first()
        if cluster is None:
            return "no such cluster"
        op = cluster.operations.order_by("-created_at").first()
        return (f"{cluster.phase}: {cluster.status_message!r}; operation "
                f"{op.kind if op else None} {op.state if op else None} "
                f"{[(s['key'], s['state'], s['detail']) for s in op.steps] if op else None}")

    try:
        eventually(lambda: Cluster.objects.filter(name=name, phase=Cluster.Phase.RUNNING)
                   .exists(), timeout=60)
    except AssertionError:
        raise AssertionError(f"{name} never became Running: {describe()}") from None


def expect_live(page: Page) -> None:
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-state", "live",
                                                                  timeout=15_000)


@pytest.mark.browser
def test_create_watch_scale_upgrade_download_and_delete_without_reloading(stack: Stack,
                                                                          page: Page):
    slug = stack.tenant.slug
    # Staff retired v1.34: a cluster on it says so and points at the upgrade.
    offerings.do_save_offering(Offering(kind=Offering.Kind.VERSION, name="v1.34",
                                        end_of_life_on=date(2020, 1, 1)))
    stack.sign_in(page, Role.OWNER)
    # A second tab keeps the list open: it follows the cluster from creation to deletion.
    listing = page.context.new_page()
    listing.goto(stack.page_url(f"/t/{slug}/clusters/"))
    expect_live(listing)
    page.goto(stack.page_url(f"/t/{slug}/clusters/"))
    expect_live(page)
    page.get_by_test_id("new-cluster").click()

    # Validation as you type: a mistake shows beside its field before submitting.
    page.fill("#id_ng-0-min_replicas", "5")
    page.locator("#id_ng-0-min_replicas").blur()
    expect(page.locator("#errors-ng-0-min_replicas")).to_contain_text(
        "cannot be more than the maximum")
    screenshot(page, "cluster-create-error")
    page.fill("#id_ng-0-min_replicas", "1")
    page.fill("#id_name", "shop")
    page.select_option("#id_version", "v1.34")
    expect(page.get_by_test_id("manifest")).to_contain_text("name: shop")
    expect(page.locator("#errors-ng-0-min_replicas")).to_be_empty()
    expect(page.get_by_test_id("create-submit")).to_contain_text(
        "Create “shop”: Kubernetes v1.34, 1 to 3 nodes in 1 group")
    screenshot(page, "cluster-create")
    page.get_by_test_id("create-submit").click()

    page.wait_for_url(re.compile(rf"/t/{slug}/clusters/shop/$"))
    page.evaluate("window.__sameDocument = true")
    expect_live(page)
    badge = page.get_by_test_id("phase-badge")
    expect(badge).to_have_text("Running", timeout=LIVE)
    expect(page.locator("[data-testid=operation] [data-step=workers]")).to_have_attribute(
        "data-state", "done")
    expect(page.get_by_test_id("operation-state")).to_have_text("Succeeded")
    expect(page.get_by_test_id("timeline")).to_contain_text("“Create” finished.")
    expect(page.locator("#kubeconfig-state")).to_contain_text("Available")
    expect(page.get_by_test_id("eol-warning")).to_contain_text(
        "Kubernetes v1.34 reached its end of life on 2020-01-01. Upgrade to v1.35.")
    screenshot(page, "cluster-detail-running")
    row = listing.locator("tbody.cluster-row", has_text="shop")
    expect(row.get_by_test_id("phase")).to_have_text("Running", timeout=LIVE)
    expect(row.get_by_test_id("eol-marker")).to_have_text("End of life")
    screenshot(listing, "clusters-list-end-of-life")

    # Scale: the consequence first, then the autoscaler's nodes follow, live.
    page.locator("#act-group-md0 > summary").click()
    page.fill("#id_scale-md0-max_replicas", "4")
    page.locator("[data-testid=scale-md0] button[type=submit]").click()
    expect(page.get_by_test_id("confirm-scale-md0")).to_contain_text(
        "min/max 1–3 → 1–4: autoscaler limits only, no replacement")
    screenshot(page, "cluster-scale-confirm")
    page.locator("[data-testid=scale-md0] [data-testid=confirm-button]").click()
    expect(page.get_by_test_id("action-done")).to_contain_text("Scaling of md0 to 1–4 nodes")
    expect(page.locator("tr[data-group=md0] [data-testid=limits]")).to_have_text("1–4",
                                                                                 timeout=LIVE)
    expect(page.get_by_test_id("operation-state")).to_have_text("Succeeded", timeout=LIVE)
    stack.platform.set_demand(stack.namespace, "shop", "md0", 4)
    expect(page.locator("tr[data-group=md0] [data-testid=observed]")).to_have_text(
        "4", timeout=LIVE)
    expect(page.locator("tr[data-group=md0] [data-testid=ready]")).to_have_text("4",
                                                                                timeout=LIVE)
    screenshot(page, "cluster-detail-scaled")

    # Upgrade: the warning's link opens the upgrade form; the confirmation says what rolls.
    page.get_by_test_id("eol-warning").get_by_role("link", name="Upgrade now").click()
    upgrade = page.get_by_test_id("upgrade")
    expect(upgrade).to_be_visible()
    upgrade.get_by_role("button", name="Review upgrade to v1.35").click()
    expect(page.get_by_test_id("confirm-upgrade")).to_contain_text(
        "version v1.34 → v1.35: control plane upgraded first, then every node group is rolled")
    screenshot(page, "cluster-upgrade-confirm")
    upgrade.get_by_test_id("confirm-button").click()
    expect(page.get_by_test_id("action-done")).to_contain_text("Upgrade to v1.35 requested.")
    expect(page.locator("#op-title")).to_contain_text("Latest operation: Upgrade")
    expect(page.get_by_test_id("version")).to_have_text("v1.35")
    expect(page.get_by_test_id("eol-warning")).to_have_count(0)
    expect(page.get_by_test_id("operation-state")).to_have_text("Succeeded", timeout=LIVE)
    expect(page.locator("[data-testid=operation] [data-step=workers]")).to_have_attribute(
        "data-state", "done")
    expect(page.get_by_test_id("timeline")).to_contain_text("“Upgrade” finished.")
    expect(badge).to_have_text("Running", timeout=LIVE)
    expect(page.locator("tr[data-group=md0] [data-testid=ready]")).to_have_text("4",
                                                                                timeout=LIVE)
    expect(page.locator("#act-upgrade")).to_contain_text(
        "v1.35 is the newest version the platform offers.")
    screenshot(page, "cluster-detail-upgraded")
    expect(row).to_contain_text("v1.35", timeout=LIVE)
    expect(row.get_by_test_id("eol-marker")).to_have_count(0)

    # Kubeconfig: a file named after the tenant and the cluster, recorded in the audit log.
    with page.expect_download() as info:
        page.get_by_test_id("kubeconfig-download").click()
    download = info.value
    assert download.suggested_filename == f"{slug}-shop-kubeconfig.yaml"
    assert "kind: Config" in Path(download.path()).read_text()
    assert AuditEntry.objects.filter(verb="cluster.kubeconfig.admin",
                                     tenant=stack.tenant).exists()

    # Delete: the volumes' fate is stated, the name must be typed, the phase follows live.
    page.locator("#act-delete > summary").click()
    delete = page.get_by_test_id("delete")
    expect(delete.get_by_role("alert")).to_contain_text(
        "Deleting shop removes its control plane, every node and the data of all its "
        "persistent volumes.")
    delete.locator("#id_delete-confirm_name").fill("shop")
    screenshot(page, "cluster-delete-confirm")
    delete.get_by_role("button", name="Delete the cluster and its volumes").click()
    expect(page.get_by_test_id("action-done")).to_contain_text("Deletion of shop requested.")
    expect(badge).to_have_text(re.compile(r"^(Deleting|Deleted)$"))
    expect(badge).to_have_text("Deleted", timeout=LIVE)
    expect(page.locator("#kubeconfig-state")).to_contain_text("The cluster is deleted.")
    expect(page.get_by_test_id("kubeconfig-download")).to_be_hidden()
    expect(page.get_by_test_id("actions")).to_have_count(0)
    screenshot(page, "cluster-detail-deleted")
    expect(row).to_have_count(0, timeout=LIVE)
    screenshot(listing, "clusters-list-after-delete")

    assert page.evaluate("window.__sameDocument") is True  # never reloaded
    page.locator(".page-pretitle a", has_text="Clusters").click()
    expect(page.get_by_test_id("clusters-empty")).to_contain_text("No clusters yet.")
    screenshot(page, "clusters-list")


@pytest.mark.browser
def test_the_list_follows_a_new_cluster_live(stack: Stack, page: Page):
    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/"))
    expect_live(page)
    expect(page.get_by_test_id("clusters-empty")).to_contain_text("No clusters yet.")

    create_cluster(stack, "fresh")

    row = page.locator("tbody.cluster-row", has_text="fresh")
    expect(row).to_be_visible(timeout=LIVE)
    expect(row.get_by_test_id("phase")).to_have_text("Running", timeout=LIVE)
    expect(page.get_by_test_id("clusters-empty")).to_have_count(0)
    screenshot(page, "clusters-list-live")


@pytest.mark.browser
def test_a_viewer_watches_a_cluster_but_gets_no_action_buttons(stack: Stack, page: Page):
    offerings.do_save_offering(Offering(kind=Offering.Kind.VERSION, name="v1.34",
                                        end_of_life_on=date(2020, 1, 1)))
    create_cluster(stack, "watched", version="v1.34")
    stack.sign_in(page, Role.VIEWER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/watched/"))
    expect_live(page)

    wait_running("watched")  # the platform side, then the page follows without a reload
    expect(page.get_by_test_id("phase-badge")).to_have_text("Running", timeout=15_000)
    expect(page.get_by_test_id("cluster-status")).to_be_visible()
    for testid in ("actions", "retry", "cancel", "kubeconfig-download", "delete"):
        expect(page.get_by_test_id(testid)).to_have_count(0)
    # The end-of-life warning, without the link to an upgrade form a viewer does not have.
    warning = page.get_by_test_id("eol-warning")
    expect(warning).to_contain_text("Kubernetes v1.34 reached its end of life")
    link = warning.locator("a", has_text="Upgrade now")
    expect(link).to_have_count(1)
    expect(link).to_be_hidden()
    screenshot(page, "cluster-detail-viewer")


@pytest.mark.browser
def test_a_failure_on_the_platform_is_explained_live_with_who_must_act(stack: Stack,
                                                                       page: Page):
    create_cluster(stack, "fragile")
    wait_running("fragile")
    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/fragile/"))
    expect_live(page)

    stack.platform.fail_cluster(
        stack.namespace, "fragile", reason="UpgradeFailed",
        message=f"Helm upgrade failed for release {stack.namespace}/kubernetes-fragile: "
                "Specified instancetype not exists in cluster: u1.medium")

    problem = page.get_by_test_id("problem")
    expect(problem).to_contain_text("Instance type not offered by the platform", timeout=LIVE)
    expect(problem.get_by_test_id("who-acts")).to_have_text("You need to act")
    expect(problem).to_contain_text("Choose another instance type")
    expect(page.get_by_test_id("phase-badge")).to_have_text("Failed")
    screenshot(page, "cluster-detail-failed")

    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/"))
    expect(page.get_by_test_id("row-error")).to_contain_text(
        "Instance type not offered by the platform · You need to act")
    screenshot(page, "clusters-list-failed")


@pytest.mark.browser
def test_without_websockets_the_page_says_so_and_keeps_up_by_polling(stack: Stack,
                                                                     page: Page):
    create_cluster(stack, "polled")
    wait_running("polled")
    page.route_web_socket(re.compile(r".*/ws/.*"), lambda ws: ws.close(code=1011))
    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/polled/"))

    status = page.get_by_test_id("live-status")
    expect(status).to_have_attribute("data-state", "polling", timeout=15_000)
    expect(status).to_contain_text("Live updates paused: refreshing every 5 s")

    as_owner(stack, actions.do_scale_node_group, "polled", "md0", min_replicas=1,
             max_replicas=5)
    expect(page.locator("tr[data-group=md0] [data-testid=limits]")).to_have_text(
        "1–5", timeout=30_000)
    screenshot(page, "cluster-detail-polling")


@pytest.mark.browser
def test_after_a_restart_the_page_reconnects_by_itself_and_never_backs_off_for_long(
        stack: Stack, page: Page):
    attempts: list[str] = []

    def restarting(ws) -> None:
        attempts.append(ws.url)
        if len(attempts) <= 5:
            ws.close(code=1012)  # web is restarting: what uvicorn sends at SIGTERM
        else:
            ws.connect_to_server()

    page.route_web_socket(re.compile(r".*/ws/.*"), restarting)
    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/"))

    status = page.get_by_test_id("live-status")
    expect(status).to_have_attribute("data-state", "live", timeout=LIVE)
    assert len(attempts) == 6
    # The delay before each new attempt: never more than 4 s however many attempts failed
    # (htmx's own grows to 64 s), and never all at once (at least half of it is random).
    delays = page.evaluate("""() => Array.from({length: 30}, (_, failed) =>
        Array.from({length: 40}, () => htmx.config.wsReconnectDelay(failed))).flat()""")
    assert 500 <= min(delays) and max(delays) <= 4000
    assert len({round(delay) for delay in delays}) > 100


def test_a_refused_action_shows_why_beside_its_field(stack: Stack, page: Page):
    """The action forms answer a refusal with 422 and the form with its errors: the page puts
    it in place (htmx swaps 422 answers too), so the reason shows beside the field."""
    create_cluster(stack, "refused")
    wait_running("refused")
    stack.sign_in(page, Role.OWNER)
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/clusters/refused/"))
    expect_live(page)

    page.locator("#act-group-md0 > summary").click()
    page.fill("#id_scale-md0-min_replicas", "3")
    page.fill("#id_scale-md0-max_replicas", "2")
    page.locator("[data-testid=scale-md0] button[type=submit]").click()

    expect(page.locator("#errors-scale-md0-min_replicas, #errors-scale-md0-max_replicas")
           .first).to_contain_text(re.compile(r"\S"))
    expect(page.get_by_test_id("confirm-scale-md0")).to_have_count(0)
    screenshot(page, "cluster-action-refused")
