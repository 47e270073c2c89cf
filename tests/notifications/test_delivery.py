"""Delivering: signed, at least once, with backoff and jitter for 24 hours, a per-endpoint
circuit breaker, an endpoint disabled after a day of failures (its owners emailed), redelivery,
test events, the delivery log and its cleanup. Times are explicit: nothing waits."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.core import mail
from django.db import connection, transaction

from notifications import actions, delivery, emails, signing, tasks
from notifications.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint
from notifications.publishing import record_event
from portal.encryption import unseal
from portal.models import AuditEntry
from portal.notifications import EventType
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def publish(tenant, event_type=EventType.CLUSTER_READY, data=None) -> Event:
    with transaction.atomic():
        return record_event(tenant, event_type, data or {"cluster": {"name": "prod"}})


def only_delivery(endpoint) -> Delivery:
    return Delivery.objects.get(endpoint=endpoint)


def at(delivery_row: Delivery, when: datetime) -> Delivery:
    """Make the delivery's times what they would be had it been created at ``when``."""
    Delivery.objects.filter(pk=delivery_row.pk).update(created_at=when, next_attempt_at=when)
    return Delivery.objects.get(pk=delivery_row.pk)


def test_an_event_reaches_the_endpoint_signed_and_verifiable_with_its_secret(
        tenant, receiver, make_endpoint):
    created = make_endpoint(receiver.url("/ok"))
    event = publish(tenant)
    row = at(only_delivery(created.endpoint), T0)

    outcome = delivery.attempt(row.pk, now=T0)

    assert outcome.result == "success" and outcome.state == Delivery.State.SUCCEEDED
    request = receiver.received("/ok")[-1]
    assert signing.verify(request.headers["Portal-Signature"], request.body, created.secret,
                          now=T0)
    envelope = request.json()
    assert envelope == {"id": event.public_id, "type": "cluster.ready",
                        "time": envelope["time"], "tenant": tenant.slug,
                        "data": {"cluster": {"name": "prod"}}}
    assert request.headers["Portal-Event-Id"] == event.public_id
    log = DeliveryAttempt.objects.get(delivery=row)
    assert (log.status_code, log.outcome) == (200, "success")
    assert log.latency_ms is not None and log.response_excerpt == '{"received": true}'


def test_only_enabled_endpoints_of_the_tenant_that_want_the_event_get_a_delivery(
        tenant, other_tenant, receiver, make_endpoint, outsider):
    wants = make_endpoint(receiver.url("/ok"), ("cluster.ready",)).endpoint
    make_endpoint(receiver.url("/ok"), ("operation.failed",))
    off = make_endpoint(receiver.url("/ok"), ("cluster.ready",), enabled=False).endpoint
    from tests.notifications.conftest import owner_context
    actor, ctx = owner_context(other_tenant, outsider)
    actions.do_create_webhook(actor, ctx, url=receiver.url("/ok"), event_types=["cluster.ready"])

    publish(tenant)

    assert list(Delivery.objects.values_list("endpoint_id", flat=True)) == [wants.pk]
    assert not Delivery.objects.filter(endpoint=off).exists()


def test_the_secret_is_stored_sealed_never_in_plain_text(tenant, receiver, make_endpoint):
    created = make_endpoint(receiver.url("/ok"))
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret_sealed, secret_hint FROM notifications_webhookendpoint")
        sealed, hint = cursor.fetchone()
    assert created.secret not in sealed and created.secret[6:] not in sealed
    assert unseal(sealed) == created.secret and hint == created.secret[:10]
    audit = AuditEntry.objects.get(verb="webhook.create")
    assert created.secret not in str(audit.changes)


