"""The few htmx conventions every view follows."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django_htmx.http import HttpResponseClientRedirect


def htmx_partial(request: HttpRequest) -> bool:
    """True for an htmx request that wants a region, not a whole page (boosted ones want pages)."""
    htmx = getattr(request, "htmx", None)
    if not htmx:
        return False
    return not htmx.boosted


def render_region(request: HttpRequest, template: str, region: str, context: dict[str, Any],
                  *, status: int = 200) -> HttpResponse:
    """The page for a normal request, only ``template#region`` for an htmx one."""
    name = f"{template}#{region}" if htmx_partial(request) else template
    return render(request, name, context, status=status)


def render_invalid(request: HttpRequest, template: str, region: str,
                   context: dict[str, Any]) -> HttpResponse:
    """An invalid form: 422, swapped in place by htmx, every error beside its field."""
    return render_region(request, template, region, context, status=422)


def redirect_after_post(request: HttpRequest, to: str, **kwargs: Any) -> HttpResponse:
    """After a successful POST: a plain redirect, or for htmx a client-side navigation."""
    if getattr(request, "htmx", False):
        return HttpResponseClientRedirect(resolve_url(to, **kwargs))
    return redirect(to, **kwargs)
