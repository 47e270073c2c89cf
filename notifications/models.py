"""Notifications: the events a tenant is told about, its webhook endpoints, and the deliveries
that carry each event to each endpoint (the delivery log).

An ``Event`` is written in the transaction of what it reports (an operation finishing, a
threshold reached); so are its ``Delivery`` rows, one per endpoint that wants the event. A
delivery row *is* the outbox: a worker is asked to send it once the transaction commits, and
the periodic dispatch picks up any that are due and nobody holds (a broker that was briefly
down, a worker that died mid-send). Deliveries and their attempts are kept
``WEBHOOK_LOG_DAYS`` days.

A signing secret is stored sealed (``portal.encryption``), never in plain text; it is shown
once, when created or rotated.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.models import Tenant
from portal.validators import validate_visible_text

URL_MAX = 2000
DESCRIPTION_MAX = 100
EXCERPT_BYTES = 1024


class Event(models.Model):
    """Something that happened in a tenant, in the words webhooks and emails use."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    type = models.CharField(max_length=40)
    occurred_at = models.DateTimeField()
    data = models.JSONField(default=dict)
    created_at = models.DateTimeField(default=timezone.now)
    # Emails this module sends for the event (billing sends its own): due until sent; a worker
    # holds it while sending.
    email_due = models.BooleanField(default=False)
    email_claimed_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["tenant", "-created_at"]),
            models.Index(fields=["created_at"], condition=models.Q(email_due=True),
                         name="event_email_due"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.public_id}"

    @property
    def public_id(self) -> str:
        return f"evt_{self.id.hex}"

    def envelope(self) -> dict[str, Any]:
        """The JSON body a webhook receives: ``{id, type, time, tenant, data}``."""
        return {"id": self.public_id, "type": self.type, "time": iso(self.occurred_at),
                "tenant": self.tenant.slug, "data": self.data}


def iso(at: datetime) -> str:
    """UTC, to the second, with a ``Z``: ``2026-03-01T12:00:00Z``."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class WebhookEndpointQuerySet(models.QuerySet["WebhookEndpoint"]):
    def for_tenant(self, tenant: Tenant) -> WebhookEndpointQuerySet:
        return self.filter(tenant=tenant)


class WebhookEndpoint(models.Model):
    """An HTTPS address of a tenant's that receives the events it chose, signed."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE,
                               related_name="webhook_endpoints")
    url = models.CharField(_("URL"), max_length=URL_MAX)
    description = models.CharField(_("description"), max_length=DESCRIPTION_MAX, blank=True,
                                   validators=[validate_visible_text])
    event_types = models.JSONField(_("events"), default=list)
    enabled = models.BooleanField(_("enabled"), default=True)
    secret_sealed = models.TextField(editable=False)
    secret_hint = models.CharField(max_length=16, editable=False)
    # While a rotation's overlap lasts, the previous secret signs too.
    previous_secret_sealed = models.TextField(blank=True, editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True)
    secret_rotated_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    # Delivery health: the failing streak, and the circuit breaker.
    failing_since = models.DateTimeField(null=True, blank=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    breaker_open_until = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.CharField(max_length=300, blank=True)

    objects = WebhookEndpointQuerySet.as_manager()

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["tenant", "enabled"])]

    def __str__(self) -> str:
        return self.url[:200]

    def wants(self, event_type: str) -> bool:
        return self.enabled and event_type in (self.event_types or [])

    def breaker_open(self, now: datetime) -> bool:
        return self.breaker_open_until is not None and self.breaker_open_until > now

    def previous_secret_active(self, now: datetime) -> bool:
        return bool(self.previous_secret_sealed) and self.previous_secret_expires_at is not None \
            and self.previous_secret_expires_at > now


class Delivery(models.Model):
    """One event on its way to one endpoint: pending until it succeeds, or fails for good
    (retries exhausted, the endpoint disabled). Its attempts are the delivery log."""

    class State(models.TextChoices):
        PENDING = "pending", _("Pending")
        SUCCEEDED = "succeeded", _("Delivered")
        FAILED = "failed", _("Failed")

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE,
                                 related_name="deliveries")
    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="deliveries")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    # Test events and deliveries sent again by hand make one attempt; the others retry.
    retries = models.BooleanField(default=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    leased_until = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    redelivery_of = models.ForeignKey("self", on_delete=models.SET_NULL, null=True, blank=True,
                                      related_name="+")
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["next_attempt_at"], condition=models.Q(state="pending"),
                         name="delivery_due"),
            models.Index(fields=["endpoint", "-created_at"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self) -> str:
        return f"delivery {self.pk} ({self.state})"

    @property
    def is_pending(self) -> bool:
        return self.state == self.State.PENDING


class DeliveryAttempt(models.Model):
    """One POST of a delivery: what came back (status, time taken, the first KB of the
    answer) or why nothing did."""

    class Outcome(models.TextChoices):
        SUCCESS = "success", _("Delivered")
        HTTP_ERROR = "http_error", _("Error status")
        REDIRECT = "redirect", _("Redirect (not followed)")
        TIMEOUT = "timeout", _("Timed out")
        CONNECTION_ERROR = "connection_error", _("Connection failed")
        TLS_ERROR = "tls_error", _("TLS failed")
        REFUSED = "refused", _("Refused target")

    delivery = models.ForeignKey(Delivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    outcome = models.CharField(max_length=16, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    response_excerpt = models.TextField(blank=True)
    error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"attempt {self.number} of delivery {self.delivery_id}: {self.outcome}"
