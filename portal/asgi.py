"""ASGI entry point: HTTP through Django, WebSockets through Channels.

``/metrics`` (``portal.metrics.exposition``) is answered in front of everything else.
Every connection's client address is first derived from ``TRUSTED_PROXIES``
(``portal.proxies``); run the server with its own proxy handling off (uvicorn
``--no-proxy-headers``), so that setting is the only one that decides.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
django_asgi_app = get_asgi_application()

# Consumers import models: only after Django is set up.
from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from portal import metrics  # noqa: E402
from portal.metrics.exposition import MetricsEndpoint  # noqa: E402
from portal.proxies import TrustedProxyMiddleware  # noqa: E402
from portal.routing import websocket_urlpatterns  # noqa: E402

metrics.set_role("web")
# /metrics is answered before Django (bearer token, no host or HTTPS redirect checks).
application = TrustedProxyMiddleware(MetricsEndpoint(ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns()))
        ),
    }
)))
