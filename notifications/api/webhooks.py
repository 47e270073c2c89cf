"""The webhooks themselves in the OpenAPI document (its ``webhooks`` section): one entry per
event type, each with its JSON envelope ``{id, type, time, tenant, data}`` and the
``Portal-Signature`` header. Listed in ``SPECTACULAR_SETTINGS["WEBHOOKS"]``."""

from __future__ import annotations

from typing import Any

from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import OpenApiResponse, OpenApiWebhook, extend_schema
from rest_framework import serializers

from clusters.models import Cluster, Operation
from portal.notifications import CATALOGUE, TEST_EVENT, EventType

SIGNATURE_DESCRIPTION = _(
    "`t=<unix time>,v1=<hex>`: each `v1` is the hex HMAC-SHA256 of `<t>.<raw body>` keyed with "
    "the webhook's signing secret (the whole `whsec_…` string). Recompute it, compare in "
    "constant time, and refuse a `t` more than 5 minutes from your clock. During a secret "
    "rotation's overlap there is one `v1` per secret; accept the request if any matches.")


class ClusterDataSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("The cluster's name."))
    version = serializers.CharField(help_text=_("Its Kubernetes version, e.g. `v1.34`."))
    phase = serializers.ChoiceField(choices=Cluster.Phase.choices,
                                    help_text=_("Its phase when the event happened."))
    url = serializers.URLField(allow_null=True,
                               help_text=_("Its page in the portal; null once deleted."))


class ClusterPhaseDataSerializer(serializers.Serializer):
    cluster = ClusterDataSerializer(help_text=_("The cluster."))
    previous_phase = serializers.ChoiceField(choices=Cluster.Phase.choices,
                                             help_text=_("Its phase before."))


class OperationDataSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The operation's id in the API."))
    kind = serializers.ChoiceField(choices=Operation.Kind.choices, help_text=_("What changed."))
    state = serializers.ChoiceField(choices=[("succeeded", "succeeded"), ("failed", "failed")],
                                    help_text=_("How it ended."))
    error_class = serializers.ChoiceField(
        choices=[c for c in Operation.ErrorClass.choices if c[0]], allow_null=True,
        help_text=_("Why it failed, classified: `invalid_spec`, `quota`, "
                    "`platform_unavailable`, `platform_error`, `timeout` or `conflict`; null "
                    "when it succeeded."))
    error_message = serializers.CharField(allow_null=True,
                                          help_text=_("Why it failed, in words."))
    created_at = serializers.DateTimeField(help_text=_("When it was requested."))
    finished_at = serializers.DateTimeField(allow_null=True, help_text=_("When it ended."))


class OperationEventDataSerializer(serializers.Serializer):
    operation = OperationDataSerializer(help_text=_("The operation."))
    cluster = ClusterDataSerializer(help_text=_("Its cluster."))


class BudgetDataSerializer(serializers.Serializer):
    threshold_percent = serializers.IntegerField(help_text=_("The threshold reached, in %."))
    month = serializers.CharField(help_text=_("The month, `YYYY-MM`."))
    budget_amount = serializers.DecimalField(max_digits=14, decimal_places=2,
                                             help_text=_("The monthly budget."))
    spent = serializers.DecimalField(max_digits=14, decimal_places=2,
                                     help_text=_("Spent this month when it was reached."))
    currency = serializers.CharField(help_text=_("Always `CHF`; amounts before VAT."))


class InvoiceDataSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The invoice's id in the API."))
    number = serializers.CharField(help_text=_("Its number."))
    kind = serializers.ChoiceField(choices=[("invoice", "invoice"),
                                            ("credit_note", "credit_note")],
                                   help_text=_("An invoice or a credit note."))
    month = serializers.CharField(help_text=_("The month billed, `YYYY-MM`."))
    currency = serializers.CharField(help_text=_("`CHF`."))
    subtotal = serializers.DecimalField(max_digits=14, decimal_places=2,
                                        help_text=_("Before VAT."))
    vat_amount = serializers.DecimalField(max_digits=14, decimal_places=2,
                                          help_text=_("The VAT."))
    total = serializers.DecimalField(max_digits=14, decimal_places=2,
                                     help_text=_("What is due."))
    issued_at = serializers.DateTimeField(help_text=_("When it was issued."))
    credits = serializers.CharField(allow_null=True,
                                    help_text=_("For a credit note, the invoice it cancels."))


