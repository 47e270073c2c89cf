from __future__ import annotations

from django.contrib import admin
from django.urls import URLPattern, URLResolver, include, path

from portal import branding_views, health, views

tenant_patterns: list[URLPattern | URLResolver] = [
    path("", views.tenant_home, name="tenant_home"),
    path("settings/", views.tenant_settings, name="tenant_settings"),
    path("settings/webhooks/", include("notifications.urls")),
    path("members/", views.members, name="members"),
    path("members/invite/", views.member_invite, name="member_invite"),
    path("members/transfer/", views.ownership_transfer, name="ownership_transfer"),
    path("members/<int:membership_id>/role/", views.member_role, name="member_role"),
    path("members/<int:membership_id>/remove/", views.member_remove, name="member_remove"),
    path("invitations/<int:invitation_id>/revoke/", views.invitation_revoke,
         name="invitation_revoke"),
    path("leave/", views.tenant_leave, name="tenant_leave"),
    path("audit/", views.audit_log, name="audit_log"),
    path("clusters/", include("clusters.web.urls")),
    path("billing/", include("billing.web.urls")),
]

urlpatterns = [
    path("", views.home, name="home"),
    path("tenants/new/", views.tenant_create, name="tenant_create"),
    path("t/<slug:tenant_slug>/", include(tenant_patterns)),
    path("invitations/accept/", views.invitation_accept, name="invitation_accept"),
    path("account/profile/", views.profile, name="profile"),
    path("account/notifications/", views.notification_preferences,
         name="notification_preferences"),
    path("account/api-tokens/", include("portal.api.token_urls")),
    path("account/two-factor/enrol/", views.mfa_enrolment, name="mfa_enrolment"),
    path("account/two-factor/enrolment-link/", views.mfa_enrolment_request,
         name="mfa_enrolment_request"),
    # Before allauth's own URLs: the same page, with rate-limited attempts answered by a 429.
    path("accounts/login/", views.LoginView.as_view(), name="account_login"),
    # Closed to staff who have not passed a second factor (see portal.mfa).
    path("accounts/email/", views.account_email, name="account_email"),
    path("accounts/2fa/totp/activate/", views.mfa_activate_totp, name="mfa_activate_totp"),
    path("accounts/", include("allauth.urls")),
    path("i18n/setlang/", views.set_language, name="set_language"),
    path("healthz", health.healthz, name="healthz"),
    path("branding/logo", branding_views.brand_logo, name="brand_logo"),
    path("branding/favicon", branding_views.brand_favicon, name="brand_favicon"),
    path("favicon.ico", branding_views.brand_favicon, name="favicon_ico"),
    path("branding/style.css", branding_views.brand_stylesheet, name="brand_stylesheet"),
    path("readyz", health.readyz, name="readyz"),
    path("staff/", include("staff.urls")),
    path("admin/", admin.site.urls),
    path("api/", include("portal.api.urls")),
]
