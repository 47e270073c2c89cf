"""The whole path as it runs in production: the session's Celery worker and watcher (on Redis)
bring a cluster up on the simulated platform (real clock); the cluster becoming ready is a
domain event, recorded by whichever process observes it first, which becomes a signed webhook
received by a real HTTPS receiver and an email to the owner who wants it. Slow; kept to one
test."""

from __future__ import annotations

import uuid
from email import message_from_string
from pathlib import Path

import pytest

from clusters import actions
from notifications import actions as webhook_actions
from notifications import signing
from notifications.models import Delivery
from portal.models import NotificationPreference
from portal.notifications import EventType
from portal.permissions import Role
from tests.clusters.conftest import cluster_spec
from tests.clusters.test_engine_processes import on_live_platform, tenant_context
from tests.factories import MembershipFactory
from tests.fixtures.processes import eventually

__all__ = ["on_live_platform"]
pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def emails_to(directory: Path, address: str) -> list:
    """Messages the processes' file backend wrote for ``address``."""
    found = []
    for path in sorted(directory.glob("*.log")):
        for chunk in path.read_text().split("-" * 79):
            if chunk.strip():
                message = message_from_string(chunk.strip())
                if message["To"] == address:
                    found.append(message)
    return found


def test_a_cluster_that_becomes_ready_is_a_signed_webhook_and_an_email_to_the_owner(
        on_live_platform, celery_worker_proc, watcher_proc, receiver_session, mailbox,
        settings):
    receiver = receiver_session
    settings.WEBHOOK_ALLOW_PRIVATE_TARGETS_FOR_TESTS = True  # this process saves the URL
    actor, ctx = tenant_context()
    owner = actor.user
    colleague = MembershipFactory(tenant=ctx.tenant, role=Role.MEMBER).user
    NotificationPreference.objects.create(user=colleague, event_type=EventType.CLUSTER_READY,
                                          email=False)
    path = f"/ready-{uuid.uuid4().hex[:8]}"
    created = webhook_actions.do_create_webhook(actor, ctx, url=receiver.url(path),
                                                event_types=["cluster.ready"])
    name = f"hook{uuid.uuid4().hex[:6]}"
    actions.do_create_cluster(actor, ctx, cluster_spec(name))

    def ready_request():
        return next((r for r in receiver.received(path)
                     if r.json()["type"] == "cluster.ready"), None)

    request = eventually(ready_request, timeout=120, message="no cluster.ready webhook arrived")
    [message] = eventually(lambda: emails_to(mailbox, owner.email), timeout=60,
                           message="the owner got no email")

    assert signing.verify(request.headers["Portal-Signature"], request.body, created.secret)
    envelope = request.json()
    assert envelope["tenant"] == ctx.tenant.slug and envelope["id"].startswith("evt_")
    assert envelope["data"]["cluster"]["name"] == name
    assert envelope["data"]["previous_phase"] == "creating"
    assert request.headers["Portal-Event-Id"] == envelope["id"]
    sent = Delivery.objects.get(endpoint=created.endpoint)
    assert sent.state == Delivery.State.SUCCEEDED and sent.attempts == 1

    assert f"cluster {name} is ready" in message["Subject"]
    body = message.get_payload()
    assert f"/t/{ctx.tenant.slug}/clusters/{name}/" in body
    assert "/account/notifications/" in body
    assert emails_to(mailbox, colleague.email) == []  # turned it off
