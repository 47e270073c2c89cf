"""Tenancy pages: home, tenant home and settings, members, invitations, audit log, profile;
and the pages where staff set up their second factor (``portal.mfa``)."""

from __future__ import annotations

from datetime import UTC, datetime, time
from typing import Any

from allauth.account import views as allauth_views
from allauth.mfa.totp.views import activate_totp
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import NON_FIELD_ERRORS, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django.views.i18n import set_language as django_set_language

from portal import actions, languages, mfa, notifications
from portal.audit import actor_from_request
from portal.forms import (
    AcceptInvitationForm,
    AuditFilterForm,
    InviteForm,
    MfaEnrolmentForm,
    NotificationPreferencesForm,
    ProfileForm,
    RoleForm,
    TenantCreateForm,
    TenantSettingsForm,
    TransferForm,
)
from portal.htmx import redirect_after_post, render_invalid, render_region
from portal.models import AuditEntry, Membership
from portal.permissions import PERMISSION_TABLE, ROLE_DESCRIPTIONS, Perm, Role, assignable_roles
from portal.tenancy import AuthenticatedHttpRequest, TenantContext, tenant_view, user_tenants


class LoginView(allauth_views.LoginView):
    """allauth's sign-in page, answering HTTP 429 when it refuses an attempt as rate-limited.

    allauth refuses further attempts after too many failures (``ACCOUNT_RATE_LIMITS
    ["login_failed"]``) with a form error and status 200; a 429 lets proxies, monitoring and
    scripts see the limit too. The page still shows the message to the person.
    """

    def form_invalid(self, form) -> HttpResponse:
        response = super().form_invalid(form)
        codes = {error.code for error in form.errors.as_data().get(NON_FIELD_ERRORS, [])}
        if "too_many_login_attempts" in codes:
            response.status_code = 429
        return response


def _apply_errors(form, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for field, errors in error.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error)


def set_language(request: HttpRequest) -> HttpResponse:
    """The language switcher: Django's ``set_language`` (a cookie, for this browser), and for a
    signed-in person also their profile, so that the choice follows them to other sessions."""
    response = django_set_language(request)
    code = request.POST.get("language", "") if request.method == "POST" else ""
    if request.user.is_authenticated and code and languages.supported(code) == code:
        languages.set_user_language(request.user, code, request)
    return response


@login_required
def home(request: HttpRequest) -> HttpResponse:
    tenants = user_tenants(request.user)
    return render(request, "portal/home.html",
                  {"tenants": tenants, "form": TenantCreateForm(), "roles": dict(Role.choices)})


