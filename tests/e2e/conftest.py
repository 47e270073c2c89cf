"""Browser tests: Debian's chromium driven by Playwright against the real stack (uvicorn with
HTTP + WebSockets, a Celery worker, the watcher, the simulated platform on the real clock).

Run them in their own pytest process (``-m browser``): Playwright's sync API leaves an event
loop in the main thread that breaks pytest-asyncio tests run after it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
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


def screenshot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)
