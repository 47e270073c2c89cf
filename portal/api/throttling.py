"""Request limits per token, per user and per address, answered with 429 and ``Retry-After``.

A user's tokens share the user's limit, and each token also has its own, so one runaway CI job
cannot starve the person's other tokens and browser session of their whole allowance.
Rates are read at request time from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` (set from the
environment: ``API_RATE_TOKEN``, ``API_RATE_USER``, ``API_RATE_ANON``).
An address is the client's as ``portal.proxies`` derives it from ``TRUSTED_PROXIES``, never
DRF's own reading of ``X-Forwarded-For`` (which a client can rotate).
"""

from __future__ import annotations

from typing import Any

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from portal.api.authentication import request_token
from portal.proxies import address_for_limits, request_client_address


class _ConfiguredRateThrottle(SimpleRateThrottle):
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