class InvoiceEventDataSerializer(serializers.Serializer):
    invoice = InvoiceDataSerializer(help_text=_("The invoice."))


class EndOfLifeDataSerializer(serializers.Serializer):
    cluster = ClusterDataSerializer(help_text=_("The cluster."))
    version = serializers.CharField(help_text=_("The Kubernetes version it runs."))
    end_of_life_on = serializers.DateField(help_text=_("The version's end of life."))
    days_left = serializers.IntegerField(
        help_text=_("Days until then (0 or less: already past)."))
    upgrade_to = serializers.CharField(allow_null=True,
                                       help_text=_("The version to upgrade to, if any."))


class MaintenanceDataSerializer(serializers.Serializer):
    cluster = ClusterDataSerializer(help_text=_("The cluster."))
    from_version = serializers.CharField(help_text=_("The Kubernetes version it runs."))
    to_version = serializers.CharField(help_text=_("The version it will be upgraded to."))
    starts_at = serializers.DateTimeField(help_text=_("When the upgrade starts (UTC)."))
    ends_at = serializers.DateTimeField(help_text=_("When its maintenance window closes."))
    time_zone = serializers.CharField(help_text=_("The window's IANA time zone."))
    what_rolls = serializers.CharField(help_text=_("What will roll, in words."))


class RestoredGroupSerializer(serializers.Serializer):
    name = serializers.CharField(help_text=_("The node group."))
    min_replicas = serializers.IntegerField(help_text=_("The minimum nodes waking restores."))
    max_replicas = serializers.IntegerField(help_text=_("The maximum nodes waking restores."))


class HibernationDataSerializer(serializers.Serializer):
    cluster = ClusterDataSerializer(help_text=_("The cluster."))
    reason = serializers.ChoiceField(choices=[("manual", "manual"), ("schedule", "schedule")],
                                     help_text=_("Why it slept: a person, or its schedule."))
    hibernating_since = serializers.DateTimeField(help_text=_("When it went to sleep."))
    woken_at = serializers.DateTimeField(allow_null=True,
                                         help_text=_("When it woke; null while it sleeps."))
    wakes_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When its schedule wakes it; null if only a person does."))
    node_groups = RestoredGroupSerializer(many=True, help_text=_(
        "The node groups with the limits waking restores."))


class ExpiringDataSerializer(serializers.Serializer):
    cluster = ClusterDataSerializer(help_text=_("The cluster."))
    expires_at = serializers.DateTimeField(help_text=_("When the portal deletes it (UTC)."))
    lead_hours = serializers.IntegerField(help_text=_("Hours left when sent: 24 or 1."))


class TestDataSerializer(serializers.Serializer):
    message = serializers.CharField(help_text=_("A sentence saying it is a test."))


DATA: dict[str, tuple[type[serializers.Serializer], str]] = {
    EventType.CLUSTER_READY: (ClusterPhaseDataSerializer, "ClusterReady"),
    EventType.CLUSTER_DELETED: (ClusterPhaseDataSerializer, "ClusterDeleted"),
    EventType.OPERATION_SUCCEEDED: (OperationEventDataSerializer, "OperationSucceeded"),
    EventType.OPERATION_FAILED: (OperationEventDataSerializer, "OperationFailed"),
    EventType.BUDGET_THRESHOLD: (BudgetDataSerializer, "BudgetThreshold"),
    EventType.INVOICE_FINALIZED: (InvoiceEventDataSerializer, "InvoiceFinalized"),
    EventType.VERSION_END_OF_LIFE_SOON: (EndOfLifeDataSerializer, "VersionEndOfLifeSoon"),
    EventType.MAINTENANCE_SCHEDULED: (MaintenanceDataSerializer, "MaintenanceScheduled"),
    EventType.CLUSTER_HIBERNATED: (HibernationDataSerializer, "ClusterHibernated"),
    EventType.CLUSTER_WOKEN: (HibernationDataSerializer, "ClusterWoken"),
    EventType.CLUSTER_EXPIRING: (ExpiringDataSerializer, "ClusterExpiring"),
    TEST_EVENT: (TestDataSerializer, "WebhookTest"),
}


