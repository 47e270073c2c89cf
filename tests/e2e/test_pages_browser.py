"""Pages beyond the cluster screens, in a real browser under the Content-Security-Policy: the
API documentation, and the small behaviours that were inline handlers before the policy
(confirmations, a select that submits, a token field that selects itself, the language).

The autouse ``csp_violations`` fixture (tests/e2e/conftest.py) fails any test whose pages
broke the policy.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from billing.models import Budget
from portal.models import ApiToken, Tenant
from portal.permissions import Role
from tests.e2e.conftest import CspViolations, Stack, screenshot

pytestmark = pytest.mark.browser
SCHEMA = 30_000  # ms: both pages fetch the OpenAPI document, generated on each request


def test_the_api_documentation_works_under_the_policy(stack: Stack, page: Page,
                                                      csp_violations: CspViolations):
    page.goto(stack.page_url("/api/docs/"))
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Kubernetes portal API",
                                                                     timeout=SCHEMA)
    expect(page.locator(".opblock").first).to_be_visible()
    screenshot(page, "api-docs-swagger")

    # ReDoc's sidebar shows a logo from redoc.ly; the policy blocks it (nothing off-site) and
    # ReDoc leaves it out (portal/api/docs.py).
    csp_violations.expect(r"https://cdn\.redoc\.ly/")
    page.goto(stack.page_url("/api/redoc/"))
    expect(page.locator("h1").first).to_contain_text("Kubernetes portal API", timeout=SCHEMA)
    # The search runs in ReDoc's Web Worker (blob:, allowed on this page only).
    page.get_by_placeholder("Search...").fill("clusters")
    # The worker indexes the whole document first: as long as the page took to load it.
    expect(page.locator("[data-role='search:results'] li").first).to_be_visible(timeout=SCHEMA)
    screenshot(page, "api-docs-redoc")


def test_confirmations_selects_and_the_token_field_work_without_inline_handlers(
        stack: Stack, page: Page):
    owner = stack.users[Role.OWNER]
    stack.sign_in(page, Role.OWNER)

    # The new token's field selects its whole value on a click, ready to copy.
    page.goto(stack.page_url("/account/api-tokens/"))
    page.fill("input[name=name]", "ci")
    page.get_by_role("button", name="Create token").click()
    secret = page.get_by_test_id("token-secret")
    secret.click()
    assert page.evaluate("""() => { const f = document.activeElement;
        return f.dataset.testid === "token-secret" && f.selectionStart === 0 &&
               f.selectionEnd === f.value.length; }""")

    # Revoking asks first: "no" keeps the token, "yes" revokes it.
    revoke = page.locator("[data-testid=tokens] form button", has_text="Revoke")
    page.once("dialog", lambda dialog: dialog.dismiss())
    revoke.click()
    page.wait_for_load_state()
    expect(page.get_by_test_id("tokens")).not_to_contain_text("revoked")
    assert ApiToken.objects.get(user=owner, name="ci").revoked_at is None
    page.once("dialog", lambda dialog: dialog.accept())
    revoke.click()
    expect(page.get_by_test_id("tokens")).to_contain_text("revoked")

    # Leaving a tenant asks first too.
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/members/"))
    page.once("dialog", lambda dialog: dialog.dismiss())
    page.get_by_role("button", name="Leave this tenant").click()
    page.wait_for_load_state()
    expect(page).to_have_url(re.compile(rf"/t/{stack.tenant.slug}/members/$"))
    assert stack.tenant.memberships.filter(user=owner).exists()

    # Picking a month shows it at once (htmx), with the budget bar.
    Tenant.objects.filter(pk=stack.tenant.pk).update(
        created_at=timezone.now() - timedelta(days=70))
    Budget.objects.create(tenant=stack.tenant, amount=Decimal("100"), thresholds=[80])
    page.goto(stack.page_url(f"/t/{stack.tenant.slug}/billing/"))
    expect(page.locator("progress.progress")).to_be_visible()
    month = page.locator("select#month")
    previous = month.locator("option").nth(1).get_attribute("value")
    month.select_option(previous)
    expect(page).to_have_url(re.compile(rf"month={previous}"))
    expect(month).to_have_value(previous)
    screenshot(page, "billing-usage-previous-month")

    # The language changes as soon as it is chosen.
    page.get_by_test_id("language-switcher").locator("select").select_option("fr")
    expect(page.locator("html")).to_have_attribute("lang", "fr")
