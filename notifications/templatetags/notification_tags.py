"""``{% load notification_tags %}``: the badges of the webhook pages (state to style here, not
in templates)."""

from __future__ import annotations

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _

from notifications.models import Delivery, DeliveryAttempt, WebhookEndpoint
from portal.notifications import CATALOGUE, TEST_EVENT
from portal.templatetags.portal_tags import Badge

register = template.Library()

_DELIVERY_STYLES = {Delivery.State.PENDING: "bg-blue-lt", Delivery.State.SUCCEEDED: "bg-green-lt",
                    Delivery.State.FAILED: "bg-red-lt"}


@register.filter
def delivery_badge(delivery: Delivery) -> Badge:
    return Badge(str(delivery.get_state_display()),
                 _DELIVERY_STYLES.get(Delivery.State(delivery.state), "bg-secondary-lt"))


@register.filter
def attempt_badge(attempt: DeliveryAttempt) -> Badge:
    style = "bg-green-lt" if attempt.outcome == DeliveryAttempt.Outcome.SUCCESS else "bg-red-lt"
    return Badge(str(attempt.get_outcome_display()), style)


@register.filter
def endpoint_badge(endpoint: WebhookEndpoint) -> Badge:
    """Disabled, paused by its breaker, failing, or working."""
    if not endpoint.enabled:
        return Badge(_("disabled"), "bg-secondary-lt")
    if endpoint.breaker_open(timezone.now()):
        return Badge(_("paused after failures"), "bg-orange-lt")
    if endpoint.failing_since is not None:
        return Badge(_("failing"), "bg-yellow-lt")
    return Badge(_("active"), "bg-green-lt")


@register.filter
def event_label(event_type: str) -> str:
    """An event type in words (``cluster.ready`` → "A cluster is ready")."""
    if event_type == TEST_EVENT:
        return _("Test event")
    kind = CATALOGUE.get(event_type)
    return str(kind.label) if kind else event_type
