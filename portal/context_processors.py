from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from portal import branding
from portal.models import active_announcements
from portal.tenancy import user_tenants


def navigation(request: HttpRequest) -> dict[str, Any]:
    """Tenant switcher, current tenant and announcements for the base layout.

    A tenant page has already loaded the switcher's memberships (``tenant_view``); elsewhere
    they, like the announcements, are only read if the template shows them (a region answered
    to htmx does not).
    """
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    ctx = getattr(request, "tenant_ctx", None)
    tenants = getattr(request, "user_tenants", None)
    return {
        "nav_tenants": tenants if tenants is not None else SimpleLazyObject(
            lambda: user_tenants(user)),
        "tenant_ctx": ctx,
        "current_tenant": ctx.tenant if ctx else None,
        "impersonating": bool(getattr(request, "impersonating", False)),
        "announcements": SimpleLazyObject(
            lambda: active_announcements(ctx.tenant if ctx else None)),
    }


def brand(request: HttpRequest) -> dict[str, Any]:
    """The portal's branding (name, logo, colours, support, legal footer) for every page."""
    return {"brand": SimpleLazyObject(branding.current)}