def envelope(event_type: str, data: type[serializers.Serializer], name: str) -> type:
    """The envelope serializer of one event type (its component is ``<name>Event``)."""
    fields: dict[str, Any] = {
        "id": serializers.CharField(help_text=_(
            "The event's id (`evt_…`): the same in every delivery of this event, so a receiver "
            "can ignore repeats.")),
        "type": serializers.ChoiceField(choices=[(str(event_type), str(event_type))],
                                        help_text=_("The event type.")),
        "time": serializers.DateTimeField(help_text=_("When it happened (UTC).")),
        "tenant": serializers.CharField(help_text=_("The tenant's slug.")),
        "data": data(help_text=_("What happened; its shape depends on the type.")),
    }
    return type(f"{name}EventSerializer", (serializers.Serializer,), fields)


def _webhook(event_type: str) -> OpenApiWebhook:
    data, name = DATA[event_type]
    kind = CATALOGUE.get(event_type)
    summary = kind.label if kind else _("A test event")
    description = kind.description if kind else _("Sent by “send test event”.")
    return OpenApiWebhook(name=str(event_type), decorator=extend_schema(
        summary=summary, tags=["Webhook events"],
        description=format_lazy("{}\n\n`Portal-Signature`: {}", description,
                                SIGNATURE_DESCRIPTION),
        request=envelope(event_type, data, name),
        responses={200: OpenApiResponse(description=_(
            "Any 2xx within 10 seconds acknowledges the event. Anything else, a redirect or "
            "no answer is retried with backoff for 24 hours."))}))


# Each by name, as SPECTACULAR_SETTINGS["WEBHOOKS"] lists them.
CLUSTER_READY = _webhook(EventType.CLUSTER_READY)
CLUSTER_DELETED = _webhook(EventType.CLUSTER_DELETED)
OPERATION_SUCCEEDED = _webhook(EventType.OPERATION_SUCCEEDED)
OPERATION_FAILED = _webhook(EventType.OPERATION_FAILED)
BUDGET_THRESHOLD = _webhook(EventType.BUDGET_THRESHOLD)
INVOICE_FINALIZED = _webhook(EventType.INVOICE_FINALIZED)
VERSION_END_OF_LIFE_SOON = _webhook(EventType.VERSION_END_OF_LIFE_SOON)
MAINTENANCE_SCHEDULED = _webhook(EventType.MAINTENANCE_SCHEDULED)
CLUSTER_EXPIRING = _webhook(EventType.CLUSTER_EXPIRING)
WEBHOOK_TEST = _webhook(TEST_EVENT)
CLUSTER_HIBERNATED = _webhook(EventType.CLUSTER_HIBERNATED)
CLUSTER_WOKEN = _webhook(EventType.CLUSTER_WOKEN)
WEBHOOK_NAMES = ("CLUSTER_READY", "CLUSTER_DELETED", "OPERATION_SUCCEEDED", "OPERATION_FAILED",
                 "BUDGET_THRESHOLD", "INVOICE_FINALIZED", "VERSION_END_OF_LIFE_SOON",
                 "MAINTENANCE_SCHEDULED", "WEBHOOK_TEST", "CLUSTER_HIBERNATED", "CLUSTER_WOKEN",
                 "CLUSTER_EXPIRING")
