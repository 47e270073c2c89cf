"""Usage, invoices and estimates over the API: the same figures as the pages and invoices."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest

from billing import actions, invoicing, queries
from billing.periods import Period
from portal.audit import Actor
from portal.models import ApiToken
from tests.billing.conftest import NODE_SKU, make_rig, price_book  # noqa: F401

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tenants/acme/"


@pytest.fixture
def running(tenant, price_book):  # noqa: F811
    start = Period.current().start_at
    rigs = []
    for name, nodes in (("web", 2), ("batch", 1)):
        rig = make_rig(tenant, name, cp_replicas=1)
        rig.observe(start, md0=nodes)
        rigs.append(rig)
    return rigs


@pytest.fixture
def last_month_invoice(tenant, price_book):  # noqa: F811
    period = Period.current().previous
    rig = make_rig(tenant, "old")
    rig.observe(period.start_at, md0=1)
    rig.observe(period.start_at + timedelta(hours=10), md0=0)
    return actions.do_finalize_period(Actor.system(), tenant.pk, period)


def test_usage_is_aggregated_by_cluster_and_sku_and_matches_the_draft_invoice(owner, api,
                                                                            tenant, running):
    body = api(owner).get(f"{BASE}usage/").json()
    draft = invoicing.compute_invoice(tenant.pk, Period.current())
    assert body["currency"] == "CHF" and body["period"]["month"] == Period.current().key
    assert Decimal(body["total"]) == draft.subtotal > 0
    clusters = {c["cluster"]: c for c in body["by_cluster"]}
    assert set(clusters) == {"web", "batch"}
    assert sum(Decimal(c["amount"]) for c in clusters.values()) == draft.subtotal
    web_nodes = next(line for line in clusters["web"]["lines"] if line["sku"] == NODE_SKU)
    batch_nodes = next(line for line in clusters["batch"]["lines"] if line["sku"] == NODE_SKU)
    assert Decimal(web_nodes["unit_hours"]) == pytest.approx(2 * Decimal(batch_nodes["unit_hours"]),
                                                             rel=Decimal("0.01"))
    node_total = next(row for row in body["by_sku"] if row["sku"] == NODE_SKU)
    assert Decimal(node_total["amount"]) == (Decimal(web_nodes["amount"])
                                             + Decimal(batch_nodes["amount"]))


def test_a_past_month_and_a_bad_or_future_month(owner, api, last_month_invoice):
    client = api(owner)
    past = client.get(f"{BASE}usage/", {"month": Period.current().previous.key}).json()
    assert Decimal(past["total"]) == last_month_invoice.subtotal
    assert [c["cluster"] for c in past["by_cluster"]] == ["old"]
    for month in ("2026-13", "soon", Period.current().next.key):
        response = client.get(f"{BASE}usage/", {"month": month})
        assert response.status_code == 400, month


def test_raw_segments_are_paginated_oldest_first(owner, api, tenant, running):
    client = api(owner)
    page = client.get(f"{BASE}usage/segments/", {"page_size": 2}).json()
    rows = page["results"]
    while page["next"]:
        page = client.get(page["next"]).json()
        rows += page["results"]
    assert len(rows) == len(queries.segments_for_export(tenant, Period.current()))
    assert [r["start"] for r in rows] == sorted(r["start"] for r in rows)
    assert {r["cluster"] for r in rows} == {"web", "batch"}
    web = client.get(f"{BASE}usage/segments/", {"cluster": "web"}).json()["results"]
    assert {r["cluster"] for r in web} == {"web"}
    assert all(r["end"] is None for r in web)


def test_invoices_list_detail_pdf_and_csv(owner, api, last_month_invoice):
    client = api(owner)
    listed = client.get(f"{BASE}invoices/").json()["results"]
    assert [i["number"] for i in listed] == [last_month_invoice.number]
    detail = client.get(listed[0]["url"]).json()
    assert detail["status"] == "finalized" and detail["void"] is False
    assert Decimal(detail["total"]) == last_month_invoice.total
    assert sum(Decimal(line["amount"]) for line in detail["lines"]) == Decimal(
        detail["subtotal"])
    pdf = client.get(detail["pdf_url"])
    assert pdf.status_code == 200 and pdf["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF")
    csv = client.get(detail["csv_url"])
    assert csv.status_code == 200 and csv["Content-Type"].startswith("text/csv")
    assert last_month_invoice.number in csv.content.decode()


def test_the_live_draft_of_this_month(owner, api, tenant, running):
    draft = api(owner).get(f"{BASE}invoices/draft/").json()
    assert Decimal(draft["subtotal"]) == invoicing.compute_invoice(tenant.pk,
                                                                   Period.current()).subtotal
    assert Decimal(draft["total"]) >= Decimal(draft["subtotal"])
    assert {line["cluster"] for line in draft["lines"]} == {"web", "batch"}


@pytest.mark.parametrize(("persona", "usage", "invoices"), [
    ("owner", 200, 200), ("tenant_admin", 200, 200), ("member", 200, 403),
    ("viewer", 200, 403), ("billing_user", 200, 200)])
def test_billing_endpoints_follow_the_permission_table(request, api, last_month_invoice,
                                                       persona, usage, invoices):
    client = api(request.getfixturevalue(persona))
    assert client.get(f"{BASE}usage/").status_code == usage
    assert client.get(f"{BASE}usage/segments/").status_code == usage
    assert client.get(f"{BASE}invoices/").status_code == invoices
    invoice = f"{BASE}invoices/{last_month_invoice.pk}/"
    for path in ("", "pdf/", "csv/"):
        assert client.get(invoice + path).status_code == invoices


def test_another_tenants_invoice_is_404(owner, outsider, api, last_month_invoice):
    assert api(outsider).get(f"{BASE}invoices/{last_month_invoice.pk}/").status_code == 404
    assert api(owner).get(f"{BASE}invoices/999999/").status_code == 404


def test_an_estimate_prices_a_spec_at_min_and_max(owner, api, tenant, price_book):  # noqa: F811
    body = {"node_groups": [{"name": "md0", "instance_type": "t1.test", "min_replicas": 1,
                             "max_replicas": 3, "ephemeral_storage_gib": 10}]}
    response = api(owner, scope=ApiToken.Scope.READ).post("/api/v1/estimate/", body,
                                                          format="json")
    assert response.status_code == 200, response.content
    estimate = response.json()
    assert estimate["currency"] == "CHF" and estimate["hours_per_month"] == 730
    node = next(line for line in estimate["lines"] if line["sku"] == NODE_SKU)
    assert Decimal(node["quantity_min"]) == 1 and Decimal(node["quantity_max"]) == 3
    assert Decimal(node["monthly_min"]) == Decimal("262.80")  # 0.36 × 730
    assert Decimal(node["monthly_max"]) == Decimal("788.40")
    assert Decimal(estimate["monthly_max"]) >= Decimal(estimate["monthly_min"]) > 0
    assert sum(Decimal(line["monthly_min"]) for line in estimate["lines"]) == Decimal(
        estimate["monthly_min"])


def test_an_estimate_of_a_malformed_spec_is_a_400(owner, api):
    response = api(owner).post("/api/v1/estimate/", {"node_groups": "many"}, format="json")
    assert response.status_code == 400
