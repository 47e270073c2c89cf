"""WebSocket routes of the cluster pages (collected by ``portal.routing``)."""

from __future__ import annotations

from django.urls import path

from clusters.web import consumers

websocket_urlpatterns = [
    path("ws/t/<slug:tenant_slug>/clusters/", consumers.ClusterListConsumer.as_asgi()),
    path("ws/t/<slug:tenant_slug>/clusters/<slug:cluster_name>/",
         consumers.ClusterDetailConsumer.as_asgi()),
]
