"""Sending deliveries: claim, sign, POST, record, and decide what comes next.

At least once: a delivery stays pending until an attempt succeeds or its time is up
(``WEBHOOK_RETRY_HOURS`` after it was created), retried with exponential backoff and jitter.
A worker claims a delivery with a conditional UPDATE (a lease), so a redelivered message, the
periodic dispatch and a second worker never send it twice at the same time, and a worker
that dies mid-send leaves a lease that runs out. A receiver should expect the same event id
more than once, and ignore repeats.

Each endpoint has a circuit breaker: after ``BREAKER_THRESHOLD`` failed attempts in a row it
opens for a while (longer each time, up to an hour); deliveries due meanwhile wait for it
instead of piling up on a receiver that is down. When the time is up, one delivery probes:
success closes the breaker, failure opens it again. An endpoint that has failed for
``WEBHOOK_DISABLE_AFTER_HOURS`` without a success is disabled, its pending deliveries end,
and the tenant's owners and admins are emailed.

``observe_results`` lets another module count results (metrics): each observer is called with
the result of every attempt (a ``DeliveryAttempt.Outcome`` value) or ``"deferred"`` for a
delivery held back by an open breaker, and the attempt's latency in seconds (or ``None``).
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications import signing, transport
from notifications.models import Delivery, DeliveryAttempt, Event, WebhookEndpoint, iso
from portal.audit import Actor, record
from portal.encryption import UnsealError, unseal

logger = logging.getLogger("notifications.delivery")

LEASE = timedelta(seconds=120)
RETRY_BASE_SECONDS = 30.0
RETRY_CAP_SECONDS = 3600.0
BREAKER_THRESHOLD = 5
BREAKER_BASE_SECONDS = 60.0
BREAKER_CAP_SECONDS = 3600.0
# How long a probe holds a half-open breaker before another delivery may try.
PROBE_WINDOW = timedelta(seconds=60)
DEFERRED = "deferred"
# An internal event: emailed to the tenant's owners and admins, never sent to a webhook.
ENDPOINT_DISABLED = "webhook.endpoint_disabled"

ResultObserver = Callable[[str, float | None], None]
_observers: list[ResultObserver] = []


def observe_results(observer: ResultObserver) -> None:
    """Call ``observer(result, latency_seconds)`` for every delivery result from now on."""
    if observer not in _observers:
        _observers.append(observer)


def _report(result: str, latency_ms: int | None) -> None:
    for observer in _observers:
        try:
            observer(result, None if latency_ms is None else latency_ms / 1000)
        except Exception:  # a counter must never fail a delivery
            logger.exception("webhook.observer.failed")


def retry_delay(attempt: int, rng: random.Random | None = None) -> float:
    """Seconds before retry number ``attempt`` (1-based): 30 s doubling up to an hour, of
    which a random half ("equal jitter"), so receivers coming back are not stampeded."""
    ceiling = min(RETRY_BASE_SECONDS * 2 ** max(attempt - 1, 0), RETRY_CAP_SECONDS)
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)


def breaker_cooldown(failures: int) -> timedelta:
    """How long the breaker stays open after ``failures`` failed attempts in a row."""
    seconds = min(BREAKER_BASE_SECONDS * 2 ** max(failures - BREAKER_THRESHOLD, 0),
                  BREAKER_CAP_SECONDS)
    return timedelta(seconds=seconds)


def retry_window() -> timedelta:
    return timedelta(hours=settings.WEBHOOK_RETRY_HOURS)


def body_of(event: Event) -> bytes:
    """The exact bytes sent (and signed): the envelope as compact JSON."""
    return json.dumps(event.envelope(), separators=(",", ":"), ensure_ascii=False,
                      sort_keys=True).encode()


def signing_secrets(endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign now: the current one, and the previous one while its overlap
    lasts."""
    found = [unseal(endpoint.secret_sealed)]
    if endpoint.previous_secret_active(now):
        found.append(unseal(endpoint.previous_secret_sealed))
    return found


def headers_for(delivery: Delivery, body: bytes, now: datetime) -> dict[str, str]:
    event = delivery.event
    return {
        signing.SIGNATURE_HEADER: signing.signature_header(
            signing_secrets(delivery.endpoint, now), int(now.timestamp()), body),
        "Portal-Event-Id": event.public_id,
        "Portal-Event-Type": event.type,
        "Portal-Delivery-Id": str(delivery.pk),
    }


@dataclass(frozen=True)
class Outcome:
    """What one call of ``attempt`` did."""

    result: str  # a DeliveryAttempt.Outcome value, or "deferred"
    state: str  # the delivery's state afterwards
    next_attempt_at: datetime | None = None
    email_event_id: object = None  # an event whose email is now due (endpoint disabled)


