"""Every WebSocket route of the project, collected from the modules ``WEBSOCKET_ROUTES`` names.

The foundation knows no app: like ``ROOT_URLCONF``, the settings name the route modules.
"""

from __future__ import annotations

from importlib import import_module

from django.conf import settings


def websocket_urlpatterns() -> list:
    """The routes of every module in ``settings.WEBSOCKET_ROUTES``, in that order."""
    return [route for name in settings.WEBSOCKET_ROUTES
            for route in import_module(name).websocket_urlpatterns]
