"""Webhooks and their deliveries in the API's words; the secret appears only in the answers
that create one (create, rotate)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from notifications.actions import DEFAULT_OVERLAP_HOURS, OVERLAP_HOURS
from notifications.delivery import body_of
from notifications.models import DESCRIPTION_MAX, URL_MAX, Delivery, DeliveryAttempt
from notifications.models import WebhookEndpoint as Endpoint
from portal.api.fields import StrictSerializer
from portal.notifications import CATALOGUE

EVENT_TYPES = [(t, t) for t in CATALOGUE]
STATUSES = [("active", "active"), ("failing", "failing"), ("paused", "paused"),
            ("disabled", "disabled")]


def _abs(context: Mapping[str, Any], name: str, **kwargs: Any) -> str:
    return context["request"].build_absolute_uri(reverse(f"api:{name}", kwargs=kwargs))


# --------------------------------------------------------------------------- input


class WebhookCreateSerializer(StrictSerializer):
    target_url = serializers.CharField(
        max_length=URL_MAX, help_text=_("Where events are POSTed: an https:// URL on the public "
                                        "internet, without credentials in it."))
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1,
        max_length=len(EVENT_TYPES) * 2, help_text=_("The events it receives."))
    description = serializers.CharField(
        max_length=DESCRIPTION_MAX, required=False, allow_blank=True,
        help_text=_("What it is for, for the people who read the list."))
    enabled = serializers.BooleanField(
        required=False, default=True, help_text=_("Send events to it (default true)."))


class WebhookUpdateSerializer(StrictSerializer):
    target_url = serializers.CharField(max_length=URL_MAX, required=False,
                                       help_text=_("A new https:// URL."))
    event_types = serializers.ListField(
        child=serializers.ChoiceField(choices=EVENT_TYPES), min_length=1,
        max_length=len(EVENT_TYPES) * 2, required=False,
        help_text=_("The events it receives, replacing the list."))
    description = serializers.CharField(max_length=DESCRIPTION_MAX, required=False,
                                        allow_blank=True, help_text=_("A new description."))
    enabled = serializers.BooleanField(
        required=False, help_text=_("`false` stops sending; `true` sends again and forgets "
                                    "past failures."))


class RotateSerializer(StrictSerializer):
    overlap_hours = serializers.ChoiceField(
        choices=[(h, str(h)) for h in OVERLAP_HOURS], required=False,
        default=DEFAULT_OVERLAP_HOURS,
        help_text=_("For how many hours the old secret keeps signing beside the new one (each "
                    "request then carries two `v1` signatures); 0 ends it at once."))


# --------------------------------------------------------------------------- output


class WebhookSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The webhook's id."))
    url = serializers.SerializerMethodField()
    target_url = serializers.CharField(source="url", help_text=_("Where events are POSTed."))
    description = serializers.CharField(help_text=_("What it is for."))
    event_types = serializers.ListField(child=serializers.ChoiceField(choices=EVENT_TYPES),
                                        help_text=_("The events it receives."))
    enabled = serializers.BooleanField(help_text=_("Events are sent to it."))
    status = serializers.SerializerMethodField(
        help_text=_("`active`; `failing` (deliveries fail, being retried); `paused` (the "
                    "circuit breaker holds deliveries after repeated failures); `disabled`."))
    secret_hint = serializers.CharField(
        help_text=_("The first characters of the signing secret, to recognise it."))
    previous_secret_expires_at = serializers.SerializerMethodField(
        help_text=_("Until when the previous secret signs too, after a rotation; null when "
                    "only the current one signs."))
    failing_since = serializers.DateTimeField(
        allow_null=True, help_text=_("Since when deliveries fail without a success."))
    breaker_open_until = serializers.DateTimeField(
        allow_null=True, help_text=_("Deliveries wait until then (circuit breaker open)."))
    last_success_at = serializers.DateTimeField(allow_null=True,
                                                help_text=_("The last successful attempt."))
    last_failure_at = serializers.DateTimeField(allow_null=True,
                                                help_text=_("The last failed attempt."))
    disabled_at = serializers.DateTimeField(allow_null=True,
                                            help_text=_("When it was disabled."))
    disabled_reason = serializers.CharField(help_text=_("Why it was disabled."))
    deliveries_url = serializers.SerializerMethodField(help_text=_("Its delivery log."))
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.URLField(help_text=_("This webhook in the API.")))
    def get_url(self, endpoint: Endpoint) -> str:
        return _abs(self.context, "webhook", tenant_slug=endpoint.tenant.slug,
                    webhook_id=endpoint.pk)

    @extend_schema_field(serializers.URLField())
    def get_deliveries_url(self, endpoint: Endpoint) -> str:
        return _abs(self.context, "webhook_deliveries", tenant_slug=endpoint.tenant.slug,
                    webhook_id=endpoint.pk)

    @extend_schema_field(serializers.ChoiceField(choices=STATUSES))
    def get_status(self, endpoint: Endpoint) -> str:
        if not endpoint.enabled:
            return "disabled"
        if endpoint.breaker_open(timezone.now()):
            return "paused"
        return "failing" if endpoint.failing_since else "active"

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_previous_secret_expires_at(self, endpoint: Endpoint) -> Any:
        expires = endpoint.previous_secret_expires_at
        if expires is None or not endpoint.previous_secret_active(timezone.now()):
            return None
        return serializers.DateTimeField().to_representation(expires)


class WebhookSecretSerializer(WebhookSerializer):
    secret = serializers.SerializerMethodField(
        help_text=_("The signing secret (`whsec_…`). Shown in this answer only: store it now; "
                    "it cannot be read again."))

    @extend_schema_field(serializers.CharField())
    def get_secret(self, endpoint: Endpoint) -> str:
        return str(self.context["secret"])


class EventRefSerializer(serializers.Serializer):
    id = serializers.CharField(source="public_id", help_text=_("The event's id (`evt_…`)."))
    type = serializers.CharField(help_text=_("The event type."))
    time = serializers.DateTimeField(source="occurred_at", help_text=_("When it happened."))


class DeliverySerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The delivery's id."))
    url = serializers.SerializerMethodField()
    event = EventRefSerializer(help_text=_("The event it carries."))
    state = serializers.ChoiceField(
        choices=Delivery.State.choices,
        help_text=_("`pending` (being attempted), `succeeded` or `failed` (retries exhausted, "
                    "or the webhook was disabled)."))
    retries = serializers.BooleanField(
        help_text=_("Retried until it succeeds or 24 hours pass; false for test events and "
                    "deliveries sent again by hand, which make one attempt."))
    attempts = serializers.IntegerField(help_text=_("Attempts made so far."))
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the next attempt is due; null once finished."))
    finished_at = serializers.DateTimeField(allow_null=True, help_text=_("When it ended."))
    last_status_code = serializers.IntegerField(
        allow_null=True, help_text=_("The HTTP status of the last answer, if any."))
    last_error = serializers.CharField(help_text=_("Why the last attempt failed, in words."))
    redelivery_of = serializers.IntegerField(
        source="redelivery_of_id", allow_null=True,
        help_text=_("The delivery this one sends again, if it was sent again by hand."))

    @extend_schema_field(serializers.URLField(help_text=_("This delivery in the API.")))
    def get_url(self, delivery: Delivery) -> str:
        return _abs(self.context, "webhook_delivery", tenant_slug=delivery.event.tenant.slug,
                    webhook_id=delivery.endpoint_id, delivery_id=delivery.pk)


class AttemptSerializer(serializers.Serializer):
    number = serializers.IntegerField(help_text=_("1 for the first attempt."))
    at = serializers.DateTimeField(help_text=_("When it was made."))
    outcome = serializers.ChoiceField(
        choices=DeliveryAttempt.Outcome.choices,
        help_text=_("`success` (2xx), `http_error`, `redirect` (not followed), `timeout`, "
                    "`connection_error`, `tls_error` or `refused` (not a public address)."))
    status_code = serializers.IntegerField(allow_null=True,
                                           help_text=_("The HTTP status, if one came."))
    latency_ms = serializers.IntegerField(
        allow_null=True, help_text=_("Milliseconds until the answer's status line."))
    response_excerpt = serializers.CharField(
        help_text=_("The first kilobyte of the answer's body."))
    error = serializers.CharField(help_text=_("What went wrong, in words."))


class DeliveryDetailSerializer(DeliverySerializer):
    attempt_log = AttemptSerializer(many=True, help_text=_("Every attempt, oldest first."))
    body = serializers.SerializerMethodField(
        help_text=_("The JSON body it sends (the envelope: id, type, time, tenant, data)."))

    @extend_schema_field(serializers.DictField())
    def get_body(self, delivery: Delivery) -> Any:
        return json.loads(body_of(delivery.event))