def claim(delivery_id: int, now: datetime) -> bool:
    """Take a due, pending delivery nobody holds (a conditional UPDATE)."""
    return bool(
        Delivery.objects.filter(pk=delivery_id, state=Delivery.State.PENDING,
                                next_attempt_at__lte=now)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .update(leased_until=now + LEASE))


def attempt(delivery_id: int, *, now: datetime | None = None,
            rng: random.Random | None = None) -> Outcome | None:
    """Send one due delivery once, if nobody else is; ``None`` when there was nothing to do.

    Changes: one ``DeliveryAttempt``, the delivery's state or next attempt, the endpoint's
    health (failing streak, breaker; disabled after a day of failures). Safe to repeat: a
    delivery not due, finished or held by another worker is left alone.
    """
    now = now or timezone.now()
    if not claim(delivery_id, now):
        return None
    delivery = (Delivery.objects.select_related("endpoint__tenant", "event__tenant")
                .get(pk=delivery_id))
    endpoint = delivery.endpoint
    if not endpoint.enabled and delivery.retries:
        _end(delivery, Delivery.State.FAILED, now, _("The endpoint is disabled."))
        return Outcome(DeliveryAttempt.Outcome.REFUSED, Delivery.State.FAILED)
    if delivery.retries:
        waiting_until = _wait_for_breaker(endpoint, now)
        if waiting_until is not None:
            Delivery.objects.filter(pk=delivery.pk).update(
                next_attempt_at=waiting_until, leased_until=None)
            _report(DEFERRED, None)
            return Outcome(DEFERRED, Delivery.State.PENDING, waiting_until)
    body = body_of(delivery.event)
    try:
        headers = headers_for(delivery, body, now)
    except UnsealError:
        logger.error("webhook.secret.unreadable", extra={"endpoint_id": endpoint.pk})
        answer = transport.Answer(DeliveryAttempt.Outcome.REFUSED, error=_(
            "The signing secret cannot be read with the portal's keys: rotate it."))
    else:
        answer = transport.post(endpoint.url, body, headers)
    outcome = _record(delivery.pk, answer, now, rng)
    _report(answer.outcome, answer.latency_ms)
    logger.info("webhook.delivery.attempt", extra={
        "delivery_id": delivery.pk, "endpoint_id": endpoint.pk, "result": answer.outcome,
        "status_code": answer.status_code, "latency_ms": answer.latency_ms})
    return outcome


def _wait_for_breaker(endpoint: WebhookEndpoint, now: datetime) -> datetime | None:
    """``None`` when this delivery may be sent now (breaker closed, or this one probes);
    else until when it waits."""
    opened = endpoint.breaker_open_until
    if opened is None:
        return None
    if opened > now:
        return opened + timedelta(seconds=random.uniform(0, 30))
    # Half-open: one delivery takes the probe by pushing the breaker's time forward.
    taken = WebhookEndpoint.objects.filter(pk=endpoint.pk, breaker_open_until=opened).update(
        breaker_open_until=now + PROBE_WINDOW)
    return None if taken else now + PROBE_WINDOW


def _end(delivery: Delivery, state: str, now: datetime, error: str = "") -> None:
    Delivery.objects.filter(pk=delivery.pk).update(
        state=state, finished_at=now, next_attempt_at=None, leased_until=None,
        last_error=error[:300])


def _record(delivery_id: int, answer: transport.Answer, now: datetime,
            rng: random.Random | None) -> Outcome:
    with transaction.atomic():
        delivery = Delivery.objects.select_for_update().get(pk=delivery_id)
        endpoint = WebhookEndpoint.objects.select_for_update().get(pk=delivery.endpoint_id)
        delivery.attempts += 1
        DeliveryAttempt.objects.create(
            delivery=delivery, number=delivery.attempts, at=now, outcome=answer.outcome,
            status_code=answer.status_code, latency_ms=answer.latency_ms,
            response_excerpt=answer.excerpt, error=answer.error[:300])
        delivery.last_status_code = answer.status_code
        delivery.last_error = answer.error[:300]
        delivery.leased_until = None
        if answer.ok:
            delivery.state, delivery.finished_at, delivery.next_attempt_at = \
                Delivery.State.SUCCEEDED, now, None
            endpoint.failing_since = None
            endpoint.consecutive_failures = 0
            endpoint.breaker_open_until = None
            endpoint.last_success_at = now
        else:
            _failed(delivery, endpoint, now, rng)
        delivery.save(update_fields=["attempts", "last_status_code", "last_error",
                                     "leased_until", "state", "finished_at",
                                     "next_attempt_at"])
        endpoint.save(update_fields=["failing_since", "consecutive_failures",
                                     "breaker_open_until", "last_success_at",
                                     "last_failure_at"])
        notice = None
        if not answer.ok and endpoint.enabled and endpoint.failing_since is not None and \
                now - endpoint.failing_since >= timedelta(
                    hours=settings.WEBHOOK_DISABLE_AFTER_HOURS):
            notice = disable(endpoint, now)
            delivery.refresh_from_db(fields=["state", "next_attempt_at"])
    return Outcome(answer.outcome, delivery.state, delivery.next_attempt_at,
                   notice.pk if notice is not None else None)


