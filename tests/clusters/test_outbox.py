"""The transactional outbox: an operation's start commits with it and reaches the broker once,
whether the broker takes it at commit or only after it came back.

Real PostgreSQL and Redis: the broker is a database of the suite's Redis of its own (the
messages it holds are read back), or a closed port when the broker must refuse.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from datetime import timedelta

import pytest
import redis
from django.db import connection, transaction
from django.utils import timezone

from clusters import actions, operations, outbox
from clusters.models import Cluster, ClusterEvent, Operation, OutboxEntry
from portal.audit import Actor
from portal.models import IdempotencyRecord, Membership
from portal.tenancy import TenantContext
from tests.api.factories import make_token
from tests.clusters.conftest import cluster_spec
from tests.fixtures.processes import eventually, free_port, isolated_broker_url, publishing_to

pytestmark = pytest.mark.django_db(transaction=True)
BROKER = isolated_broker_url(12)
SECRET = "s3cret-broker-pass"
API = "/api/v1/tenants/acme/clusters/"


def refusing_broker() -> str:
    """A broker URL whose port nobody listens on (with credentials, which must not leak)."""
    return f"redis://:{SECRET}@127.0.0.1:{free_port()}/0"


def queued_messages() -> list[tuple[str, list[int]]]:
    """(task, args) of each message waiting in the isolated broker's default queue."""
    client = redis.Redis.from_url(BROKER)
    try:
        raw = client.lrange("celery", 0, -1)
    finally:
        client.close()
    messages = [json.loads(item) for item in raw]
    return [(m["headers"]["task"], json.loads(base64.b64decode(m["body"]))[0])
            for m in reversed(messages)]  # LPUSHed: the oldest is last


@pytest.fixture
def actor_ctx(tenant, owner):
    membership = Membership.objects.get(tenant=tenant, user=owner)
    return Actor(user=owner), TenantContext(tenant, membership.role, membership)


def test_an_operation_leaves_with_its_commit_and_is_published_once(actor_ctx):
    actor, ctx = actor_ctx
    with publishing_to(BROKER):
        with transaction.atomic():
            cluster = actions.do_create_cluster(actor, ctx, cluster_spec())
            operation = cluster.operations.get()
            entry = OutboxEntry.objects.get(operation=operation)
            assert entry.task == OutboxEntry.Task.APPLY and entry.sent_at is None
            assert queued_messages() == []  # nothing leaves before the commit
        entry.refresh_from_db()
        assert entry.sent_at is not None and entry.tries == 1
        assert queued_messages() == [("clusters.apply_operation", [operation.pk])]
        # Another relay round, or the resync's, finds nothing more to send.
        assert outbox.relay(now=timezone.now() + timedelta(hours=1)).sent == 0
        assert queued_messages() == [("clusters.apply_operation", [operation.pk])]


