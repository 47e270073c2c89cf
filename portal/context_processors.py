from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.models import active_announcements
from portal.tenancy import user_tenants


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Tenant switcher, current tenant and announcements for the base layout."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    ctx = getattr(request, "tenant_ctx", None)
    context: dict[str, Any] = {
        "nav_tenants": user_tenants(user),
        "tenant_ctx": ctx,
        "current_tenant": ctx.tenant if ctx else None,
        "impersonating": bool(getattr(request, "impersonating", False)),
    }
    context["announcements"] = active_announcements(ctx.tenant if ctx else None)
    return context
