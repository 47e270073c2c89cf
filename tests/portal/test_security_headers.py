"""The Content-Security-Policy on every answer, pages that need nothing it refuses (no inline
script, event handler, style or evaluated htmx attribute), and the API docs under it, with the
portal's own opener policy.

The walks reuse the URL walk of tests/test_url_isolation.py, so a new page is covered without
editing this file; the owner's walk also checks that no signed-in answer may be stored
(tests/portal/test_private_caching.py). The browser tests check the same policy in Chromium
(tests/e2e/).
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import (
    format_hotp_value,
    hotp_value,
    yield_hotp_counters_from_time,
)
from django.conf import settings as django_settings
from django.contrib import admin
from django.test import Client
from django.urls import NoReverseMatch, reverse

from tests.clusters.ui import offline_platform
from tests.factories import PASSWORD, UserFactory
from tests.portal.conftest import give_totp
from tests.portal.test_private_caching import cache_directives
from tests.test_url_isolation import PATTERNS, _ids, _url, all_patterns, world

__all__ = ["offline_platform", "world"]

SITE_POLICY = {
    "default-src": {"'self'"},
    "script-src": {"'self'"},
    "style-src": {"'self'"},
    "img-src": {"'self'", "data:"},
    "connect-src": {"'self'"},
    "object-src": {"'none'"},
    "base-uri": {"'self'"},
    "form-action": {"'self'"},
    "frame-ancestors": {"'none'"},
}
# Pages whose bundled library needs more, and why: portal/api/docs.py.
PAGE_POLICIES = {
    "api:redoc": {**SITE_POLICY, "style-src-elem": {"'self'", "'unsafe-inline'"},
                  "worker-src": {"blob:"}},
}
# The branding's stylesheet and images are the same for everyone, signed in or not: public,
# cacheable, and versioned by their URL (portal.branding_views).
PUBLIC_ASSETS = {"brand_stylesheet", "brand_logo", "brand_favicon", "favicon_ico"}
JSON_SCRIPT_TYPES = {"application/json", "application/ld+json"}
ACCOUNT_PATTERNS = [p for p in all_patterns() if p[3].startswith("accounts/") and not p[1]]


def policy(response) -> dict[str, set[str]]:
    header = response.get("Content-Security-Policy")
    assert header, f"no Content-Security-Policy: {response.request['PATH_INFO']}"
    parts = (part.split() for part in header.split(";") if part.strip())
    return {name: set(values) for name, *values in parts}


class _Refused(HTMLParser):
    """Collects what a policy without 'unsafe-inline' and 'unsafe-eval' refuses in a page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            value = (value or "").strip()
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…> (inline event handler)")
            elif name == "style":
                self.found.append(f"<{tag} style=…> (inline style)")
            elif name.startswith(("hx-on", "data-hx-on")):
                self.found.append(f"<{tag} {name}=…> (htmx evaluates it as code)")
            elif name.startswith(("hx-", "data-hx-")) and value.startswith(("js:", "javascript:")):
                self.found.append(f"<{tag} {name}={value[:30]}…> (htmx evaluates it as code)")
            elif name in ("hx-trigger", "data-hx-trigger") and "[" in value:
                self.found.append(f"<{tag} {name}={value[:40]}…> (trigger filters are code)")
            elif name in ("href", "src", "action", "formaction") and \
                    value.lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:…>")
        if tag == "style":
            self.found.append("<style> element")
        attributes = dict(attrs)
        self._in_script = tag == "script" and not attributes.get("src") and \
            (attributes.get("type") or "").lower() not in JSON_SCRIPT_TYPES

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.found.append(f"inline <script>: {data.strip()[:60]}")


def refused_in(html: str) -> list[str]:
    parser = _Refused()
    parser.feed(html)
    parser.close()
    return parser.found


def check_page(response, expected: dict[str, set[str]]) -> None:
    """The policy is there; an HTML page holds nothing it refuses."""
    path = response.request["PATH_INFO"]
    assert policy(response) == expected, path
    if response.status_code == 200 and response.get("Content-Type", "").startswith("text/html"):
        assert refused_in(response.content.decode()) == [], path


# --------------------------------------------------------------------------- the checker


