"""The staff admin for tenancy: tenants (create, rename, suspend, quotas, members, view as
tenant, invoice language), memberships, invitations, the audit log (read-only, CSV) and
announcements; and users, with the action that emails staff a link to set up their first
authenticator app.

Every change made here leaves an audit entry with the staff member's name; suspension goes
through ``portal.actions`` so the tenant's members see the same reason everywhere.
"""

from __future__ import annotations

import csv
from decimal import Decimal
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html_join
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from clusters.quotas import tenant_footprint
from portal import actions
from portal.audit import actor_from_request
from portal.forms import InviteForm
from portal.models import Announcement, AuditEntry, Invitation, Membership, Tenant
from portal.permissions import Role
from portal.tenancy import TenantContext
from staff.admin_site import AuditedAdminMixin, ReadOnlyAdminMixin
from staff.views import start_impersonation


class MembershipFormSet(BaseInlineFormSet):
    def clean(self) -> None:
        super().clean()
        kept = [f.cleaned_data for f in self.forms
                if f.cleaned_data and not f.cleaned_data.get("DELETE")]
        if kept and not any(row.get("role") == Role.OWNER for row in kept):
            raise ValidationError(_("A tenant with members always has an owner: keep or make "
                                    "one an owner."))


class MembershipInline(admin.TabularInline):
    """Rows added, changed or removed here are audited as ``MembershipAdmin`` records them."""

    model = Membership
    formset = MembershipFormSet
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Edits (name, quotas, members) are audited by the mixin; suspension, invitations and
    impersonation go through actions that record their own entries."""

    audit_actions = False
    list_display = ["slug", "name", "created_at", "clusters_live", "suspended_at",
                    "suspension_reason"]
    search_fields = ["slug", "name"]
    list_filter = [("suspended_at", admin.EmptyFieldListFilter)]
    inlines = [MembershipInline]
    actions = ["suspend", "unsuspend", "invite", "view_as_tenant"]
    change_form_template = "admin/portal/tenant/change_form.html"
    fieldsets = [
        (None, {"fields": ["slug", "name", "invoice_language", "created_at"]}),
        (gettext_lazy("Suspension"), {
            "fields": ["suspended_at", "suspension_reason"],
            "description": gettext_lazy(
                "Use the “Suspend” action of the tenant list: the reason is required and "
                "shown to the tenant's members."),
        }),
        (gettext_lazy("Quota (empty: the platform-wide default)"), {
            "fields": ["quota_clusters", "quota_vcpu", "quota_memory_gib", "quota_gpus",
                       "quota_in_use"],
        }),
    ]

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> list[str]:
        fixed = ["created_at", "suspended_at", "suspension_reason", "quota_in_use"]
        return ["slug", *fixed] if obj else fixed

    def has_delete_permission(self, request: HttpRequest, obj: Tenant | None = None) -> bool:
        # A tenant's clusters, invoices and audit trail outlive any mistake: suspend instead.
        return False

    @admin.display(description=gettext_lazy("live clusters"))
    def clusters_live(self, obj: Tenant) -> int:
        return obj.clusters.filter(deleted_at__isnull=True).count()

    @admin.display(description=gettext_lazy("in use / limit"))
    def quota_in_use(self, obj: Tenant) -> str:
        if obj.pk is None:
            return "—"
        used = tenant_footprint(obj)
        labels = {"clusters": _("Clusters"), "vcpu": _("vCPU"),
                  "memory_gib": _("Memory (GiB)"), "gpus": _("GPUs")}
        limits = obj.quota()
        return format_html_join(
            "", "<div>{}: {} / {}</div>",
            ((labels[d], _number(used.get(d)), limits[d]) for d in limits))

    @admin.action(description=gettext_lazy("Suspend selected tenants (asks for the reason)"))
    def suspend(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if request.POST.get("confirm") == "yes":
            actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
            reason = request.POST.get("reason", "")
            try:
                with transaction.atomic():
                    for tenant in queryset:
                        actions.do_suspend_tenant(actor, tenant, reason=reason)
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return None
            n = queryset.count()
            self.message_user(request, ngettext("Suspended %(n)s tenant.",
                                                "Suspended %(n)s tenants.", n) % {"n": n})
            return None
        return TemplateResponse(request, "admin/portal/tenant/suspend.html", {
            **self.admin_site.each_context(request), "tenants": queryset,
            "title": _("Suspend tenants"),
            "opts": self.model._meta, "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })

    @admin.action(description=gettext_lazy("Lift the suspension of selected tenants"))
    def unsuspend(self, request: HttpRequest, queryset: Any) -> None:
        actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
        for tenant in queryset:
            actions.do_unsuspend_tenant(actor, tenant)
        n = queryset.count()
        self.message_user(request, ngettext("Lifted the suspension of %(n)s tenant.",
                                            "Lifted the suspension of %(n)s tenants.", n)
                          % {"n": n})

    @admin.action(description=gettext_lazy("Invite someone to the selected tenant (asks for the "
                                            "email and role)"))
    def invite(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one tenant."), messages.WARNING)
            return None
        tenant = queryset.get()
        form = InviteForm(request.POST if request.POST.get("confirm") == "yes" else None,
                          roles=list(Role.values))
        if form.is_bound and form.is_valid():
            actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
            try:
                actions.do_invite(actor, TenantContext(tenant, Role.OWNER, None),
                                  email=form.cleaned_data["email"], role=form.cleaned_data["role"])
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, " ".join(getattr(exc, "messages", [str(exc)])),
                                  messages.ERROR)
                return None
            self.message_user(request, _("Invitation sent to %(email)s.")
                              % {"email": form.cleaned_data["email"]})
            return None
        return TemplateResponse(request, "admin/portal/tenant/invite.html", {
            **self.admin_site.each_context(request), "tenant": tenant, "form": form,
            "title": _("Invite someone to %(name)s") % {"name": tenant.name},
            "opts": self.model._meta, "action_checkbox_name": ACTION_CHECKBOX_NAME,
        })

    @admin.action(description=gettext_lazy("View as this tenant (read-only, recorded)"))
    def view_as_tenant(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        if queryset.count() != 1:
            self.message_user(request, _("Select exactly one tenant."), messages.WARNING)
            return None
        tenant = queryset.get()
        start_impersonation(request, tenant)
        return redirect("tenant_home", tenant_slug=tenant.slug)


def _number(value: Any) -> str:
    if isinstance(value, Decimal):
        return f"{value.normalize():f}"
    return str(value)


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Read-only: members are added, changed and removed on the tenant's page, where the rule
    that a tenant with members keeps an owner holds. Those changes are recorded with the verbs
    below, like the tenant's own (``membership.role_change``), and always name the member."""

    audit_verbs = {"update": "membership.role_change", "delete": "membership.remove"}
    list_display = ["tenant", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["tenant__slug", "user__email"]
    list_select_related = ["tenant", "user"]

    def audit_changes(self, obj: Any, event: str, changes: dict[str, list[Any]]
                      ) -> dict[str, list[Any]]:
        if event == "update":
            return {"user": [None, str(obj.user)], **changes}
        return changes


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Invitations are made through the tenant's "Invite someone" action (``do_invite``), which
    sends the email with the one-time code; a row added here would have no usable code. They
    are revoked, never deleted, so the tenant's history keeps them."""

    list_display = ["email", "tenant", "role", "state", "created_at", "expires_at",
                    "accepted_at", "revoked_at"]
    search_fields = ["email", "tenant__slug"]
    list_select_related = ["tenant"]
    readonly_fields = ["token_hash", "created_at", "accepted_at", "accepted_by", "invited_by",
                       "revoked_at"]
    actions = ["revoke"]
    audit_actions = False  # do_revoke_invitation records each revocation

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("portal.change_invitation")

    @admin.display(description=gettext_lazy("state"))
    def state(self, obj: Invitation) -> str:
        labels = {"pending": _("Pending"), "accepted": _("Accepted"), "revoked": _("Revoked"),
                  "expired": _("Expired")}
        return labels[obj.state]

    @admin.action(description=gettext_lazy("Revoke the selected invitations"),
                  permissions=["revoke"])
    def revoke(self, request: HttpRequest, queryset: Any) -> None:
        actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
        done = self.run_each(
            request, queryset.select_related("tenant").order_by("pk"),
            lambda invitation: actions.do_revoke_invitation(
                actor, TenantContext(invitation.tenant, Role.OWNER, None), invitation.pk))
        if done:
            self.message_user(request, ngettext("Revoked %(n)s invitation.",
                                                "Revoked %(n)s invitations.", done)
                              % {"n": done}, messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["at", "actor_label", "via", "tenant_slug", "verb", "object_repr", "ip"]
    list_filter = ["via", "verb"]
    search_fields = ["actor_label", "tenant_slug", "verb", "object_repr"]
    date_hierarchy = "at"
    actions = ["export_csv"]
    audit_actions = False  # reading the log changes nothing

    @admin.action(description=gettext_lazy("Export selected entries to CSV"))
    def export_csv(self, request: HttpRequest, queryset) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="audit-log.csv"'
        writer = csv.writer(response)
        writer.writerow(["at", "actor", "via", "ip", "tenant", "verb", "object_type",
                         "object_id", "object", "changes"])
        for e in queryset.order_by("at", "id"):
            writer.writerow([e.at.isoformat(), e.actor_label, e.via, e.ip or "", e.tenant_slug,
                             e.verb, e.object_type, e.object_id, e.object_repr, e.changes])
        return response


class AnnouncementAudience(admin.SimpleListFilter):
    title = gettext_lazy("shown")
    parameter_name = "shown"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("now", gettext_lazy("Now")), ("scheduled", gettext_lazy("Scheduled")),
                ("ended", gettext_lazy("Ended"))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        now = timezone.now()
        if self.value() == "now":
            return queryset.filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now),
                                   starts_at__lte=now)
        if self.value() == "scheduled":
            return queryset.filter(starts_at__gt=now)
        if self.value() == "ended":
            return queryset.filter(ends_at__lte=now)
        return queryset


