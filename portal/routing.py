"""Every WebSocket route of the project, collected from the apps."""

from __future__ import annotations

from clusters.routing import websocket_urlpatterns as cluster_routes

websocket_urlpatterns = [*cluster_routes]
