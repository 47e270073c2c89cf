"""Every change to a tenant's webhooks: create, change, delete, rotate the secret, send a test
event, send a delivery again. Owners and admins only (``Perm.WEBHOOKS_MANAGE``); each writes
its audit entry in the same transaction, never with a secret in it, and hands the sending to a
worker after commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications import payloads, signing, targets, tasks
from notifications.models import DESCRIPTION_MAX, Delivery, Event, WebhookEndpoint
from portal.audit import Actor, diff, record
from portal.encryption import seal
from portal.notifications import CATALOGUE, TEST_EVENT
from portal.permissions import Perm
from portal.tenancy import TenantContext
from portal.validators import check_visible_text

MAX_ENDPOINTS_PER_TENANT = 20
# How long the previous secret keeps signing after a rotation, in hours (0: not at all).
OVERLAP_HOURS = (0, 1, 24, 72, 168)
DEFAULT_OVERLAP_HOURS = 24


@dataclass(frozen=True)
class NewSecret:
    """An endpoint and its new signing secret, which is shown this once and never again."""

    endpoint: WebhookEndpoint
    secret: str


def _require(actor: Actor, ctx: TenantContext) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(Perm.WEBHOOKS_MANAGE)


def access_endpoint(ctx: TenantContext, webhook_id: int, *,
                    for_update: bool = False) -> WebhookEndpoint:
    """The tenant's endpoint ``webhook_id``; 404 for another tenant's or none."""
    qs = WebhookEndpoint.objects.for_tenant(ctx.tenant).select_related("tenant")
    if for_update:
        qs = qs.select_for_update(of=("self",))
    endpoint = qs.filter(pk=webhook_id).first()
    if endpoint is None:
        raise Http404
    return endpoint


def access_delivery(ctx: TenantContext, webhook_id: int, delivery_id: int) -> Delivery:
    delivery = (Delivery.objects.select_related("event__tenant", "endpoint")
                .filter(pk=delivery_id, endpoint_id=webhook_id,
                        endpoint__tenant=ctx.tenant).first())
    if delivery is None:
        raise Http404
    return delivery


def clean_event_types(values: Any) -> list[str]:
    """The event types an endpoint asked for: at least one, each known; sorted, no repeats."""
    if not isinstance(values, (list, tuple)) or not values:
        raise ValidationError({"event_types": _("Choose at least one event.")},
                              code="required")
    unknown = [str(v)[:40] for v in values if v not in CATALOGUE]
    if unknown:
        raise ValidationError({"event_types": _("Unknown event type: %(type)s.")
                               % {"type": unknown[0]}}, code="invalid_choice")
    return sorted(set(values))


def _clean(url: str, description: str) -> tuple[str, str]:
    errors: dict[str, Any] = {}
    try:
        url = targets.check_url(url)
    except ValidationError as exc:
        errors["url"] = exc
    description = (description or "").strip()
    if len(description) > DESCRIPTION_MAX:
        errors["description"] = ValidationError(
            _("At most %(max)s characters.") % {"max": DESCRIPTION_MAX}, code="max_length")
    if errors:
        raise ValidationError(errors)
    check_visible_text(description=description)
    return url, description


def _secret_fields(secret: str) -> dict[str, str]:
    return {"secret_sealed": seal(secret), "secret_hint": signing.hint(secret)}


def do_create_webhook(actor: Actor, ctx: TenantContext, *, url: str, event_types: Any,
                      description: str = "", enabled: bool = True) -> NewSecret:
    """Add an endpoint to the tenant with a fresh signing secret (returned once, stored
    sealed). Refused beyond ``MAX_ENDPOINTS_PER_TENANT``."""
    _require(actor, ctx)
    url, description = _clean(url, description)
    types = clean_event_types(event_types)
    secret = signing.new_secret()
    with transaction.atomic():
        if WebhookEndpoint.objects.for_tenant(ctx.tenant).count() >= MAX_ENDPOINTS_PER_TENANT:
            raise ValidationError(_("A tenant has at most %(n)s webhooks; remove one first.")
                                  % {"n": MAX_ENDPOINTS_PER_TENANT}, code="too_many")
        now = timezone.now()
        endpoint = WebhookEndpoint.objects.create(
            tenant=ctx.tenant, url=url, description=description, event_types=types,
            enabled=bool(enabled), created_by=actor.user, created_at=now, updated_at=now,
            disabled_at=None if enabled else now, **_secret_fields(secret))
        record(actor, "webhook.create", endpoint, tenant=ctx.tenant, changes={
            "url": [None, url], "event_types": [None, types], "enabled": [None, bool(enabled)]})
    return NewSecret(endpoint, secret)


def do_update_webhook(actor: Actor, ctx: TenantContext, webhook_id: int, *,
                      url: str | None = None, event_types: Any = None,
                      description: str | None = None,
                      enabled: bool | None = None) -> WebhookEndpoint:
    """Change what is given. Enabling a disabled endpoint starts afresh: its failing streak
    and breaker are forgotten."""
    _require(actor, ctx)
    with transaction.atomic():
        endpoint = access_endpoint(ctx, webhook_id, for_update=True)
        before = {"url": endpoint.url, "event_types": endpoint.event_types,
                  "description": endpoint.description, "enabled": endpoint.enabled}
        new_url, new_description = _clean(endpoint.url if url is None else url,
                                          endpoint.description if description is None
                                          else description)
        endpoint.url, endpoint.description = new_url, new_description
        if event_types is not None:
            endpoint.event_types = clean_event_types(event_types)
        now = timezone.now()
        if enabled is not None and bool(enabled) != endpoint.enabled:
            endpoint.enabled = bool(enabled)
            if endpoint.enabled:
                endpoint.disabled_at, endpoint.disabled_reason = None, ""
                endpoint.failing_since, endpoint.consecutive_failures = None, 0
                endpoint.breaker_open_until = None
            else:
                endpoint.disabled_at = now
                endpoint.disabled_reason = _("Disabled by %(who)s.") % {"who": actor.label}
        after = {"url": endpoint.url, "event_types": endpoint.event_types,
                 "description": endpoint.description, "enabled": endpoint.enabled}
        changes = diff(before, after)
        if changes:
            endpoint.updated_at = now
            endpoint.save()
            record(actor, "webhook.update", endpoint, tenant=ctx.tenant, changes=changes)
    return endpoint


def do_delete_webhook(actor: Actor, ctx: TenantContext, webhook_id: int) -> None:
    """Remove the endpoint with its deliveries and their log (pending ones are not sent)."""
    _require(actor, ctx)
    with transaction.atomic():
        endpoint = access_endpoint(ctx, webhook_id, for_update=True)
        record(actor, "webhook.delete", endpoint, tenant=ctx.tenant,
               changes={"url": [endpoint.url, None]})
        endpoint.delete()


def do_rotate_secret(actor: Actor, ctx: TenantContext, webhook_id: int, *,
                     overlap_hours: int = DEFAULT_OVERLAP_HOURS) -> NewSecret:
    """Give the endpoint a new signing secret (returned once). For ``overlap_hours`` the old
    one signs too, so receivers can switch without losing a delivery; a second rotation
    within the overlap ends the first one's."""
    _require(actor, ctx)
    if overlap_hours not in OVERLAP_HOURS:
        raise ValidationError({"overlap_hours": _("Choose one of the offered overlaps.")},
                              code="invalid_choice")
    secret = signing.new_secret()
    with transaction.atomic():
        endpoint = access_endpoint(ctx, webhook_id, for_update=True)
        now = timezone.now()
        if overlap_hours:
            endpoint.previous_secret_sealed = endpoint.secret_sealed
            endpoint.previous_secret_expires_at = now + timedelta(hours=overlap_hours)
        else:
            endpoint.previous_secret_sealed = ""
            endpoint.previous_secret_expires_at = None
        old_hint = endpoint.secret_hint
        for name, value in _secret_fields(secret).items():
            setattr(endpoint, name, value)
        endpoint.secret_rotated_at = endpoint.updated_at = now
        endpoint.save()
        record(actor, "webhook.rotate_secret", endpoint, tenant=ctx.tenant, changes={
            "secret": [old_hint + "…", endpoint.secret_hint + "…"],
            "overlap_hours": [None, overlap_hours]})
    return NewSecret(endpoint, secret)