def test_failures_are_retried_with_growing_jittered_pauses_until_a_success(
        tenant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/fail")).endpoint
    publish(tenant)
    row = at(only_delivery(endpoint), T0)
    rng = random.Random(7)
    now, pauses = T0, []
    for _attempt in range(4):
        outcome = delivery.attempt(row.pk, now=now, rng=rng)
        assert outcome.result == "http_error" and outcome.state == Delivery.State.PENDING
        pauses.append((outcome.next_attempt_at - now).total_seconds())
        assert delivery.attempt(row.pk, now=now + timedelta(seconds=1)) is None  # not due
        now = outcome.next_attempt_at
    for number, pause in enumerate(pauses, start=1):
        ceiling = min(30 * 2 ** (number - 1), 3600)
        assert ceiling / 2 <= pause <= ceiling
    assert pauses == sorted(pauses) and len(set(pauses)) == 4

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver.url("/ok"))
    assert delivery.attempt(row.pk, now=now).state == Delivery.State.SUCCEEDED
    endpoint.refresh_from_db()
    assert endpoint.failing_since is None and endpoint.consecutive_failures == 0
    assert list(DeliveryAttempt.objects.filter(delivery=row).values_list("status_code",
                                                                          flat=True)) == \
        [500, 500, 500, 500, 200]


