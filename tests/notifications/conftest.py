"""Fixtures of the notification tests: a real HTTPS receiver on loopback, the explicit test
allowance that lets webhooks reach it, endpoints and events."""

from __future__ import annotations

import pytest

from notifications import actions
from portal.audit import Actor
from portal.models import Membership
from portal.tenancy import TenantContext
from tests.notifications.receiver import Receiver


@pytest.fixture
def receiver(receiver_session: Receiver, settings) -> Receiver:
    """The receiver, trusted and reachable: its CA is trusted and the *test* allowance for
    private targets is on (production code never sets it)."""
    receiver_session.requests.clear()
    settings.WEBHOOK_CA_FILE = str(receiver_session.ca_file)
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = True
    settings.WEBHOOK_READ_TIMEOUT = 1
    settings.WEBHOOK_CONNECT_TIMEOUT = 1
    return receiver_session


def owner_context(tenant, user) -> tuple[Actor, TenantContext]:
    membership = Membership.objects.get(tenant=tenant, user=user)
    return Actor(user=user), TenantContext(tenant, membership.role, membership)


@pytest.fixture
def owner_ctx(tenant, owner) -> tuple[Actor, TenantContext]:
    return owner_context(tenant, owner)


@pytest.fixture
def make_endpoint(owner_ctx):
    """``make_endpoint(url, event_types=…)``: an endpoint of the tenant and its secret."""

    def make(url: str, event_types: tuple[str, ...] = ("cluster.ready",), **options):
        actor, ctx = owner_ctx
        return actions.do_create_webhook(actor, ctx, url=url, event_types=list(event_types),
                                         **options)

    return make


# The engine driven step by step against the simulated platform (tests/clusters/conftest.py),
# and billing's test price book.
from tests.billing.conftest import price_book  # noqa: E402,F401
from tests.clusters.conftest import engine, platform, pushed, task_outbox  # noqa: E402,F401