def _one_shot(actor: Actor, endpoint: WebhookEndpoint, event: Event, *,
              redelivery_of: Delivery | None = None) -> Delivery:
    now = timezone.now()
    delivery = Delivery.objects.create(
        endpoint=endpoint, event=event, retries=False, created_at=now, next_attempt_at=now,
        redelivery_of=redelivery_of, requested_by=actor.user)
    tasks.enqueue_after_commit([delivery.pk])
    return delivery


def do_send_test(actor: Actor, ctx: TenantContext, webhook_id: int) -> Delivery:
    """Send a ``webhook.test`` event to the endpoint now, once (enabled or not: it is how a
    fixed receiver is checked before enabling it again)."""
    _require(actor, ctx)
    with transaction.atomic():
        endpoint = access_endpoint(ctx, webhook_id, for_update=True)
        event = Event.objects.create(tenant=ctx.tenant, type=TEST_EVENT,
                                     occurred_at=timezone.now(), data=payloads.test_event())
        delivery = _one_shot(actor, endpoint, event)
        record(actor, "webhook.test", endpoint, tenant=ctx.tenant,
               changes={"delivery": [None, delivery.pk]})
    return delivery


def do_redeliver(actor: Actor, ctx: TenantContext, webhook_id: int,
                 delivery_id: int) -> Delivery:
    """Send a delivery's event to its endpoint again, now, once: a new delivery with the same
    event id (receivers that saw it already can tell). Refused while the delivery is still
    pending."""
    _require(actor, ctx)
    with transaction.atomic():
        endpoint = access_endpoint(ctx, webhook_id, for_update=True)
        original = access_delivery(ctx, webhook_id, delivery_id)
        if original.is_pending:
            raise ValidationError(_("This delivery is still being attempted; wait for it to "
                                    "finish."), code="busy")
        delivery = _one_shot(actor, endpoint, original.event, redelivery_of=original)
        record(actor, "webhook.redeliver", endpoint, tenant=ctx.tenant,
               changes={"delivery": [original.pk, delivery.pk],
                        "event": [None, original.event.public_id]})
    return delivery

