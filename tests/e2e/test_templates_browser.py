"""A person in a real browser creates a cluster from a template: the template list offers it, the
create page opens prefilled (every field still editable), the cluster comes up with the
template's node group, its timeline says where it came from, and the expiry chosen on the form
shows on its page."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from clusters.cluster_templates import reusable
from clusters.models import Cluster, ClusterExpiry, ClusterTemplate
from cozystack.specjson import spec_to_json
from cozystack.specs import ClusterSpec, NodeGroupSpec
from portal.permissions import Role
from tests.e2e.conftest import Stack, screenshot
from tests.e2e.test_clusters_browser import LIVE, expect_live, wait_running

pytestmark = pytest.mark.browser


def test_create_a_cluster_from_a_template(stack: Stack, page: Page):
    slug = stack.tenant.slug
    spec = ClusterSpec(name="source", namespace=stack.namespace, version="v1.35", node_groups=(
        NodeGroupSpec(name="workers", instance_type="u1.medium", min_replicas=1,
                      max_replicas=4, disk_gib=50, roles=("ingress-nginx",)),))
    template = ClusterTemplate.objects.create(
        tenant=stack.tenant, name="feature branch", description="one small group",
        spec=spec_to_json(reusable(spec)), source_cluster="source", created_by="e2e")

    stack.sign_in(page, Role.MEMBER)
    page.goto(stack.page_url(f"/t/{slug}/clusters/"))
    page.get_by_test_id("templates-link").click()
    expect(page.get_by_test_id("template-row")).to_contain_text("feature branch")
    page.get_by_test_id("use-template").click()

    page.wait_for_url(re.compile(rf"/t/{slug}/clusters/-/new/\?template={template.pk}$"))
    expect(page.get_by_test_id("prefill-origin")).to_contain_text("feature branch")
    expect(page.locator("#id_ng-0-name")).to_have_value("workers")
    expect(page.locator("#id_ng-0-max_replicas")).to_have_value("4")
    # Every field stays editable and is checked as usual.
    page.fill("#id_ng-0-max_replicas", "5")
    page.fill("#id_name", "feature-42")
    expect(page.get_by_test_id("manifest")).to_contain_text("name: feature-42")
    page.select_option("#id_expiry-after_hours", "24")
    screenshot(page, "cluster-create-from-template")
    page.get_by_test_id("create-submit").click()

    page.wait_for_url(re.compile(rf"/t/{slug}/clusters/feature-42/$"))
    expect_live(page)
    expect(page.get_by_test_id("expiry-state")).to_contain_text("is deleted with its volumes")
    expect(page.get_by_test_id("timeline")).to_contain_text(
        "Created from the template “feature branch”.")
    wait_running("feature-42")
    expect(page.get_by_test_id("phase-badge")).to_have_text("Running", timeout=LIVE)
    cluster = Cluster.objects.get(tenant=stack.tenant, name="feature-42")
    group = cluster.node_groups.get()
    assert (group.name, group.max_replicas) == ("workers", 5)
    assert ClusterExpiry.objects.filter(cluster=cluster).exists()
    screenshot(page, "cluster-from-template")
