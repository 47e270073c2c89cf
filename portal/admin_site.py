"""The staff admin: only staff who have two-factor authentication set up may enter."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse


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
        if user.is_authenticated and user.is_active and user.is_staff and not user_has_mfa(user):
            return render(request, "portal/admin_mfa_required.html", status=403)
        if user.is_authenticated and self.has_permission(request):
            return redirect(request.GET.get("next") or reverse("admin:index"))
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect(reverse("account_login") + "?" + urlencode({"next": next_url}))
