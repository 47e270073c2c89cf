"""Emails about events, one message per recipient, in the recipient's language
(``portal.languages``), each with a link to the page where the person chooses what they
receive.

Sent after the event's transaction commits, by a worker: ``send_event_emails`` claims the
event's email (a conditional UPDATE with a lease), sends, and marks it done; an email a
worker could not finish is sent again by the periodic dispatch once the lease runs out.
Budget alerts and invoices are emailed by billing itself; this module sends the others.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Operation
from notifications.delivery import ENDPOINT_DISABLED
from notifications.models import Event
from portal import languages
from portal import notifications as catalogue
from portal.models import Membership
from portal.permissions import Role

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger("notifications.emails")
EMAIL_LEASE = timedelta(minutes=10)
GIVE_UP_AFTER = timedelta(hours=24)
# Event types whose email this module sends (billing sends budget alerts and invoices).
EMAILED_HERE = frozenset({
    catalogue.EventType.CLUSTER_READY, catalogue.EventType.CLUSTER_DELETED,
    catalogue.EventType.OPERATION_SUCCEEDED, catalogue.EventType.OPERATION_FAILED,
    catalogue.EventType.VERSION_END_OF_LIFE_SOON, catalogue.EventType.MAINTENANCE_SCHEDULED,
    ENDPOINT_DISABLED,
    catalogue.EventType.CLUSTER_HIBERNATED, catalogue.EventType.CLUSTER_WOKEN,
    catalogue.EventType.CLUSTER_EXPIRING,
})


@dataclass(frozen=True)
class Message:
    subject: str
    lines: list[str]
    link: str


def _absolute(path: str) -> str:
    return settings.SITE_URL.rstrip("/") + path


def _kind_label(kind: str) -> str:
    try:
        return str(Operation.Kind(kind).label)
    except ValueError:
        return kind


def _error_label(error_class: str | None) -> str:
    try:
        return str(Operation.ErrorClass(error_class or "").label)
    except ValueError:
        return error_class or ""


def describe(event: Event) -> Message:
    """The subject, the sentences and the link of ``event``'s email."""
    data: dict[str, Any] = event.data
    tenant = event.tenant
    cluster = data.get("cluster") or {}
    facts = {"tenant": tenant.name, "cluster": cluster.get("name", ""),
             "version": cluster.get("version", "")}
    home = _absolute(reverse("tenant_home", kwargs={"tenant_slug": tenant.slug}))
    link = cluster.get("url") or home
    if event.type == catalogue.EventType.CLUSTER_READY:
        return Message(_("%(tenant)s: cluster %(cluster)s is ready") % facts, [
            _("The cluster %(cluster)s of %(tenant)s is ready (Kubernetes %(version)s).")
            % facts], link)
    if event.type == catalogue.EventType.CLUSTER_DELETED:
        return Message(_("%(tenant)s: cluster %(cluster)s was deleted") % facts, [
            _("The platform removed the cluster %(cluster)s of %(tenant)s and its volumes.")
            % facts], link)
    if event.type in (catalogue.EventType.OPERATION_SUCCEEDED,
                      catalogue.EventType.OPERATION_FAILED):
        operation = data.get("operation") or {}
        facts["kind"] = _kind_label(operation.get("kind", ""))
        if event.type == catalogue.EventType.OPERATION_SUCCEEDED:
            return Message(_("%(tenant)s: “%(kind)s” of %(cluster)s succeeded") % facts, [
                _("“%(kind)s” of the cluster %(cluster)s finished.") % facts], link)
        facts["error"] = _error_label(operation.get("error_class"))
        return Message(_("%(tenant)s: “%(kind)s” of %(cluster)s failed") % facts, [
            _("“%(kind)s” of the cluster %(cluster)s failed: %(error)s.") % facts,
            operation.get("error_message") or ""], link)
    if event.type == catalogue.EventType.VERSION_END_OF_LIFE_SOON:
        facts.update({"version": data.get("version", ""),
                      "date": data.get("end_of_life_on", "")})
        lines = [_("The cluster %(cluster)s of %(tenant)s runs Kubernetes %(version)s, which "
                   "reaches its end of life on %(date)s.") % facts]
        if data.get("upgrade_to"):
            lines.append(_("Upgrade it to %(target)s.") % {"target": data["upgrade_to"]})
        return Message(_("%(tenant)s: Kubernetes %(version)s of %(cluster)s nears its end of "
                         "life") % facts, lines, link)
    if event.type == catalogue.EventType.MAINTENANCE_SCHEDULED:
        facts.update({"from": data.get("from_version", ""), "to": data.get("to_version", ""),
                      "start": data.get("starts_at", ""), "end": data.get("ends_at", ""),
                      "zone": data.get("time_zone", "")})
        return Message(_("%(tenant)s: automatic upgrade of %(cluster)s to %(to)s scheduled")
                       % facts, [
            _("The cluster %(cluster)s of %(tenant)s will be upgraded from %(from)s to %(to)s "
              "in its maintenance window, starting at %(start)s (UTC; window until %(end)s, "
              "time zone %(zone)s).") % facts,
            data.get("what_rolls") or "",
            _("On the cluster's page you can upgrade now or postpone it once.")], link)
    if event.type == catalogue.EventType.CLUSTER_HIBERNATED:
        lines = [_("The cluster %(cluster)s of %(tenant)s hibernates: its workers stopped and "
                   "are no longer billed; its control plane keeps running.") % facts]
        if data.get("wakes_at"):
            lines.append(_("It wakes at %(at)s (UTC).") % {
                "at": str(data["wakes_at"]).replace("T", " ")[:16]})
        return Message(_("%(tenant)s: cluster %(cluster)s hibernates") % facts, lines, link)
    if event.type == catalogue.EventType.CLUSTER_WOKEN:
        sizes = ", ".join(f"{g.get('name')} {g.get('min_replicas')}–{g.get('max_replicas')}"
                          for g in data.get("node_groups") or [])
        return Message(_("%(tenant)s: cluster %(cluster)s woke up") % facts, [
            _("The cluster %(cluster)s of %(tenant)s is awake: its node groups are back to "
              "%(sizes)s nodes.") % {**facts, "sizes": sizes}], link)
    if event.type == catalogue.EventType.CLUSTER_EXPIRING:
        facts.update({"at": data.get("expires_at", ""), "hours": data.get("lead_hours", "")})
        return Message(_("%(tenant)s: cluster %(cluster)s expires in %(hours)s h") % facts, [
            _("The cluster %(cluster)s of %(tenant)s is deleted at its expiry, %(at)s (UTC), "
              "with its volumes.") % facts,
            _("Extend the expiry on the cluster's page to keep it.")], link)
    if event.type == ENDPOINT_DISABLED:
        endpoint = data.get("endpoint") or {}
        facts["url"] = endpoint.get("url", "")
        page = _absolute(reverse("webhooks:detail", kwargs={
            "tenant_slug": tenant.slug, "webhook_id": endpoint.get("id", 0)}))
        return Message(_("%(tenant)s: a webhook was disabled") % facts, [
            _("Every delivery to %(url)s failed for %(hours)s hours, so the portal stopped "
              "sending to it.") % {**facts, "hours": settings.WEBHOOK_DISABLE_AFTER_HOURS},
            _("Fix the receiver, send a test event, then enable the webhook again.")], page)
    return Message(event.type, [], home)