@login_required
@require_http_methods(["GET", "POST"])
def tenant_create(request: HttpRequest) -> HttpResponse:
    form = TenantCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            tenant = actions.do_create_tenant(actor_from_request(request),
                                              **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Tenant %(name)s created.") % {"name": tenant.name})
            return redirect_after_post(request, "tenant_home", tenant_slug=tenant.slug)
    if request.method == "POST":
        return render_invalid(request, "portal/tenant_create.html", "form", {"form": form})
    return render(request, "portal/tenant_create.html", {"form": form})


@tenant_view(Perm.TENANT_VIEW)
def tenant_home(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    summary = ctx.tenant.memberships.aggregate(members=Count("id"))
    return render(request, "portal/tenant_home.html", {"ctx": ctx, "summary": summary})


@tenant_view(Perm.TENANT_MANAGE, methods=("GET", "HEAD", "POST"))
def tenant_settings(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    form = TenantSettingsForm(request.POST or None, initial={
        "name": ctx.tenant.name, "invoice_language": ctx.tenant.invoice_language})
    context = {"ctx": ctx, "form": form}
    if request.method == "POST":
        if form.is_valid():
            renamed = form.cleaned_data["name"] != ctx.tenant.name
            try:
                actions.do_update_tenant_settings(actor_from_request(request), ctx,
                                                  **form.cleaned_data)
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, _("Tenant renamed.") if renamed
                                 else _("Tenant settings saved."))
                return redirect_after_post(request, "tenant_settings", tenant_slug=ctx.tenant.slug)
        return render_invalid(request, "portal/tenant_settings.html", "form", context)
    return render(request, "portal/tenant_settings.html", context)


def _members_context(ctx: TenantContext, **forms) -> dict:
    memberships = list(ctx.tenant.memberships.select_related("user").order_by("user__email"))
    roles = assignable_roles(ctx.role) if ctx.can(Perm.MEMBERS_MANAGE) else []
    others = [(m.pk, m.user.email) for m in memberships
              if ctx.membership is None or m.pk != ctx.membership.pk]
    context = {
        "ctx": ctx,
        "memberships": memberships,
        "invitations": ctx.tenant.invitations.pending().select_related("invited_by")
        if ctx.can(Perm.MEMBERS_MANAGE) else [],
        "invite_form": forms.get("invite_form") or InviteForm(roles=roles),
        "transfer_form": forms.get("transfer_form")
        or TransferForm(members=others, slug=ctx.tenant.slug),
        "role_choices": [(r, Role(r).label) for r in roles],
        "permission_table": PERMISSION_TABLE,
        "role_list": [(role.value, role.label, ROLE_DESCRIPTIONS[role]) for role in Role],
    }
    return context


@tenant_view(Perm.MEMBERS_VIEW)
def members(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    return render(request, "portal/members.html", _members_context(ctx))


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def member_invite(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    form = InviteForm(request.POST, roles=assignable_roles(ctx.role))
    if form.is_valid():
        try:
            invitation, _token = actions.do_invite(actor_from_request(request), ctx,
                                                   **form.cleaned_data)
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("Invitation sent to %(email)s.")
                             % {"email": invitation.email})
            return redirect_after_post(request, "members", tenant_slug=ctx.tenant.slug)
    return render_invalid(request, "portal/members.html", "invite",
                          _members_context(ctx, invite_form=form))


def _member_action(request: HttpRequest, ctx: TenantContext, run, success: str) -> HttpResponse:
    try:
        run(actor_from_request(request))
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
    else:
        messages.success(request, success)
    return redirect_after_post(request, "members", tenant_slug=ctx.tenant.slug)


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def invitation_revoke(request: HttpRequest, ctx: TenantContext, invitation_id: int) -> HttpResponse:
    return _member_action(
        request, ctx, lambda actor: actions.do_revoke_invitation(actor, ctx, invitation_id),
        _("Invitation revoked."))


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def member_role(request: HttpRequest, ctx: TenantContext, membership_id: int) -> HttpResponse:
    form = RoleForm(request.POST, roles=list(Role.values))
    if not form.is_valid():
        messages.error(request, _("Unknown role."))
        return redirect_after_post(request, "members", tenant_slug=ctx.tenant.slug)
    return _member_action(
        request, ctx,
        lambda actor: actions.do_change_role(actor, ctx, membership_id,
                                             role=form.cleaned_data["role"]),
        _("Role changed."))


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def member_remove(request: HttpRequest, ctx: TenantContext, membership_id: int) -> HttpResponse:
    return _member_action(
        request, ctx, lambda actor: actions.do_remove_member(actor, ctx, membership_id),
        _("Member removed."))


@tenant_view(Perm.OWNERSHIP_TRANSFER, methods=("POST",))
def ownership_transfer(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    others = [(m.pk, m.user.email) for m in ctx.tenant.memberships.select_related("user")
              if ctx.membership is None or m.pk != ctx.membership.pk]
    form = TransferForm(request.POST, members=others, slug=ctx.tenant.slug)
    if form.is_valid():
        try:
            target = actions.do_transfer_ownership(actor_from_request(request), ctx,
                                                   form.cleaned_data["member"])
        except ValidationError as exc:
            _apply_errors(form, exc)
        else:
            messages.success(request, _("%(email)s now owns this tenant.")
                             % {"email": target.user.email})
            return redirect_after_post(request, "members", tenant_slug=ctx.tenant.slug)
    return render_invalid(request, "portal/members.html", "transfer",
                          _members_context(ctx, transfer_form=form))


@tenant_view(Perm.TENANT_VIEW, methods=("POST",))
def tenant_leave(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    try:
        actions.do_leave_tenant(actor_from_request(request), ctx)
    except ValidationError as exc:
        for message in exc.messages:
            messages.error(request, message)
        return redirect_after_post(request, "members", tenant_slug=ctx.tenant.slug)
    messages.success(request, _("You left %(name)s.") % {"name": ctx.tenant.name})
    return redirect_after_post(request, "home")


@tenant_view(Perm.AUDIT_VIEW)
def audit_log(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    form = AuditFilterForm(request.GET or None)
    entries = AuditEntry.objects.filter(tenant=ctx.tenant)
    if form.is_valid():
        data = form.cleaned_data
        if data["verb"]:
            entries = entries.filter(verb__icontains=data["verb"])
        if data["actor"]:
            entries = entries.filter(actor_label__icontains=data["actor"])
        if data["via"]:
            entries = entries.filter(via=data["via"])
        if data["since"]:
            entries = entries.filter(at__gte=datetime.combine(data["since"], time.min,
                                                              tzinfo=UTC))
        if data["until"]:
            entries = entries.filter(at__lte=datetime.combine(data["until"], time.max,
                                                              tzinfo=UTC))
    page = Paginator(entries, 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render_region(request, "portal/audit_log.html", "entries",
                         {"ctx": ctx, "form": form, "page": page, "query": query.urlencode()})


@login_required
@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest) -> HttpResponse:
    form = AcceptInvitationForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                membership = actions.do_accept_invitation(actor_from_request(request),
                                                          form.cleaned_data["token"])
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                messages.success(request, _("Welcome to %(name)s.")
                                 % {"name": membership.tenant.name})
                return redirect_after_post(request, "tenant_home",
                                           tenant_slug=membership.tenant.slug)
        return render_invalid(request, "portal/invitation_accept.html", "form", {"form": form})
    return render(request, "portal/invitation_accept.html", {"form": form})


@login_required
@require_http_methods(["GET", "POST"])
def profile(request: AuthenticatedHttpRequest) -> HttpResponse:
    user = request.user
    form = ProfileForm(request.POST or None,
                       initial={"first_name": user.first_name, "last_name": user.last_name,
                                "language": languages.user_language(user)})
    if request.method == "POST":
        if form.is_valid():
            actions.do_update_profile(actor_from_request(request), **form.cleaned_data)
            request.session[languages.SESSION_LANGUAGE_KEY] = languages.user_language(user)
            messages.success(request, _("Profile saved."))
            return redirect_after_post(request, "profile")
        return render_invalid(request, "portal/profile.html", "form", {"form": form})
    memberships = Membership.objects.filter(user=user).select_related("tenant")
    return render(request, "portal/profile.html", {"form": form, "memberships": memberships,
                                                   "has_mfa": mfa.user_has_mfa(user)})


@login_required
@require_http_methods(["GET", "POST"])
def notification_preferences(request: AuthenticatedHttpRequest) -> HttpResponse:
    """Which events the signed-in person receives by email (every notification email links
    here)."""
    current = notifications.preferences_for(request.user)
    form = NotificationPreferencesForm(request.POST or None,
                                       kinds=notifications.CATALOGUE.values(),
                                       initial_choices=current)
    context = {"form": form}
    if request.method == "POST":
        if form.is_valid():
            try:
                notifications.do_save_preferences(actor_from_request(request), form.choices())
            except PermissionDenied as exc:
                form.add_error(None, str(exc))
            else:
                messages.success(request, _("Email preferences saved."))
                return redirect_after_post(request, "notification_preferences")
        return render_invalid(request, "portal/notification_preferences.html", "form", context)
    return render(request, "portal/notification_preferences.html", context)



# --------------------------------------------------------------------------- staff second factor

@login_required
@require_POST
def mfa_enrolment_request(request: AuthenticatedHttpRequest) -> HttpResponse:
    """A staff member without an authenticator app asks for a link at their verified address."""
    user = request.user
    try:
        link = actions.do_issue_mfa_enrolment_link(actor_from_request(request), user)
    except (ValidationError, PermissionDenied) as exc:
        messages.error(request, " ".join(getattr(exc, "messages", [str(exc)])))
        return redirect_after_post(request, "mfa_enrolment")
    messages.success(request, _(
        "We sent a one-time link to %(email)s. Open it within %(hours)s hours to set up your "
        "authenticator app.") % {"email": link.email,
                                 "hours": settings.MFA_ENROLMENT_LINK_TTL_HOURS})
    return redirect_after_post(request, "mfa_enrolment")


@login_required
@require_http_methods(["GET", "POST"])
def mfa_enrolment(request: HttpRequest) -> HttpResponse:
    """Spend an enrolment link, then set up the authenticator app in this session."""
    form = MfaEnrolmentForm(request.POST or None)
    if request.method == "POST":
        if form.is_valid():
            try:
                actions.do_use_mfa_enrolment_link(actor_from_request(request),
                                                  form.cleaned_data["token"])
            except ValidationError as exc:
                _apply_errors(form, exc)
            else:
                mfa.grant_enrolment(request.session, request.user)
                return redirect_after_post(request, "mfa_activate_totp")
        return render_invalid(request, "portal/mfa_enrolment.html", "form", {"form": form})
    return render(request, "portal/mfa_enrolment.html", {
        "form": form, "is_staff": request.user.is_staff,
        "has_mfa": mfa.user_has_mfa(request.user)})


def mfa_activate_totp(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """allauth's page that sets up an authenticator app, closed to staff setting up their first
    one without an enrolment link: the password alone must never be enough."""
    if not mfa.may_enrol(request.user, request.session):
        return mfa.refuse(request, mfa.Standing.NO_AUTHENTICATOR)
    response = activate_totp(request, *args, **kwargs)
    if request.user.is_authenticated and mfa.user_has_mfa(request.user):
        mfa.drop_enrolment_grant(request.session)
    return response


def account_email(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
    """allauth's email address page, closed to staff sessions that have not passed a second
    factor: a new address would receive the enrolment link, and the password reset."""
    user = request.user
    if user.is_authenticated and user.is_active and user.is_staff:
        standing = mfa.staff_standing(user, request.session)
        if standing is not mfa.Standing.TRUSTED:
            return mfa.refuse(request, standing)
    return allauth_views.email(request, *args, **kwargs)
