"""Every WebSocket route of the project, collected from the apps."""

from __future__ import annotations

from django.urls import path

from clusters.routing import websocket_urlpatterns as cluster_routes
from portal.consumers import StaffConsoleConsumer

websocket_urlpatterns = [
    *cluster_routes,
    path("ws/staff/", StaffConsoleConsumer.as_asgi()),
]