def test_the_breaker_opens_after_five_failures_in_a_row_and_one_delivery_probes(
        tenant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/fail")).endpoint
    rows = []
    for _ in range(7):
        publish(tenant)
    for row in Delivery.objects.filter(endpoint=endpoint).order_by("pk"):
        rows.append(at(row, T0))
    for row in rows[:5]:
        assert delivery.attempt(row.pk, now=T0).result == "http_error"
    endpoint.refresh_from_db()
    assert endpoint.breaker_open_until == T0 + timedelta(seconds=60)
    before = len(receiver.received())

    held = delivery.attempt(rows[5].pk, now=T0 + timedelta(seconds=10))
    assert held.result == "deferred" and held.next_attempt_at >= endpoint.breaker_open_until
    assert len(receiver.received()) == before  # nothing sent while open

    # Half-open: the first delivery due afterwards probes; another one meanwhile waits.
    later = T0 + timedelta(seconds=61)
    Delivery.objects.filter(pk__in=[rows[5].pk, rows[6].pk]).update(next_attempt_at=later)
    probe = delivery.attempt(rows[5].pk, now=later)
    assert probe.result == "http_error"
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 6
    assert endpoint.breaker_open_until == later + timedelta(seconds=120)  # longer each time
    assert delivery.attempt(rows[6].pk, now=later).result == "deferred"

    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(url=receiver.url("/ok"))
    again = later + timedelta(seconds=121)
    Delivery.objects.filter(pk=rows[6].pk).update(next_attempt_at=again)
    assert delivery.attempt(rows[6].pk, now=again).result == "success"
    endpoint.refresh_from_db()
    assert endpoint.breaker_open_until is None and endpoint.consecutive_failures == 0


def test_a_delivery_gives_up_after_24_hours(tenant, receiver, make_endpoint, settings):
    settings.WEBHOOK_DISABLE_AFTER_HOURS = 1000  # this test is about the delivery alone
    endpoint = make_endpoint(receiver.url("/fail")).endpoint
    publish(tenant)
    row = at(only_delivery(endpoint), T0)
    now, attempts = T0, 0
    while True:
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(breaker_open_until=None)
        outcome = delivery.attempt(row.pk, now=now, rng=random.Random(attempts))
        attempts += 1
        if outcome.state != Delivery.State.PENDING:
            break
        assert outcome.next_attempt_at <= T0 + timedelta(hours=24)
        now = outcome.next_attempt_at
    assert outcome.state == Delivery.State.FAILED
    assert now == T0 + timedelta(hours=24)  # the last attempt is at the deadline itself
    assert 20 <= attempts <= 40


def test_an_endpoint_failing_for_a_day_is_disabled_and_its_owners_are_emailed(
        tenant, owner, tenant_admin, member, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/fail"), description="CI").endpoint
    publish(tenant)
    first = at(only_delivery(endpoint), T0)
    assert delivery.attempt(first.pk, now=T0).state == Delivery.State.PENDING
    publish(tenant)
    second = Delivery.objects.filter(endpoint=endpoint).exclude(pk=first.pk).get()
    day_later = T0 + timedelta(hours=24, seconds=1)
    at(second, T0 + timedelta(hours=23))
    Delivery.objects.filter(pk=second.pk).update(next_attempt_at=day_later)

    outcome = delivery.attempt(second.pk, now=day_later)

    endpoint.refresh_from_db()
    assert not endpoint.enabled and endpoint.disabled_at == day_later
    assert "24 hours" in endpoint.disabled_reason
    assert Delivery.objects.get(pk=first.pk).state == Delivery.State.FAILED
    assert AuditEntry.objects.filter(verb="webhook.disable", tenant=tenant).exists()
    # The email is an event of its own whose email is due (sent by a worker, or the dispatch).
    assert emails.due(day_later + timedelta(minutes=1)) == [outcome.email_event_id]
    emails.send_event_emails(outcome.email_event_id, now=day_later)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([owner.email, tenant_admin.email])
    message = mail.outbox[0]
    assert "disabled" in message.subject and endpoint.url in message.body
    assert "/account/notifications/" in message.body
    assert f"/t/{tenant.slug}/settings/webhooks/{endpoint.pk}/" in message.body

    publish(tenant)  # a disabled endpoint gets nothing new
    assert Delivery.objects.filter(endpoint=endpoint).count() == 2


def test_rotation_signs_with_both_secrets_during_the_overlap_then_only_the_new_one(
        tenant, receiver, make_endpoint, owner_ctx):
    actor, ctx = owner_ctx
    created = make_endpoint(receiver.url("/ok"))
    rotated = actions.do_rotate_secret(actor, ctx, created.endpoint.pk, overlap_hours=24)
    assert rotated.secret != created.secret
    publish(tenant)
    publish(tenant)
    first, second = Delivery.objects.filter(endpoint=created.endpoint).order_by("pk")
    now = rotated.endpoint.secret_rotated_at
    assert delivery.attempt(at(first, now).pk, now=now).result == "success"
    during = receiver.received()[-1]
    assert during.headers["Portal-Signature"].count("v1=") == 2
    for secret in (created.secret, rotated.secret):
        assert signing.verify(during.headers["Portal-Signature"], during.body, secret, now=now)

    after = now + timedelta(hours=24, seconds=1)
    assert delivery.attempt(at(second, after).pk, now=after).result == "success"
    later = receiver.received()[-1]
    assert later.headers["Portal-Signature"].count("v1=") == 1
    assert signing.verify(later.headers["Portal-Signature"], later.body, rotated.secret,
                          now=after)
    assert not signing.verify(later.headers["Portal-Signature"], later.body, created.secret,
                              now=after)
    entry = AuditEntry.objects.get(verb="webhook.rotate_secret")
    assert rotated.secret not in str(entry.changes) and created.secret not in str(entry.changes)


def test_redeliver_sends_the_same_event_again_once(tenant, receiver, make_endpoint,
                                                   owner_ctx):
    actor, ctx = owner_ctx
    endpoint = make_endpoint(receiver.url("/ok")).endpoint
    event = publish(tenant)
    original = at(only_delivery(endpoint), T0)
    with pytest.raises(Exception, match="still being attempted"):
        actions.do_redeliver(actor, ctx, endpoint.pk, original.pk)
    delivery.attempt(original.pk, now=T0)

    again = actions.do_redeliver(actor, ctx, endpoint.pk, original.pk)
    assert again.event_id == event.pk and not again.retries and again.redelivery_of == original
    Delivery.objects.filter(pk=again.pk).update(next_attempt_at=T0)
    assert delivery.attempt(again.pk, now=T0).result == "success"
    ids = [r.json()["id"] for r in receiver.received()]
    assert ids == [event.public_id, event.public_id]
    assert AuditEntry.objects.filter(verb="webhook.redeliver", tenant=tenant).exists()


def test_a_test_event_is_sent_once_even_to_a_disabled_endpoint(tenant, receiver,
                                                               make_endpoint, owner_ctx):
    actor, ctx = owner_ctx
    endpoint = make_endpoint(receiver.url("/fail"), enabled=False).endpoint
    sent = actions.do_send_test(actor, ctx, endpoint.pk)
    Delivery.objects.filter(pk=sent.pk).update(next_attempt_at=T0)
    outcome = delivery.attempt(sent.pk, now=T0)
    assert outcome.state == Delivery.State.FAILED  # one attempt, no retry
    assert receiver.received("/fail")[-1].json()["type"] == "webhook.test"


def test_nothing_is_lost_when_the_broker_is_down_at_commit(tenant, receiver, make_endpoint,
                                                           monkeypatch,
                                                           django_capture_on_commit_callbacks):
    """The enqueue after commit fails (broker down): the change commits, the delivery row
    stays due, and the periodic dispatch hands it to a worker later."""
    endpoint = make_endpoint(receiver.url("/ok")).endpoint

    def broker_down(*args, **kwargs):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(tasks.deliver, "apply_async", broker_down)
    with django_capture_on_commit_callbacks(execute=True):
        publish(tenant)
    row = only_delivery(endpoint)
    assert row.state == Delivery.State.PENDING

    handed: list[int] = []
    monkeypatch.setattr(tasks.deliver, "apply_async", lambda args, **kw: handed.append(args[0]))
    assert delivery.due(row.next_attempt_at + timedelta(seconds=1)) == []  # still fresh
    later = row.next_attempt_at + timedelta(seconds=20)
    assert delivery.due(later) == [row.pk]
    assert tasks.dispatch(later) == {"deliveries": 1, "emails": 0}
    assert handed == [row.pk]
    assert delivery.attempt(row.pk, now=later).result == "success"


def test_a_dead_workers_lease_runs_out_and_the_delivery_is_sent_by_another(
        tenant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/ok")).endpoint
    publish(tenant)
    row = at(only_delivery(endpoint), T0)
    assert delivery.claim(row.pk, T0)  # a worker took it and died
    assert delivery.attempt(row.pk, now=T0 + timedelta(seconds=30)) is None
    assert delivery.due(T0 + timedelta(seconds=30)) == []
    late = T0 + delivery.LEASE + timedelta(seconds=1)
    assert delivery.due(late) == [row.pk]
    assert delivery.attempt(row.pk, now=late).result == "success"


def test_the_log_is_kept_30_days(tenant, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/ok")).endpoint
    publish(tenant)
    old = at(only_delivery(endpoint), T0)
    delivery.attempt(old.pk, now=T0)
    Event.objects.update(created_at=T0)
    publish(tenant)

    counts = delivery.forget_old(T0 + timedelta(days=30, seconds=1))

    assert counts["deliveries"] == 1 and counts["attempts"] == 1 and counts["events"] == 1
    assert Delivery.objects.count() == 1 and Event.objects.count() == 1


def test_results_are_reported_to_observers(tenant, receiver, make_endpoint):
    seen: list[tuple[str, float | None]] = []
    delivery.observe_results(lambda result, latency: seen.append((result, latency)))
    try:
        endpoint = make_endpoint(receiver.url("/ok")).endpoint
        publish(tenant)
        delivery.attempt(at(only_delivery(endpoint), T0).pk, now=T0)
    finally:
        delivery._observers.clear()
    assert [r for r, _latency in seen] == ["success"] and seen[0][1] is not None


def test_emails_of_disabled_endpoints_go_to_owners_and_admins_only(tenant, owner):
    MembershipFactory(tenant=tenant, role="viewer")
    event = Event.objects.create(tenant=tenant, type=delivery.ENDPOINT_DISABLED,
                                 occurred_at=T0, email_due=True,
                                 data={"endpoint": {"id": 1, "url": "https://x.example/"}})
    assert [u.email for u in emails.recipients(event)] == [owner.email]
