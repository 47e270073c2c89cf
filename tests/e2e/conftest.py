"""Browser tests: Debian's chromium driven by Playwright against the real stack (uvicorn with
HTTP + WebSockets, a Celery worker, the watcher, the simulated platform on the real clock).

Run them in their own pytest process (``-m browser``): Playwright's sync API leaves an event
loop in the main thread that breaks pytest-asyncio tests run after it.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from portal.permissions import Role
from tests.factories import PASSWORD, MembershipFactory, TenantFactory
from tests.fixtures.processes import ARTIFACTS

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": "/usr/bin/chromium",
            "args": CHROMIUM_ARGS}


@dataclass
class Stack:
    url: str
    platform: Any
    tenant: Any
    users: dict[str, Any]

    @property
    def namespace(self) -> str:
        return self.tenant.namespace

    def page_url(self, path: str) -> str:
        return self.url + path

    def sign_in(self, page, role: str = Role.OWNER) -> None:
        page.goto(self.page_url("/accounts/login/"))
        page.fill("input[name=login]", self.users[role].email)
        page.fill("input[name=password]", PASSWORD)
        page.locator("form button[type=submit]").first.click()
        page.wait_for_url(lambda url: "/accounts/login" not in url)


@pytest.fixture
def stack(transactional_db, live_platform, asgi_server, celery_worker_proc,
          watcher_proc) -> Stack:
    """A fresh tenant with an owner, a member and a viewer, on the running stack.

    The tenant's slug is new in every test: the simulated platform lives for the whole
    session and keeps what earlier tests created.
    """
    tenant = TenantFactory(slug=f"e2e{uuid.uuid4().hex[:8]}", name="E2E")
    users = {role: MembershipFactory(tenant=tenant, role=role).user
             for role in (Role.OWNER, Role.MEMBER, Role.VIEWER)}
    ARTIFACTS.mkdir(exist_ok=True)
    return Stack(url=asgi_server, platform=live_platform, tenant=tenant, users=users)


# Every page of a browser test reports what its Content-Security-Policy blocked: the event a
# browser fires for each violation, and the console line it writes ("… violates the following
# Content Security Policy directive …"), in case a violation ever escapes the event.
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", (e) => {
  const element = e.target && e.target.tagName ?
    ` on <${e.target.tagName.toLowerCase()}${e.target.id ? "#" + e.target.id : ""}>` : "";
  window.__cspViolation(`${e.effectiveDirective} blocked ${e.blockedURI || "(inline)"}` +
    `${element} at ${e.sourceFile || location.href}:${e.lineNumber} ${e.sample || ""}`);
});
"""


@dataclass
class CspViolations:
    """What the Content-Security-Policy blocked in any page of the test's browser context."""

    seen: list[str] = field(default_factory=list)
    expected: list[re.Pattern[str]] = field(default_factory=list)

    def expect(self, pattern: str) -> None:
        """A violation this test knows of and accepts (say why where it is called)."""
        self.expected.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [v for v in self.seen if not any(p.search(v) for p in self.expected)]


@pytest.fixture(autouse=True)
def csp_violations(context) -> Iterator[CspViolations]:
    """Fails the test if a page it visited broke the portal's Content-Security-Policy, or if
    htmx refused to evaluate code (``allowEval`` is off for the same policy)."""
    violations = CspViolations()
    context.expose_binding("__cspViolation", lambda source, text: violations.seen.append(
        f"{text} (page {source['page'].url})"))
    context.add_init_script(CSP_WATCH)

    def on_console(message) -> None:
        text = message.text
        if "Content Security Policy" in text or "evalDisallowedError" in text:
            violations.seen.append(f"console: {text}")

    context.on("console", on_console)
    yield violations
    for page in context.pages:  # deliver what the pages have reported so far
        if not page.is_closed():
            page.evaluate("0")
    unexpected = violations.unexpected()
    assert not unexpected, "blocked by the Content-Security-Policy:\n" + "\n".join(
        sorted(set(unexpected)))


def screenshot(page, name: str) -> None:
    # caret="initial": hiding the caret leaves an empty style attribute on every input, which
    # htmx copies when it swaps the input's region, and the policy refuses inline styles.
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True, caret="initial")
