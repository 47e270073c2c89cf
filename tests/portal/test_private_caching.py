"""Whatever a signed-in person receives (pages, htmx fragments, invoice PDFs, CSV exports, API
answers) is ``Cache-Control: private, no-store``; anonymous pages and static files keep their
caching (portal/headers.py). Every signed-in page is also checked by the owner's URL walk in
tests/portal/test_security_headers.py.
"""

from __future__ import annotations

from django.test import Client
from django.urls import reverse


def cache_directives(response) -> set[str]:
    return {d.strip().lower() for d in response.get("Cache-Control", "").split(",") if d.strip()}


def _billing(name: str, tenant, **kwargs) -> str:
    return reverse(f"billing:{name}", kwargs={"tenant_slug": tenant.slug, **kwargs})


def test_signed_in_pages_exports_and_api_answers_are_private_and_never_stored(
        tenant, owner, client_for):
    from billing.invoicing import ensure_draft
    from billing.periods import Period
    from tests.api.factories import make_token

    invoice = ensure_draft(tenant.pk, Period.current().previous)
    client = client_for(owner)
    answers = {
        "page": client.get(reverse("tenant_home", kwargs={"tenant_slug": tenant.slug})),
        "htmx fragment": client.get(_billing("usage", tenant), HTTP_HX_REQUEST="true"),
        "invoice PDF": client.get(_billing("invoice_pdf", tenant, invoice_id=invoice.pk)),
        "invoice CSV": client.get(_billing("invoice_csv", tenant, invoice_id=invoice.pk)),
        "usage CSV": client.get(_billing("usage_csv", tenant)),
        "API with a token": Client().get("/api/v1/me/",
                                         HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}"),
    }
    for what, response in answers.items():
        assert response.status_code == 200, what
        assert cache_directives(response) == {"private", "no-store"}, what


def test_a_view_that_chooses_its_own_caching_keeps_it(owner, client_for):
    response = client_for(owner).get(reverse("api_tokens"))
    assert response["Cache-Control"] == "no-store"


def test_anonymous_pages_and_static_files_stay_cacheable(owner, client_for):
    assert "no-store" not in cache_directives(Client().get("/api/docs/"))
    static = client_for(owner).get("/static/portal/css/portal.css")
    assert static.status_code == 200
    assert not cache_directives(static) & {"private", "no-store", "no-cache"}
