"""allauth's account adapter: the client's address, failed-login counters per source, its
emails in the recipient's language and the product's name in their subjects."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest
from django.utils import translation

from portal import branding, languages
from portal.proxies import address_for_limits, request_client_address


class AccountAdapter(DefaultAccountAdapter):
    def send_mail(self, template_prefix: str, email: str, context: dict[str, Any]) -> None:
        """allauth's own emails (address confirmation, password reset, security notices) in
        the language the account with that address chose; else in the page's language."""
        chosen = languages.chosen_language(email)
        if chosen is None:
            return super().send_mail(template_prefix, email, context)
        with translation.override(chosen):
            return super().send_mail(template_prefix, email, context)

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
