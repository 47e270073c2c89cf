"""Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` by ``portal.api.urls``."""

from __future__ import annotations

from django.urls import path

from notifications.api import views

webhook = "webhooks/<apiid:webhook_id>/"
delivery = webhook + "deliveries/<apiid:delivery_id>/"

urlpatterns = [
    path("webhooks/", views.WebhookListView.as_view(), name="webhooks"),
    path(webhook, views.WebhookDetailView.as_view(), name="webhook"),
    path(webhook + "rotate-secret/", views.WebhookRotateView.as_view(),
         name="webhook_rotate_secret"),
    path(webhook + "test/", views.WebhookTestView.as_view(), name="webhook_test"),
    path(webhook + "deliveries/", views.DeliveryListView.as_view(), name="webhook_deliveries"),
    path(delivery, views.DeliveryDetailView.as_view(), name="webhook_delivery"),
    path(delivery + "redeliver/", views.RedeliverView.as_view(), name="webhook_redeliver"),
]
