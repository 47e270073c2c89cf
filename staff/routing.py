"""WebSocket route of the operations console (collected by ``portal.routing``)."""

from __future__ import annotations

from django.urls import path

from staff.consumers import StaffConsoleConsumer

websocket_urlpatterns = [
    path("ws/staff/", StaffConsoleConsumer.as_asgi()),
]