def test_the_checker_finds_what_the_policy_refuses():
    page = """<script>alert(1)</script><script src="/static/x.js"></script>
    <script type="application/json" id="data">{"a": 1}</script>
    <a href="javascript:void(0)">x</a><div style="color: red" onclick="go()"></div>
    <style>p {}</style><form hx-vals='js:{"a": event.target.name}'></form>
    <button hx-on:click="go()"></button><form hx-trigger="change[!target.x]"></form>"""
    assert len(refused_in(page)) == 8
    assert refused_in('<div class="x" data-confirm="Sure?" hx-trigger="every 5s"></div>') == []


def test_no_template_has_inline_script_handlers_or_styles():
    templates = sorted(Path(django_settings.BASE_DIR, "templates").rglob("*.html"))
    assert templates
    found = {str(t.relative_to(django_settings.BASE_DIR)): refused_in(t.read_text())
             for t in templates}
    assert {name: what for name, what in found.items() if what} == {}


# --------------------------------------------------------------------------- the walks


@pytest.fixture
def production(settings):
    """DEBUG off, as in production: django-csp leaves debug 404 and 500 pages without it."""
    settings.DEBUG = False


@pytest.mark.usefixtures("offline_platform", "production")
@pytest.mark.parametrize("pattern", PATTERNS, ids=_ids)
def test_every_page_has_the_policy_and_a_signed_in_answer_is_never_stored(pattern, world,
                                                                          client_for):
    name, params, _entry, _route = pattern
    response = client_for(world.owner).get(_url(name, params, world))
    check_page(response, PAGE_POLICIES.get(name, SITE_POLICY))
    directives = cache_directives(response)
    if name in PUBLIC_ASSETS and response.status_code == 200:
        assert "public" in directives and "private" not in directives, (name, directives)
        return
    assert "no-store" in directives and "public" not in directives, (name, directives)


@pytest.mark.usefixtures("production")
@pytest.mark.parametrize("pattern", ACCOUNT_PATTERNS, ids=_ids)
def test_every_account_page_has_the_policy(pattern, owner, client_for):
    url = reverse(pattern[0])
    check_page(Client().get(url), SITE_POLICY)
    # A pending change of address: allauth's page hides a form of its own (with an inline
    # style, which templates/account/email_change.html replaces).
    EmailAddress.objects.create(user=owner, email="next@example.org", verified=False)
    check_page(client_for(owner).get(url), SITE_POLICY)


def _admin_urls() -> list[str]:
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        for view in ("changelist", "add"):
            try:
                urls.append(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_"
                                    f"{view}"))
            except NoReverseMatch:
                pass
    return urls


@pytest.mark.usefixtures("production")
def test_the_admin_pages_have_the_policy(db):
    staff = UserFactory(is_staff=True, is_superuser=True)
    secret = give_totp(staff)
    client = Client()
    client.post(reverse("account_login"), {"login": staff.email, "password": PASSWORD})
    code = format_hotp_value(hotp_value(secret, next(yield_hotp_counters_from_time())))
    client.post(reverse("mfa_authenticate"), {"code": code})
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200, "signed in with password and TOTP, staff see the admin"
    for url in _admin_urls():
        check_page(client.get(url), SITE_POLICY)


@pytest.mark.usefixtures("production")
def test_error_pages_have_the_policy(client_for, owner):
    check_page(Client().get("/no-such-page/"), SITE_POLICY)
    check_page(client_for(owner).get("/no-such-page/"), SITE_POLICY)


def test_the_500_page_fits_the_policy(rf):
    from django.views.defaults import server_error

    assert refused_in(server_error(rf.get("/")).content.decode()) == []


# --------------------------------------------------------------------------- API docs


def test_swagger_ui_keeps_the_site_opener_policy_and_loads_its_script_from_the_portal():
    page = Client().get("/api/docs/")
    assert page["Cross-Origin-Opener-Policy"] == "same-origin"
    assert policy(page) == SITE_POLICY
    assert refused_in(page.content.decode()) == []
    script = Client().get("/api/docs/", {"script": ""})
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    assert "SwaggerUIBundle(" in script.content.decode()
    assert '<script src="/api/docs/?script="></script>' in page.content.decode()
