"""The tenant's webhook pages, under ``/t/<tenant_slug>/settings/webhooks/``."""

from __future__ import annotations

from django.urls import path

from notifications import views

app_name = "webhooks"

webhook = "<int:webhook_id>/"
delivery = webhook + "deliveries/<int:delivery_id>/"

urlpatterns = [
    path("", views.webhook_list, name="list"),
    path("new/", views.webhook_create, name="create"),
    path(webhook, views.webhook_detail, name="detail"),
    path(webhook + "update/", views.webhook_update, name="update"),
    path(webhook + "rotate/", views.webhook_rotate, name="rotate"),
    path(webhook + "test/", views.webhook_test, name="test"),
    path(webhook + "delete/", views.webhook_delete, name="delete"),
    path(delivery, views.delivery_detail, name="delivery"),
    path(delivery + "redeliver/", views.delivery_redeliver, name="redeliver"),
]
