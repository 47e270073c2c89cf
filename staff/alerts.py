"""Telling staff about failures that are theirs to act on.

A tenant's page says "staff are notified" for platform-side failures (unreachable platform,
platform error, no convergence in time); this is what makes that true: every active staff
member gets one email per failed operation, and open operations consoles refresh at once.
"""

from __future__ import annotations

import logging

from django.contrib.auth import get_user_model
from django.core.mail import send_mail
from django.urls import reverse
from django.utils.translation import gettext as _

from clusters.events import ClusterPhaseChanged, OperationFinished, WakeFailing
from clusters.models import Cluster, ClusterEvent, Hibernation, Operation
from portal import languages
from staff.views import notify_staff

logger = logging.getLogger("staff.alerts")

STAFF_ERROR_CLASSES = frozenset({
    Operation.ErrorClass.PLATFORM_UNAVAILABLE,
    Operation.ErrorClass.PLATFORM_ERROR,
    Operation.ErrorClass.TIMEOUT,
})


def on_operation_finished(event: OperationFinished) -> None:
    """Alert staff once an operation's failure is committed: platform-side classes only, and
    not when a person ended it (staff taking over a deletion already know)."""
    operation = event.operation
    if operation.state == Operation.State.FAILED and operation.error_class in STAFF_ERROR_CLASSES \
            and not event.actor_label:
        _alert(operation.pk)


def _alert(operation_id: int) -> None:
    notify_staff()
    operation = (Operation.objects.select_related("cluster__tenant")
                 .filter(pk=operation_id).first())
    if operation is None:
        return
    recipients = list(get_user_model().objects.filter(is_staff=True, is_active=True)
                      .exclude(email="").values_list("email", flat=True))
    if not recipients:
        return
    cluster = operation.cluster

    def send(group: list[str]) -> None:
        facts = {"error": operation.get_error_class_display(),
                 "kind": operation.get_kind_display(),
                 "tenant": cluster.tenant.slug, "cluster": cluster.name}
        subject = _("[Portal] %(error)s: %(kind)s of %(tenant)s/%(cluster)s") % facts
        body = "\n".join([
            _("Tenant: %(name)s (%(slug)s)") % {"name": cluster.tenant.name,
                                                "slug": cluster.tenant.slug},
            _("Cluster: %(name)s") % {"name": cluster.name},
            _("Operation: %(kind)s #%(id)s") % {"kind": facts["kind"], "id": operation.pk},
            _("Error class: %(error)s") % facts,
            _("Message: %(message)s") % {"message": operation.error_message},
            "",
            _("Operations console: %(path)s") % {"path": reverse("staff_console")},
        ])
        send_mail(subject, body, None, group)

    try:
        languages.in_each_language(recipients, None, send)  # each staff member's language
    except Exception:  # an alert that cannot be sent must not undo the failure it reports
        logger.exception("operation.alert.failed", extra={"operation_id": operation_id})


def on_wake_failing(event: WakeFailing) -> None:
    """A hibernating cluster did not wake after its retries (once per hibernation, after
    commit): every active staff member gets an email; the portal keeps retrying."""
    notify_staff()
    held = (Hibernation.objects.select_related("cluster__tenant", "wake_operation")
            .filter(pk=event.hibernation.pk).first())
    if held is None:
        return
    recipients = list(get_user_model().objects.filter(is_staff=True, is_active=True)
                      .exclude(email="").values_list("email", flat=True))
    if not recipients:
        return
    cluster = held.cluster
    operation = held.wake_operation

    def send(group: list[str]) -> None:
        facts = {"tenant": cluster.tenant.slug, "cluster": cluster.name,
                 "attempts": event.attempts}
        subject = _("[Portal] Wake failed %(attempts)s times: %(tenant)s/%(cluster)s") % facts
        body = "\n".join([
            _("Tenant: %(name)s (%(slug)s)") % {"name": cluster.tenant.name,
                                                "slug": cluster.tenant.slug},
            _("Cluster: %(name)s") % {"name": cluster.name},
            _("The cluster hibernates and its wake failed %(attempts)s times; the portal "
              "keeps trying every few minutes.") % facts,
            _("Last error: %(message)s") % {
                "message": operation.error_message if operation is not None else "-"},
            "",
            _("Operations console: %(path)s") % {"path": reverse("staff_console")},
        ])
        send_mail(subject, body, None, group)

    try:
        languages.in_each_language(recipients, None, send)
    except Exception:  # an alert that cannot be sent must not stop the retries
        logger.exception("hibernation.wake_alert.failed", extra={"hibernation_id": held.pk})


def on_cluster_vanished(event: ClusterPhaseChanged) -> None:
    """Alert staff once a cluster the platform lost (gone without a deletion from the portal,
    the watcher's "Vanished") is recorded as deleted: its tenant's page says staff know."""
    cluster = event.cluster
    if cluster.phase != Cluster.Phase.DELETED or not ClusterEvent.objects.filter(
            cluster_id=cluster.pk, reason="Vanished").exists():
        return
    notify_staff()
    recipients = list(get_user_model().objects.filter(is_staff=True, is_active=True)
                      .exclude(email="").values_list("email", flat=True))
    if not recipients:
        return
    tenant = Cluster.objects.select_related("tenant").get(pk=cluster.pk).tenant

    def send(group: list[str]) -> None:
        facts = {"tenant": tenant.slug, "cluster": cluster.name}
        send_mail(_("[Portal] Cluster %(tenant)s/%(cluster)s disappeared from the platform")
                  % facts, "\n".join([
                      _("Tenant: %(name)s (%(slug)s)") % {"name": tenant.name,
                                                          "slug": tenant.slug},
                      _("Cluster: %(name)s") % {"name": cluster.name},
                      _("The cluster disappeared from the platform without a deletion from "
                        "the portal."),
                      "", _("Operations console: %(path)s") % {"path": reverse("staff_console")},
                  ]), None, group)

    try:
        languages.in_each_language(recipients, None, send)
    except Exception:  # an alert that cannot be sent must not undo what it reports
        logger.exception("cluster.vanished.alert.failed", extra={"cluster_id": cluster.pk})
