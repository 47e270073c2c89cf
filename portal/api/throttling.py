"""Request limits per token, per user and per address, answered with 429 and ``Retry-After``.

A user's tokens share the user's limit, and each token also has its own, so one runaway CI job
cannot starve the person's other tokens and browser session of their whole allowance.
Rates are read at request time from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (set from the
environment: ``API_RATE_TOKEN``, ``API_RATE_USER``, ``API_RATE_ANON``).
An address is the client's as ``portal.proxies`` derives it from ``TRUSTED_PROXIES``, never
DRF's own reading of ``X-Forwarded-For`` (which a client can rotate).

The counts live in the shared cache (Redis). While it is out of reach
(``portal.cache.cache_reachable``), each process counts on its own, in memory
(``FALLBACK_CACHE``, bounded): the limits still hold per process, and a request is never
refused, nor failed, because the counter could not be read.
"""

from __future__ import annotations

from typing import Any

from django.core.cache import cache as default_cache
from django.core.cache.backends.locmem import LocMemCache
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from portal.api.authentication import request_token
from portal.cache import OUTAGE_ERRORS, cache_reachable
from portal.proxies import address_for_limits, request_client_address

# The per-process counters used while the shared cache is out of reach: at most this many
# clients are tracked (LocMemCache culls a third of them when full).
FALLBACK_CACHE = LocMemCache("portal.api.throttling", {"OPTIONS": {"MAX_ENTRIES": 10_000}})


class _ConfiguredRateThrottle(SimpleRateThrottle):
    def allow_request(self, request: Any, view: Any) -> bool:
        self.cache = default_cache if cache_reachable(default_cache) else FALLBACK_CACHE
        try:
            return super().allow_request(request, view)
        except OUTAGE_ERRORS:  # a cache backend that raises instead of missing
            self.cache = FALLBACK_CACHE
            return super().allow_request(request, view)

    def get_rate(self) -> str | None:
        # Read on each request, not at import: settings overrides (tests, benchmarks) apply.
        if self.scope is None:
            return None
        return api_settings.DEFAULT_THROTTLE_RATES.get(  # type: ignore[return-value]  # rates are "N/period" text; the stubs say numbers
            self.scope)

    def get_ident(self, request: Any) -> str:
        return address_for_limits(request_client_address(request) or "")


class TokenRateThrottle(_ConfiguredRateThrottle):
    scope = "api_token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        token = request_token(request)
        if token is None:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token.pk}


class UserRateThrottle(_ConfiguredRateThrottle):
    scope = "api_user"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonRateThrottle(_ConfiguredRateThrottle):
    scope = "api_anon"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}
