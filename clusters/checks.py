"""System checks for the cluster settings (``manage.py check --deploy``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register


@register(Tags.security, deploy=True)
def check_platform_root_host(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """Without the platform's root host the portal cannot refuse a custom API host under it,
    such as another tenant's default ``kubernetes-<name>.<slug>.<root>``."""
    if settings.PLATFORM_ROOT_HOST.strip():
        return []
    return [Warning(
        "PLATFORM_ROOT_HOST is not set, so tenants may give a cluster an API host under the "
        "platform's domain, such as another tenant's default host.",
        hint="Set PLATFORM_ROOT_HOST to the platform's root domain (Cozystack's publishing "
             "host).",
        id="clusters.W001")]
