"""Webhooks over the API: list, create, read, change, delete, rotate the secret, send a test
event, read the delivery log, send a delivery again. Owners and admins only; every change is
an action of ``notifications.actions`` (audited)."""

from __future__ import annotations

from typing import Any

from django.utils.translation import gettext as _
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.request import Request
from rest_framework.response import Response

from notifications import actions, queries
from notifications.api import serializers as s
from notifications.models import Delivery, WebhookEndpoint
from portal.api.base import ApiView
from portal.api.problems import ApiProblem
from portal.permissions import Perm

TAG = "Webhooks"
WRITES_422 = {"POST": (422,), "PATCH": (422,)}
CREATE_EXAMPLE = {"target_url": "https://hooks.example.com/portal",
                  "event_types": ["cluster.ready", "operation.failed"],
                  "description": "CI pipeline"}


class WebhookApiView(ApiView):
    perms = {"GET": Perm.WEBHOOKS_VIEW, "POST": Perm.WEBHOOKS_MANAGE,
             "PATCH": Perm.WEBHOOKS_MANAGE, "DELETE": Perm.WEBHOOKS_MANAGE}
    problem_statuses = WRITES_422

    def endpoint(self, webhook_id: int) -> WebhookEndpoint:
        return actions.access_endpoint(self.tenant_ctx, webhook_id)

    def webhook(self, endpoint: WebhookEndpoint, *, secret: str = "",
                status: int = 200) -> Response:
        context = {**self.serializer_context(), "secret": secret}
        serializer = s.WebhookSecretSerializer if secret else s.WebhookSerializer
        data = serializer(endpoint, context=context).data
        headers = {"Location": data["url"]} if status == 201 else None
        return Response(data, status=status, headers=headers)

    def delivery(self, delivery: Delivery, status: int = 200) -> Response:
        delivery = Delivery.objects.select_related("event__tenant", "endpoint").get(
            pk=delivery.pk)
        data = s.DeliverySerializer(delivery, context=self.serializer_context()).data
        return Response(data, status=status,
                        headers={"Location": data["url"]} if status == 202 else None)


class WebhookListView(WebhookApiView):
    cursor_ordering = "id"
    idempotent_writes = False  # the answer holds the secret: never stored for a replay

    @extend_schema(operation_id="webhooks_list", tags=[TAG], summary="List webhooks",
                   responses=s.WebhookSerializer(many=True),
                   description="The tenant's webhooks, oldest first (owners and admins).")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.page(queries.endpoints(self.tenant_ctx), s.WebhookSerializer)

    @extend_schema(
        operation_id="webhooks_create", tags=[TAG], summary="Add a webhook",
        request=s.WebhookCreateSerializer, responses={201: s.WebhookSecretSerializer},
        examples=[OpenApiExample("two events", value=CREATE_EXAMPLE, request_only=True)],
        description="The answer carries the signing secret, once: store it where the receiver "
                    "can read it. The URL must be https:// on the public internet; it is "
                    "checked again, resolved, at every delivery. No `Idempotency-Key` replay "
                    "(the answer is a secret).")
    def post(self, request: Request, tenant_slug: str) -> Response:
        data = self.parse(s.WebhookCreateSerializer)
        created = actions.do_create_webhook(
            self.actor, self.tenant_ctx, url=data["target_url"],
            event_types=data["event_types"], description=data.get("description", ""),
            enabled=data.get("enabled", True))
        return self.webhook(created.endpoint, secret=created.secret, status=201)

    def rewrite_error_path(self, tokens: Any, code: str | None) -> Any:
        return _target_url(tokens)


def _target_url(tokens: Any) -> Any:
    """The actions name the address ``url``; the API calls it ``target_url``."""
    if tokens and tokens[0] == "url":
        return ["target_url", *tokens[1:]]
    return tokens


