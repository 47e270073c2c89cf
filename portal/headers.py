"""Caching headers for what a signed-in person receives."""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponseBase
from django.utils.cache import patch_cache_control

from portal.outage import DATABASE_ERRORS


class PrivateResponsesMiddleware:
    """Whatever a signed-in person receives is theirs alone: pages, htmx fragments, invoice
    PDFs, CSV exports and API answers are marked ``Cache-Control: private, no-store``, so
    neither a shared proxy nor the browser's disk cache keeps a copy (a shared computer's next
    user, the back button after signing out).

    A view that sets Cache-Control itself keeps its own choice. Static files never reach this
    middleware: WhiteNoise answers them first, with their long-lived caching headers.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        # Read after the view: signing in happens inside it, and the API's token
        # authentication sets request.user only there.
        if _signed_in(request) and not response.has_header("Cache-Control"):
            patch_cache_control(response, private=True, no_store=True)
        return response


def _signed_in(request: HttpRequest) -> bool:
    user = getattr(request, "user", None)
    try:
        return user is not None and user.is_authenticated
    except DATABASE_ERRORS:  # the user cannot be read (portal.outage): assume someone is
        return True
