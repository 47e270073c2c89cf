"""The staff admin: only staff who have two-factor authentication set up may enter."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme


def user_has_mfa(user) -> bool:
    from allauth.mfa.models import Authenticator

    return Authenticator.objects.filter(user=user, type=Authenticator.Type.TOTP).exists()


class PortalAdminSite(admin.AdminSite):
    site_header = "Portal administration"
    site_title = "Portal admin"
    index_title = "Operations"

    def has_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and user.is_staff and user_has_mfa(user))

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """Sign-in goes through the portal's own login (with its MFA step), never a side door."""
        user = request.user
        next_url = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            next_url = reverse("admin:index")
        if user.is_authenticated:
            if self.has_permission(request):
                return redirect(next_url)
            if user.is_active and user.is_staff:
                return render(request, "portal/admin_mfa_required.html", status=403)
            # Signed in but not staff: sending them to the login page would loop back here.
            raise PermissionDenied
        return redirect(reverse("account_login") + "?" + urlencode({"next": next_url}))
