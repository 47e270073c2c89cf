"""Reads of the webhook pages and the API, each scoped to the tenant in hand."""

from __future__ import annotations

import json
from datetime import datetime

from django.db.models import QuerySet
from django.utils import timezone

from notifications.delivery import body_of
from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from portal.tenancy import TenantContext


def now() -> datetime:
    return timezone.now()


def endpoints(ctx: TenantContext) -> QuerySet[WebhookEndpoint]:
    return WebhookEndpoint.objects.for_tenant(ctx.tenant).select_related("tenant")


def deliveries(endpoint: WebhookEndpoint) -> QuerySet[Delivery]:
    """The endpoint's deliveries, newest first, with their events."""
    return (Delivery.objects.filter(endpoint=endpoint).select_related("event")
            .order_by("-created_at", "-id"))


def attempts(delivery: Delivery) -> list[DeliveryAttempt]:
    return list(delivery.attempt_log.order_by("number", "id"))


def pretty_body(delivery: Delivery) -> str:
    """The body the delivery sends, indented for reading (the bytes sent are compact)."""
    return json.dumps(json.loads(body_of(delivery.event)), indent=2, ensure_ascii=False)
