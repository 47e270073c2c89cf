"""allauth's account adapter: the client's address as ``portal.proxies`` derives it."""

from __future__ import annotations

from allauth.account.adapter import DefaultAccountAdapter
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest

from portal.proxies import request_client_address


class AccountAdapter(DefaultAccountAdapter):
    def get_client_ip(self, request: HttpRequest) -> str:
        """The address allauth's rate limits and notification emails use (``portal.proxies``)."""
        address = request_client_address(request)
        if not address:
            raise PermissionDenied("Unable to determine client IP address")
        return address

