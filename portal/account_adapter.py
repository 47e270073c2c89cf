"""allauth's account adapter: the client's address, failed-login counters per source, and
the product's name in email subjects."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from portal import branding
from portal.proxies import address_for_limits, request_client_address


class AccountAdapter(DefaultAccountAdapter):
    def format_email_subject(self, subject: str) -> str:
        """Sign-in codes, invitations and resets carry the product's name (the branding)."""
        return f"[{branding.current().name}] {subject}"

    def get_client_ip(self, request: HttpRequest) -> str:
        """The address allauth's rate limits and notification emails use (``portal.proxies``)."""
        address = request_client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine client IP address")
        return address

    def _get_login_attempts_cache_key(self, request: HttpRequest, **credentials: Any) -> str:
        # The per-key limit of ACCOUNT_RATE_LIMITS["login_failed"] counts failures for one
        # account from one address: someone who knows an address and fails on purpose locks
        # themselves out, not the owner signing in from elsewhere. The per-address limit of the
        # same setting still caps guessing across accounts.
        account = super()._get_login_attempts_cache_key(request, **credentials)
        return f"{account}:{address_for_limits(self.get_client_ip(request))}"
