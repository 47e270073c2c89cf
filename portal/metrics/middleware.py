"""Counts every HTTP request Django answers, by route name, method and status, with its time.

The route is the URL pattern's name (``clusters:detail``), never the path, so the number of
series stays bounded whatever clients ask for: static files are ``static``, a path that
matches no pattern (a 404, a redirect to HTTPS) is ``unmatched``. First in ``MIDDLEWARE``, so
the time includes every other middleware.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.http import HttpRequest, HttpResponse

from portal import metrics


def route_of(request: HttpRequest) -> str:
    match = getattr(request, "resolver_match", None)
    if match is not None and match.view_name:
        return str(match.view_name)
    if request.path.startswith(settings.STATIC_URL or "/static/"):
        return "static"
    return "unmatched"


class HttpMetricsMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponse | Awaitable[HttpResponse]:
        if self.is_async:
            return self.__acall__(request)
        started = time.perf_counter()
        response = self.get_response(request)
        metrics.http_request(route_of(request), request.method or "", response.status_code,
                             time.perf_counter() - started)
        return response

    async def __acall__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = await self.get_response(request)
        metrics.http_request(route_of(request), request.method or "", response.status_code,
                             time.perf_counter() - started)
        return response