class WebhookDetailView(WebhookApiView):
    @extend_schema(operation_id="webhooks_retrieve", tags=[TAG], summary="Read a webhook",
                   responses=s.WebhookSerializer)
    def get(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        return self.webhook(self.endpoint(webhook_id))

    @extend_schema(
        operation_id="webhooks_update", tags=[TAG], summary="Change a webhook",
        request=s.WebhookUpdateSerializer, responses={200: s.WebhookSerializer},
        examples=[OpenApiExample("enable again", value={"enabled": True}, request_only=True)],
        description="Changes only what is sent. Enabling a disabled webhook forgets its past "
                    "failures.")
    def patch(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        data = self.parse(s.WebhookUpdateSerializer)
        if not data:
            raise ApiProblem("invalid-request", _("Send at least one setting to change."))
        endpoint = actions.do_update_webhook(
            self.actor, self.tenant_ctx, webhook_id, url=data.get("target_url"),
            event_types=data.get("event_types"), description=data.get("description"),
            enabled=data.get("enabled"))
        return self.webhook(endpoint)

    @extend_schema(operation_id="webhooks_destroy", tags=[TAG], summary="Remove a webhook",
                   request=None, responses={204: None},
                   description="Removes it with its delivery log; pending deliveries are not "
                               "sent.")
    def delete(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        actions.do_delete_webhook(self.actor, self.tenant_ctx, webhook_id)
        return Response(status=204)

    def rewrite_error_path(self, tokens: Any, code: str | None) -> Any:
        return _target_url(tokens)


class WebhookRotateView(WebhookApiView):
    idempotent_writes = False  # the answer holds the secret

    @extend_schema(
        operation_id="webhooks_rotate_secret", tags=[TAG], summary="Rotate the signing secret",
        request=s.RotateSerializer, responses={200: s.WebhookSecretSerializer},
        examples=[OpenApiExample("a day of overlap", value={"overlap_hours": 24},
                                 request_only=True)],
        description="A new secret, in this answer only. During the overlap both secrets sign "
                    "(two `v1` signatures per request), so the receiver can switch without "
                    "losing a delivery.")
    def post(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        data = self.parse(s.RotateSerializer)
        rotated = actions.do_rotate_secret(self.actor, self.tenant_ctx, webhook_id,
                                           overlap_hours=int(data["overlap_hours"]))
        return self.webhook(rotated.endpoint, secret=rotated.secret)


class WebhookTestView(WebhookApiView):
    @extend_schema(
        operation_id="webhooks_test", tags=[TAG], summary="Send a test event",
        request=None, responses={202: s.DeliverySerializer},
        description="Sends a `webhook.test` event now, once (also to a disabled webhook). "
                    "Answers with the delivery; read it to see the outcome.")
    def post(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        return self.delivery(actions.do_send_test(self.actor, self.tenant_ctx, webhook_id),
                             status=202)


class DeliveryListView(WebhookApiView):
    cursor_ordering = ("-created_at", "-id")

    @extend_schema(operation_id="webhook_deliveries_list", tags=[TAG],
                   summary="List a webhook's deliveries", responses=s.DeliverySerializer(many=True),
                   description="Newest first; kept 30 days.")
    def get(self, request: Request, tenant_slug: str, webhook_id: int) -> Response:
        return self.page(queries.deliveries(self.endpoint(webhook_id)), s.DeliverySerializer)


class DeliveryDetailView(WebhookApiView):
    @extend_schema(operation_id="webhook_deliveries_retrieve", tags=[TAG],
                   summary="Read a delivery", responses=s.DeliveryDetailSerializer,
                   description="With every attempt (status, latency, the first KB of the "
                               "answer) and the body it sends.")
    def get(self, request: Request, tenant_slug: str, webhook_id: int,
            delivery_id: int) -> Response:
        delivery = actions.access_delivery(self.tenant_ctx, webhook_id, delivery_id)
        return Response(s.DeliveryDetailSerializer(
            delivery, context=self.serializer_context()).data)


class RedeliverView(WebhookApiView):
    @extend_schema(
        operation_id="webhook_deliveries_redeliver", tags=[TAG], summary="Send a delivery again",
        request=None, responses={202: s.DeliverySerializer},
        description="Sends the same event (same id) to the webhook again, now, once, as a new "
                    "delivery. 409 while the delivery is still being attempted.")
    def post(self, request: Request, tenant_slug: str, webhook_id: int,
             delivery_id: int) -> Response:
        return self.delivery(actions.do_redeliver(self.actor, self.tenant_ctx, webhook_id,
                                                  delivery_id), status=202)