class AnnouncementWrites(admin.ModelAdmin):
    """Every way the admin changes announcements (add, edit, delete one or a selection) goes
    through the announcement actions, which drop the cached banners once the change commits.
    ``AnnouncementAdmin`` lists it after ``AuditedAdminMixin``, so the audit trail wraps these."""

    def save_model(self, request: HttpRequest, obj: Announcement, form: Any,
                   change: bool) -> None:
        actions.do_save_announcement(obj)

    def delete_model(self, request: HttpRequest, obj: Announcement) -> None:
        actions.do_delete_announcements(Announcement.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Announcement]) -> None:
        actions.do_delete_announcements(queryset)


@admin.register(Announcement)
class AnnouncementAdmin(AuditedAdminMixin, AnnouncementWrites):
    """A banner for every tenant (no tenant selected) or only the selected ones, between
    ``starts_at`` and ``ends_at`` (open-ended when empty). Changes are audited."""

    list_display = ["message", "level", "starts_at", "ends_at", "audience", "shown_now"]
    list_filter = [AnnouncementAudience, "level"]
    search_fields = ["message"]
    filter_horizontal = ["tenants"]

    @admin.display(description=gettext_lazy("audience"))
    def audience(self, obj: Announcement) -> str:
        names = [t.slug for t in obj.tenants.all()]
        return ", ".join(names) if names else _("every tenant")

    @admin.display(boolean=True, description=gettext_lazy("shown now"))
    def shown_now(self, obj: Announcement) -> bool:
        now = timezone.now()
        return obj.starts_at <= now and (obj.ends_at is None or obj.ends_at > now)

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).prefetch_related("tenants")


admin.site.unregister(get_user_model())


@admin.register(get_user_model())
class PortalUserAdmin(AuditedAdminMixin, UserAdmin):
    """Django's user admin, plus the enrolment link for staff without an authenticator app:
    their first one is never set up with the password alone (``portal.mfa``). The action
    records its own entries."""

    audit_actions = False
    actions = ["send_mfa_enrolment_link"]

    @admin.action(description=gettext_lazy("Email a two-factor enrolment link"),
                  permissions=["change"])
    def send_mfa_enrolment_link(self, request: HttpRequest, queryset: Any) -> None:
        actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
        sent = self.run_each(request, queryset,
                             lambda user: actions.do_issue_mfa_enrolment_link(actor, user))
        if sent:
            self.message_user(request, ngettext(
                "Sent %(count)d enrolment link.", "Sent %(count)d enrolment links.", sent)
                % {"count": sent})