def recipients(event: Event) -> list[User]:
    """Who receives ``event``'s email: the event type's audience who did not turn it off; a
    disabled webhook goes to the tenant's owners and admins, always."""
    if event.type == ENDPOINT_DISABLED:
        return [m.user for m in Membership.objects.filter(
            tenant_id=event.tenant_id, role__in=(Role.OWNER, Role.ADMIN), user__is_active=True)
            .exclude(user__email="").select_related("user").order_by("user__email")]
    return catalogue.recipients(event.tenant_id, event.type)


def claim(event_id: Any, now: datetime) -> bool:
    return bool(
        Event.objects.filter(pk=event_id, email_due=True)
        .filter(Q(email_claimed_until__isnull=True) | Q(email_claimed_until__lt=now))
        .update(email_claimed_until=now + EMAIL_LEASE))


def send_event_emails(event_id: Any, *, now: datetime | None = None) -> int:
    """Email ``event`` to its recipients, once; returns how many messages went.

    Safe to repeat: an event whose email went, or that another worker is sending, is left
    alone. If sending fails midway, the lease runs out and the whole email is sent again.
    """
    now = now or timezone.now()
    if not claim(event_id, now):
        return 0
    event = Event.objects.select_related("tenant").get(pk=event_id)
    people = recipients(event)
    sent = 0
    if people:
        with get_connection() as connection:

            def send(group: list[str]) -> None:  # in the group's language (active here)
                nonlocal sent
                message = describe(event)
                body = render_to_string("notifications/email/event.txt", {
                    "message": message, "tenant": event.tenant,
                    "preferences_url": catalogue.preferences_url(),
                    "always": event.type == ENDPOINT_DISABLED})
                subject = settings.ACCOUNT_EMAIL_SUBJECT_PREFIX + message.subject
                for address in group:
                    EmailMessage(subject=subject, body=body, to=[address],
                                 connection=connection).send()
                    sent += 1

            languages.in_each_language([person.email for person in people], event.tenant, send)
    Event.objects.filter(pk=event.pk).update(email_due=False, email_claimed_until=None)
    logger.info("notification.email.sent", extra={"event_id": str(event.pk),
                                                  "type": event.type, "recipients": sent})
    return sent


def due(now: datetime, *, grace: timedelta = timedelta(seconds=30),
        limit: int = 200) -> list[Any]:
    """Events whose email is due for ``grace`` already and that nobody is sending; an email
    that could not go out for ``GIVE_UP_AFTER`` is news no more and is not tried again."""
    return list(
        Event.objects.filter(email_due=True, created_at__lte=now - grace,
                             created_at__gte=now - GIVE_UP_AFTER)
        .filter(Q(email_claimed_until__isnull=True) | Q(email_claimed_until__lt=now))
        .order_by("created_at").values_list("pk", flat=True)[:limit])
