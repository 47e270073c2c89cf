"""What a person can be told about, and whether they want an email for it.

The event types are the names emails and webhooks share (``cluster.ready``,
``operation.failed``…). Each says who in a tenant hears of it by email (the roles that may see
what it is about) and whether an email goes out when the person never chose: failures, money
and the lifecycle of a cluster are on by default, routine successes off. A person's own
choices are ``NotificationPreference`` rows, one per event type they changed; no row means the
default. Every notification email ends with a link to the page where they are changed
(``preferences_url``), the signed-in page itself: no credential travels in the link.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal.audit import Actor, record
from portal.models import Membership, NotificationPreference
from portal.permissions import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import User


class EventType(models.TextChoices):
    CLUSTER_READY = "cluster.ready", _("A cluster is ready")
    CLUSTER_DELETED = "cluster.deleted", _("A cluster was deleted")
    OPERATION_SUCCEEDED = "operation.succeeded", _("A change to a cluster succeeded")
    OPERATION_FAILED = "operation.failed", _("A change to a cluster failed")
    BUDGET_THRESHOLD = "budget.threshold", _("A budget threshold was reached")
    INVOICE_FINALIZED = "invoice.finalized", _("An invoice was issued")
    VERSION_END_OF_LIFE_SOON = ("version.end_of_life_soon",
                                _("A cluster's Kubernetes version nears its end of life"))
    MAINTENANCE_SCHEDULED = ("maintenance.scheduled",
                             _("An automatic upgrade is scheduled in a maintenance window"))
    CLUSTER_HIBERNATED = "cluster.hibernated", _("A cluster went to sleep")
    CLUSTER_WOKEN = "cluster.woken", _("A cluster woke up")
    CLUSTER_EXPIRING = "cluster.expiring", _("A cluster nears its expiry")


# Sent only to a webhook, when a person asks for a test delivery; never emailed.
TEST_EVENT = "webhook.test"

_CLUSTER_READERS = (Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER)
# Budget alerts and invoices keep going to whom billing has always sent them.
_BILLING_CONTACTS = (Role.OWNER, Role.BILLING)
# Those who choose a cluster's window and may postpone what runs in it.
_CLUSTER_STEWARDS = (Role.OWNER, Role.ADMIN)


@dataclass(frozen=True)
class EventKind:
    type: str
    label: Any  # lazy translation
    description: Any
    default_email: bool
    audience: tuple[str, ...]  # the roles that receive its email


_KINDS = (
    EventKind(EventType.CLUSTER_READY.value, EventType.CLUSTER_READY.label,
              _("A new cluster finished coming up, or a degraded or failed one runs again."),
              True, _CLUSTER_READERS),
    EventKind(EventType.CLUSTER_DELETED.value, EventType.CLUSTER_DELETED.label,
              _("The platform removed a cluster and its volumes."), True, _CLUSTER_READERS),
    EventKind(EventType.OPERATION_SUCCEEDED.value, EventType.OPERATION_SUCCEEDED.label,
              _("A creation, scaling, upgrade or other change finished."), False,
              _CLUSTER_READERS),
    EventKind(EventType.OPERATION_FAILED.value, EventType.OPERATION_FAILED.label,
              _("A change could not be carried out, with why (its error class and message)."), True,
              _CLUSTER_READERS),
    EventKind(EventType.BUDGET_THRESHOLD.value, EventType.BUDGET_THRESHOLD.label,
              _("The month's costs reached a threshold of the tenant's budget."), True,
              _BILLING_CONTACTS),
    EventKind(EventType.INVOICE_FINALIZED.value, EventType.INVOICE_FINALIZED.label,
              _("An invoice or credit note was issued (its PDF is attached)."), True,
              _BILLING_CONTACTS),
    EventKind(EventType.VERSION_END_OF_LIFE_SOON.value, EventType.VERSION_END_OF_LIFE_SOON.label,
              _("A cluster runs a Kubernetes version whose end of life is near."), True,
              _CLUSTER_READERS),
    EventKind(EventType.MAINTENANCE_SCHEDULED.value, EventType.MAINTENANCE_SCHEDULED.label,
              _("An automatic upgrade of a cluster was scheduled for its maintenance window: "
                "when it runs and what will roll."), True, _CLUSTER_STEWARDS),
    EventKind(EventType.CLUSTER_HIBERNATED.value, EventType.CLUSTER_HIBERNATED.label,
              _("A cluster hibernates: its workers stopped, its control plane keeps running."),
              False, _CLUSTER_READERS),
    EventKind(EventType.CLUSTER_WOKEN.value, EventType.CLUSTER_WOKEN.label,
              _("A hibernating cluster's node groups are back."), False, _CLUSTER_READERS),
    EventKind(EventType.CLUSTER_EXPIRING.value, EventType.CLUSTER_EXPIRING.label,
              _("A cluster is deleted at its expiry in 24 hours, then in 1 hour: extend it to "
                "keep it."), True, _CLUSTER_READERS),
)
CATALOGUE: Mapping[str, EventKind] = {kind.type: kind for kind in _KINDS}


def preferences_for(user: User) -> dict[str, bool]:
    """Every event type with whether ``user`` gets an email for it (their choice or the
    default)."""
    chosen = dict(NotificationPreference.objects.filter(user=user)
                  .values_list("event_type", "email"))
    return {t: chosen.get(t, kind.default_email) for t, kind in CATALOGUE.items()}


def opted_in(user_ids: Iterable[int], event_type: str) -> set[int]:
    """Those of ``user_ids`` who get an email for ``event_type``."""
    ids = set(user_ids)
    kind = CATALOGUE.get(event_type)
    if kind is None or not ids:
        return set()
    chosen = dict(NotificationPreference.objects.filter(user_id__in=ids, event_type=event_type)
                  .values_list("user_id", "email"))
    return {i for i in ids if chosen.get(i, kind.default_email)}


def recipients(tenant_id: int, event_type: str) -> list[User]:
    """The tenant's members an email about ``event_type`` goes to: the event's audience, with
    an address, who did not turn it off; by address."""
    kind = CATALOGUE.get(event_type)
    if kind is None:
        return []
    members = [m.user for m in Membership.objects.filter(
        tenant_id=tenant_id, role__in=kind.audience, user__is_active=True)
        .exclude(user__email="").select_related("user")]
    wanted = opted_in((u.pk for u in members), event_type)
    return sorted((u for u in members if u.pk in wanted), key=lambda u: u.email)


def recipient_emails(tenant_id: int, event_type: str) -> list[str]:
    return sorted({u.email for u in recipients(tenant_id, event_type)})


def preferences_url() -> str:
    """The absolute address of the page where a person changes what they receive."""
    return settings.SITE_URL.rstrip("/") + reverse("notification_preferences")


def do_save_preferences(actor: Actor, choices: Mapping[str, bool]) -> dict[str, bool]:
    """Store the actor's email choices (unknown event types are ignored); audited without a
    tenant, like the profile. Returns the preferences as they now stand."""
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    user = actor.person
    with transaction.atomic():
        before = preferences_for(user)
        now = timezone.now()
        for event_type, email in choices.items():
            if event_type in CATALOGUE:
                NotificationPreference.objects.update_or_create(
                    user=user, event_type=event_type,
                    defaults={"email": bool(email), "updated_at": now})
        after = preferences_for(user)
        changes = {t: [before[t], after[t]] for t in after if before[t] != after[t]}
        if changes:
            record(actor, "notification_preferences.update", user, changes=changes)
    return after
