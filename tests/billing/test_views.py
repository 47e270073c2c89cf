"""Billing pages for each role: usage, CSV, budget, invoices (HTML, PDF, CSV)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from billing import actions, invoicing, queries
from billing.models import Budget, BudgetAlert, Invoice
from billing.periods import Period
from portal.audit import Actor
from tests.billing.conftest import make_rig


def url(name: str, tenant, **kwargs) -> str:
    return reverse(f"billing:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


@pytest.fixture
def running(tenant, price_book):
    """Two clusters running since the start of this month (two hours ago at least)."""
    start = Period.current().start_at
    rigs = []
    for name, nodes in (("web", 2), ("batch", 1)):
        rig = make_rig(tenant, name, cp_replicas=1)
        rig.observe(start, md0=nodes)
        rigs.append(rig)
    return rigs


@pytest.fixture
def last_month_invoice(tenant, price_book):
    period = Period.current().previous
    rig = make_rig(tenant, "old")
    rig.observe(period.start_at, md0=1)
    rig.observe(period.start_at + timedelta(hours=10), md0=0)
    return actions.do_finalize_period(Actor.system(), tenant.pk, period)


@pytest.mark.parametrize("persona", ["owner", "tenant_admin", "member", "viewer",
                                     "billing_user"])
def test_everyone_in_the_tenant_sees_usage_and_costs(request, tenant, running, client_for,
                                                     persona):
    response = client_for(request.getfixturevalue(persona)).get(url("usage", tenant))
    assert response.status_code == 200
    body = response.content.decode()
    assert 'data-testid="daily-chart"' in body and 'data-testid="usage-table"' in body
    assert "web" in body and "batch" in body


@pytest.mark.parametrize(("persona", "status"), [
    ("owner", 200), ("tenant_admin", 200), ("billing_user", 200), ("member", 403),
    ("viewer", 403)])
def test_invoices_follow_the_permission_table(request, tenant, last_month_invoice, client_for,
                                              persona, status):
    client = client_for(request.getfixturevalue(persona))
    for name, kwargs in (("invoices", {}), ("invoice_draft", {}),
                         ("invoice_detail", {"invoice_id": last_month_invoice.pk}),
                         ("invoice_pdf", {"invoice_id": last_month_invoice.pk}),
                         ("invoice_csv", {"invoice_id": last_month_invoice.pk})):
        assert client.get(url(name, tenant, **kwargs)).status_code == status, name


@pytest.mark.parametrize(("persona", "status"), [
    ("owner", 200), ("tenant_admin", 200), ("billing_user", 200), ("member", 403),
    ("viewer", 403)])
def test_budgets_follow_the_permission_table(request, tenant, client_for, persona, status):
    assert client_for(request.getfixturevalue(persona)).get(
        url("budget", tenant)).status_code == status


def test_billing_members_see_money_but_no_cluster_actions(tenant, running, billing_user, owner,
                                                          client_for):
    cluster_page = reverse("clusters:detail", kwargs={"tenant_slug": tenant.slug,
                                                      "cluster_name": "web"})
    assert cluster_page in client_for(owner).get(url("usage", tenant)).content.decode()
    client = client_for(billing_user)
    body = client.get(url("usage", tenant)).content.decode()
    assert "/clusters/" not in body
    nav = client.get(url("invoices", tenant)).content.decode()
    assert url("usage", tenant) in nav and url("invoices", tenant) in nav


def test_viewers_have_no_invoice_link(tenant, running, viewer, client_for):
    body = client_for(viewer).get(url("usage", tenant)).content.decode()
    assert url("usage", tenant) in body
    assert url("invoices", tenant) not in body


def test_outsiders_get_404(tenant, last_month_invoice, outsider, client_for):
    client = client_for(outsider)
    assert client.get(url("usage", tenant)).status_code == 404
    assert client.get(url("invoice_pdf", tenant,
                          invoice_id=last_month_invoice.pk)).status_code == 404


def test_another_tenants_invoice_is_404(tenant, other_tenant, owner, price_book, client_for):
    foreign = invoicing.ensure_draft(other_tenant.pk, Period.current().previous)
    assert client_for(owner).get(url("invoice_detail", tenant,
                                     invoice_id=foreign.pk)).status_code == 404


def test_usage_page_totals_match_the_invoice(tenant, last_month_invoice, owner, client_for):
    body = client_for(owner).get(url("usage", tenant),
                                 {"month": Period.current().previous.key}).content.decode()
    # 1 node × 10 h × 0.36 = 3.60, the invoice's subtotal
    assert 'data-testid="usage-total">3.60<' in body
    assert last_month_invoice.subtotal == Decimal("3.60")


def test_a_past_month_and_the_htmx_region(tenant, last_month_invoice, owner, client_for):
    client = client_for(owner)
    month = Period.current().previous.key
    page = client.get(url("usage", tenant), {"month": month})
    assert page.status_code == 200 and "old" in page.content.decode()
    region = client.get(url("usage", tenant), {"month": month}, HTTP_HX_REQUEST="true")
    assert region.status_code == 200
    assert "<html" not in region.content.decode() and 'id="billing-usage"' in \
        region.content.decode()
    assert client.get(url("usage", tenant), {"month": "garbage"}).status_code == 200


def test_segments_csv(tenant, running, owner, client_for):
    response = client_for(owner).get(url("usage_csv", tenant),
                                     {"month": Period.current().key})
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:4] == ["segment_id", "cluster", "node_group", "sku"]
    assert {r[1] for r in rows[1:]} == {"web", "batch"}
    assert {r[3] for r in rows[1:]} == {"node.t1.test", "cp.test"}


def test_invoice_pdf_and_csv(tenant, last_month_invoice, billing_user, client_for):
    client = client_for(billing_user)
    pdf = client.get(url("invoice_pdf", tenant, invoice_id=last_month_invoice.pk))
    assert pdf["Content-Type"] == "application/pdf" and pdf.content.startswith(b"%PDF")
    assert last_month_invoice.number in pdf["Content-Disposition"]
    text = client.get(url("invoice_csv", tenant, invoice_id=last_month_invoice.pk)).content
    rows = list(csv.reader(io.StringIO(text.decode())))
    # 1 node × 10 h × 0.36 = 3.60; VAT 8.1 % 0.2916 → 0.29; total 3.89
    assert rows[1][2:4] == ["old", "node.t1.test"] and rows[1][-1] == "3.60"
    assert [r[-1] for r in rows[-3:]] == ["3.60", "0.29", "3.89"]
    detail = client.get(url("invoice_detail", tenant, invoice_id=last_month_invoice.pk))
    assert last_month_invoice.number in detail.content.decode()


def test_invoices_list_shows_the_running_month_as_a_draft(tenant, running,
                                                          last_month_invoice, owner,
                                                          client_for):
    body = client_for(owner).get(url("invoices", tenant)).content.decode()
    assert last_month_invoice.number in body
    assert url("invoice_draft", tenant) in body


def test_a_draft_pdf_is_marked_draft(tenant, owner, price_book, client_for):
    draft = invoicing.ensure_draft(tenant.pk, Period.current().previous)
    response = client_for(owner).get(url("invoice_pdf", tenant, invoice_id=draft.pk))
    assert response.status_code == 200 and response.content.startswith(b"%PDF")


def test_setting_a_budget_from_the_page(tenant, billing_user, client_for,
                                        django_capture_on_commit_callbacks):
    client = client_for(billing_user)
    bad = client.post(url("budget", tenant), {"amount": "-3", "thresholds": "50, x"},
                      HTTP_HX_REQUEST="true")
    assert bad.status_code == 422
    assert not Budget.objects.exists()
    response = client.post(url("budget", tenant), {"amount": "120.50",
                                                   "thresholds": "90, 50%"})
    assert response.status_code == 302
    budget = Budget.objects.get(tenant=tenant)
    assert (budget.amount, budget.thresholds) == (Decimal("120.50"), [50, 90])
    assert client.post(url("budget_remove", tenant)).status_code == 302
    assert not Budget.objects.exists()


def test_budget_notices_show_on_the_usage_page_and_anywhere(tenant, owner, client_for):
    period = Period.current()
    BudgetAlert.objects.create(tenant=tenant, period_start=period.start, threshold=80,
                               budget_amount=Decimal("100"), spent=Decimal("81.20"))
    body = client_for(owner).get(url("usage", tenant)).content.decode()
    assert 'data-testid="budget-alert"' in body and "80 %" in body
    rendered = Template("{% load billing_tags %}{% billing_notices t %}").render(
        Context({"t": tenant}))
    assert "81.20" in rendered and url("usage", tenant) in rendered


def test_month_to_date_costs_take_two_queries_whatever_the_number_of_clusters(
        tenant, price_book, django_assert_num_queries):
    start = Period.current().start_at
    for i in range(6):
        make_rig(tenant, f"c{i}").observe(start, md0=i + 1)
    with django_assert_num_queries(2):  # the price book, one aggregate over the ledger
        costs = queries.cluster_costs_mtd(tenant)
    assert len(costs) == 6
    with django_assert_num_queries(2):
        total = queries.tenant_cost_mtd(tenant)
    assert total == sum(costs.values())


def test_usage_page_queries_do_not_grow_with_clusters(tenant, owner, price_book, client_for):
    client = client_for(owner)
    start = Period.current().start_at

    def count() -> int:
        with CaptureQueriesContext(connection) as ctx:
            assert client.get(url("usage", tenant)).status_code == 200
        return len(ctx.captured_queries)

    make_rig(tenant, "one").observe(start, md0=1)
    count()  # the first page fills per-process caches (announcements, offerings)
    few = count()
    for i in range(5):
        make_rig(tenant, f"more{i}").observe(start, md0=1)
    assert count() == few


def test_staff_revenue_and_top_tenants(tenant, other_tenant, price_book):
    start = Period.current().start_at
    make_rig(tenant, "big").observe(start, md0=5)
    make_rig(other_tenant, "small").observe(start, md0=1)
    now = timezone.now()
    top = queries.top_tenants_mtd(5, now=now)
    assert [t for t, _cost in top] == [tenant, other_tenant]
    assert top[0][1] == queries.tenant_cost_mtd(tenant, now=now)
    assert queries.revenue_mtd(now=now) == sum(cost for _t, cost in top)
    assert Invoice.objects.count() == 0
