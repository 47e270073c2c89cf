"""A person in a real browser, on a Cozystack 1.6.2 platform: create a cluster with node
auto-repair, a disk of its own for the node group and single sign-on access for a colleague;
the colleague then downloads the single sign-on kubeconfig and reads how to use it.

Everything runs for real: uvicorn, a Celery worker, the watcher and the simulated platform on
the real clock (upgraded to 1.6.2 first if the session's platform runs an older release).
Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from clusters.models import Cluster
from portal.permissions import Role
from tests.e2e.conftest import Stack, screenshot
from tests.fixtures.processes import eventually

pytestmark = pytest.mark.browser
LIVE = 60_000  # ms
RELEASE = "1.6.2"


def on_v16(stack: Stack) -> None:
    """The platform runs Cozystack 1.6.2, and the portal sees it (it follows upgrades)."""
    if stack.platform.release.name != RELEASE:
        stack.platform.upgrade(RELEASE)


@pytest.mark.browser
def test_create_with_auto_repair_a_disk_and_access_for_a_colleague(stack: Stack, page: Page,
                                                                    browser):
    on_v16(stack)
    slug = stack.tenant.slug
    colleague = stack.users[Role.MEMBER]
    membership = colleague.memberships.get(tenant=stack.tenant)
    stack.sign_in(page, Role.OWNER)
    page.goto(stack.page_url(f"/t/{slug}/clusters/-/new/"))
    expect(page.get_by_test_id("auto-repair")).to_be_visible(timeout=LIVE)

    page.fill("#id_name", "sso")
    # The node's disk, explained, 20 GiB by default on v1.6: this group gets 40.
    expect(page.locator("#id_ng-0-disk_gib")).to_have_value("20")
    expect(page.get_by_text("The node's persistent disk")).to_be_visible()
    page.fill("#id_ng-0-disk_gib", "40")
    # The picker narrows to dedicated-vCPU types in the browser, without a round trip.
    picker = page.locator("[data-instance-picker]").first
    picker.locator("[data-filter=dedicated]").check()
    assert picker.locator("option[value='u1.large']").evaluate("o => o.hidden") is True
    assert picker.locator("option[value='d1.large']").evaluate("o => o.hidden") is False
    picker.locator("[data-filter=dedicated]").uncheck()
    assert picker.locator("option[value='u1.large']").evaluate("o => o.hidden") is False
    # Auto-repair in words; a value it cannot take is refused beside the field as you type.
    page.select_option("#id_auto_repair", "on")
    page.fill("#id_repair_max_unhealthy", "lots")
    page.locator("#id_repair_max_unhealthy").blur()
    expect(page.locator("#errors-repair_max_unhealthy")).not_to_be_empty()
    expect(page.get_by_test_id("auto-repair")).to_contain_text(
        "50% never repairs a one-node group")
    page.fill("#id_repair_max_unhealthy", "34%")
    page.fill("#id_repair_node_startup_timeout", "15m")
    page.locator("#id_repair_node_startup_timeout").blur()
    expect(page.locator("#errors-repair_max_unhealthy")).to_be_empty()
    # Access for a colleague, chosen from the tenant's members.
    page.select_option(f"#id_access-m{membership.pk}", "admin")
    manifest = page.get_by_test_id("manifest")
    expect(manifest).to_contain_text("diskSize: 40Gi")
    expect(manifest).to_contain_text("maxUnhealthy: 34%")
    expect(manifest).to_contain_text(colleague.email)
    screenshot(page, "v16-create")
    page.get_by_test_id("create-submit").click()

    page.wait_for_url(re.compile(rf"/t/{slug}/clusters/sso/$"))
    expect(page.get_by_test_id("phase-badge")).to_have_text("Running", timeout=LIVE)
    expect(page.get_by_test_id("auto-repair-state")).to_contain_text("34%")
    expect(page.get_by_test_id("sso-users")).to_contain_text(f"{colleague.email} (admin)")
    screenshot(page, "v16-detail")
    spec = stack.platform.raw_object("Kubernetes", stack.namespace, "sso")["spec"]
    assert spec["nodeGroups"]["md0"]["diskSize"] == "40Gi"
    assert spec["nodeHealthCheck"] == {"maxUnhealthy": "34%", "nodeStartupTimeout": "15m"}
    assert spec["oidc"] == {"mode": "System",
                            "users": [{"email": colleague.email, "role": "admin"}]}
    assert Cluster.objects.get(name="sso").oidc_users == [
        {"email": colleague.email, "role": "admin"}]

    # The colleague signs in as themselves and takes the single sign-on kubeconfig.
    other = browser.new_context(base_url=stack.url)
    theirs = other.new_page()
    stack.sign_in(theirs, Role.MEMBER)
    theirs.goto(stack.page_url(f"/t/{slug}/clusters/sso/"))
    section = theirs.get_by_test_id("sso-kubeconfig")
    expect(section).to_contain_text("You have admin access")
    theirs.get_by_test_id("oidc-login-help").locator("summary").click()
    expect(section).to_contain_text("kubectl krew install oidc-login")
    screenshot(theirs, "v16-sso-kubeconfig")
    link = theirs.get_by_test_id("sso-kubeconfig-download").get_attribute("href")

    def prepared() -> bool:
        response = theirs.request.get(stack.page_url(link))
        return response.ok and "oidc-login" in response.text() and \
            "attachment" in response.headers.get("content-disposition", "")

    eventually(prepared, timeout=LIVE / 1000, interval=0.5,
               message="the single sign-on kubeconfig was never ready")
    with theirs.expect_download() as info:
        theirs.get_by_test_id("sso-kubeconfig-download").click()
    assert info.value.suggested_filename == f"{slug}-sso-sso-kubeconfig.yaml"
    other.close()