def _failed(delivery: Delivery, endpoint: WebhookEndpoint, now: datetime,
            rng: random.Random | None) -> None:
    endpoint.consecutive_failures += 1
    endpoint.failing_since = endpoint.failing_since or now
    endpoint.last_failure_at = now
    if endpoint.consecutive_failures >= BREAKER_THRESHOLD:
        endpoint.breaker_open_until = now + breaker_cooldown(endpoint.consecutive_failures)
    deadline = delivery.created_at + retry_window()
    if not delivery.retries or now >= deadline:
        delivery.state, delivery.finished_at, delivery.next_attempt_at = \
            Delivery.State.FAILED, now, None
        return
    delay = timedelta(seconds=retry_delay(delivery.attempts, rng))
    delivery.next_attempt_at = min(now + delay, deadline)


def disable(endpoint: WebhookEndpoint, now: datetime) -> Event:
    """Turn off an endpoint that failed for a day: its pending deliveries end, the change is
    in the audit log, and its tenant's owners and admins are to be emailed (the returned
    event, whose email is due). The caller holds the endpoint's row lock."""
    hours = settings.WEBHOOK_DISABLE_AFTER_HOURS
    reason = _("Every delivery failed for %(hours)s hours.") % {"hours": hours}
    endpoint.enabled = False
    endpoint.disabled_at = now
    endpoint.disabled_reason = reason
    endpoint.breaker_open_until = None
    endpoint.updated_at = now
    endpoint.save(update_fields=["enabled", "disabled_at", "disabled_reason",
                                 "breaker_open_until", "updated_at"])
    Delivery.objects.filter(endpoint=endpoint, state=Delivery.State.PENDING).update(
        state=Delivery.State.FAILED, finished_at=now, next_attempt_at=None, leased_until=None,
        last_error=_("The endpoint was disabled."))
    record(Actor.system(), "webhook.disable", endpoint, tenant=endpoint.tenant,
           changes={"enabled": [True, False], "failing_since": [
               endpoint.failing_since.isoformat() if endpoint.failing_since else None, None]})
    logger.warning("webhook.endpoint.disabled", extra={"endpoint_id": endpoint.pk,
                                                      "tenant_id": endpoint.tenant_id})
    # The email to the owners goes out like every notification email: an event with its
    # email due (sent by a worker, or by the periodic dispatch if that message is lost).
    return Event.objects.create(
        tenant=endpoint.tenant, type=ENDPOINT_DISABLED, occurred_at=now, created_at=now,
        email_due=True,
        data={"endpoint": {"id": endpoint.pk, "url": endpoint.url,
                           "description": endpoint.description,
                           "failing_since": iso(endpoint.failing_since or now)}})


def due(now: datetime, *, grace: timedelta = timedelta(seconds=15),
        limit: int = 500) -> list[int]:
    """Pending deliveries due for ``grace`` already that nobody holds: the ones the periodic
    dispatch hands to workers (a fresh one was handed over when it committed)."""
    return list(
        Delivery.objects.filter(state=Delivery.State.PENDING, next_attempt_at__lte=now - grace)
        .filter(Q(leased_until__isnull=True) | Q(leased_until__lt=now))
        .order_by("next_attempt_at").values_list("pk", flat=True)[:limit])


def forget_old(now: datetime) -> dict[str, int]:
    """Drop finished deliveries (and their attempts) older than ``WEBHOOK_LOG_DAYS``, then
    events older than that which no delivery still needs (their emails were given up on long
    before: ``emails.due``)."""
    horizon = now - timedelta(days=settings.WEBHOOK_LOG_DAYS)
    deliveries, by_model = Delivery.objects.filter(created_at__lt=horizon).exclude(
        state=Delivery.State.PENDING).delete()
    events, _by_model = Event.objects.filter(created_at__lt=horizon).exclude(
        deliveries__isnull=False).delete()
    expired = WebhookEndpoint.objects.filter(previous_secret_expires_at__lt=now).update(
        previous_secret_sealed="", previous_secret_expires_at=None)
    return {"deliveries": by_model.get(Delivery._meta.label, 0),
            "attempts": by_model.get(DeliveryAttempt._meta.label, 0),
            "events": events, "expired_secrets": expired}