def test_a_committed_write_is_answered_201_when_the_broker_refuses_and_relayed_when_it_returns(
        owner, tenant, caplog):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    body = {"name": "web", "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                             "max_replicas": 3}]}
    caplog.set_level(logging.INFO)
    with publishing_to(refusing_broker(), purge=False):
        response = client.post(API, body, format="json", HTTP_IDEMPOTENCY_KEY="outbox-1")
        again = client.post(API, body, format="json", HTTP_IDEMPOTENCY_KEY="outbox-1")
    assert response.status_code == 201, response.content
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["current_operation"]["state"] == "queued"
    assert again.status_code == 201 and again["Idempotent-Replayed"] == "true"
    operation = Cluster.objects.get(name="web").operations.get()
    assert IdempotencyRecord.objects.filter(key="outbox-1", status_code=201).exists()
    entry = OutboxEntry.objects.get(operation=operation)
    assert entry.sent_at is None and entry.tries == 1
    assert "OperationalError" in entry.last_error and SECRET not in entry.last_error
    assert "cluster.outbox.broker_refused" in caplog.messages
    assert SECRET not in caplog.text

    with publishing_to(BROKER):  # the broker is back: the relay loop hands it over
        relay = outbox.Relay(interval=0.05, max_backoff=0.2).start()
        try:
            eventually(lambda: OutboxEntry.objects.get(pk=entry.pk).sent_at, timeout=30)
        finally:
            relay.stop()
        assert queued_messages() == [("clusters.apply_operation", [operation.pk])]
    entry.refresh_from_db()
    assert entry.tries == 2


def test_a_relay_skips_what_another_relay_is_handing_over(actor_ctx):
    """Two relays never publish the same entry: one holds it, the other passes it by."""
    actor, ctx = actor_ctx
    with publishing_to(refusing_broker(), purge=False):
        cluster = actions.do_create_cluster(actor, ctx, cluster_spec())
    operation = cluster.operations.get()
    holding, release = threading.Event(), threading.Event()

    def other_relay() -> None:
        try:
            with transaction.atomic():
                list(OutboxEntry.objects.select_for_update().filter(operation=operation))
                holding.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_relay)
    thread.start()
    try:
        assert holding.wait(10)
        with publishing_to(BROKER):
            later = timezone.now() + timedelta(hours=1)
            assert outbox.relay(now=later).sent == 0
            release.set()
            thread.join(10)
            assert outbox.relay(now=later).sent == 1
            assert outbox.relay(now=later).sent == 0
            assert queued_messages() == [("clusters.apply_operation", [operation.pk])]
    finally:
        release.set()
        thread.join(10)


def test_the_relay_loop_takes_over_an_operation_whose_lease_ran_out(actor_ctx, settings):
    actor, ctx = actor_ctx
    settings.OPERATION_LEASE_SECONDS = 1
    with publishing_to(BROKER):
        cluster = actions.do_create_cluster(actor, ctx, cluster_spec())
        operation = cluster.operations.get()
        assert operations.claim(operation.pk)  # a worker claims it, then dies: no heartbeat
        relay = outbox.Relay(interval=0.05).start()
        try:
            eventually(lambda: ClusterEvent.objects.filter(
                operation=operation, reason="operation.taken_over").exists(), timeout=30)
            eventually(lambda: not OutboxEntry.objects.filter(operation=operation,
                                                              sent_at__isnull=True).exists(),
                       timeout=30)
        finally:
            relay.stop()
        assert queued_messages() == [("clusters.apply_operation", [operation.pk])] * 2
    operation.refresh_from_db()
    assert operation.lease_until is None and operation.state == Operation.State.RUNNING
    assert operations.claim(operation.pk)  # free for the next worker


def test_the_relay_command_hands_over_one_round(actor_ctx):
    from io import StringIO

    from django.core.management import call_command

    actor, ctx = actor_ctx
    with publishing_to(refusing_broker(), purge=False):
        cluster = actions.do_create_cluster(actor, ctx, cluster_spec())
        out = StringIO()
        OutboxEntry.objects.update(due_at=timezone.now())
        call_command("relay_outbox", "--once", stdout=out)
        assert out.getvalue().startswith("sent 0, refused 1 (OperationalError")
        assert SECRET not in out.getvalue()
    with publishing_to(BROKER):
        OutboxEntry.objects.update(due_at=timezone.now())
        out = StringIO()
        call_command("relay_outbox", "--once", stdout=out)
        assert out.getvalue().strip() == "sent 1, refused 0"
        assert queued_messages() == [("clusters.apply_operation",
                                      [cluster.operations.get().pk])]


def test_credentials_in_a_url_never_reach_a_log_line():
    from portal.logging import redact

    assert redact("Error connecting to redis://:s3cret@10.0.0.5:6379/0.") == \
        "Error connecting to redis://[redacted]@10.0.0.5:6379/0."
    assert redact("postgres://portal:pw@db/portal") == "postgres://[redacted]@db/portal"
    assert redact("see https://example.org/a@b") == "see https://example.org/a@b"
