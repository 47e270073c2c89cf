from __future__ import annotations

import csv

from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse

from portal import actions
from portal.audit import actor_from_request, record
from portal.models import Announcement, AuditEntry, Invitation, Membership, Tenant
from portal.staff import start_impersonation


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at", "suspended_at", "suspension_reason"]
    search_fields = ["slug", "name"]
    list_filter = [("suspended_at", admin.EmptyFieldListFilter)]
    inlines = [MembershipInline]
    actions = ["suspend", "unsuspend", "view_as_tenant"]
    fieldsets = [
        (None, {"fields": ["slug", "name", "created_at"]}),
        ("Suspension", {"fields": ["suspended_at", "suspension_reason"]}),
        ("Quota (empty: the platform-wide default)",
         {"fields": ["quota_clusters", "quota_vcpu", "quota_memory_gib", "quota_gpus"]}),
    ]

    def get_readonly_fields(self, request, obj=None):
        fixed = ["created_at", "suspended_at", "suspension_reason"]
        return ["slug", *fixed] if obj else fixed

    def save_model(self, request, obj, form, change) -> None:
        actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
        with transaction.atomic():
            super().save_model(request, obj, form, change)
            changes = {f: [form.initial.get(f), form.cleaned_data.get(f)]
                       for f in form.changed_data}
            record(actor, "tenant.update" if change else "tenant.create", obj, tenant=obj,
                   changes=changes)

    @admin.action(description="Suspend selected tenants (asks for the reason)")
    def suspend(self, request: HttpRequest, queryset):
        if request.POST.get("confirm") == "yes":
            actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
            try:
                for tenant in queryset:
                    actions.do_suspend_tenant(actor, tenant, reason=request.POST.get("reason", ""))
            except ValidationError as exc:
                self.message_user(request, " ".join(exc.messages), messages.ERROR)
                return None
            self.message_user(request, f"Suspended {queryset.count()} tenant(s).")
            return None
        return TemplateResponse(request, "admin/portal/tenant/suspend.html", {
            **self.admin_site.each_context(request), "tenants": queryset,
            "opts": self.model._meta, "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        })

    @admin.action(description="Lift the suspension of selected tenants")
    def unsuspend(self, request: HttpRequest, queryset) -> None:
        actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
        for tenant in queryset:
            actions.do_unsuspend_tenant(actor, tenant)
        self.message_user(request, f"Lifted the suspension of {queryset.count()} tenant(s).")

    @admin.action(description="View as this tenant (read-only, recorded)")
    def view_as_tenant(self, request: HttpRequest, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one tenant.", messages.WARNING)
            return None
        tenant = queryset.get()
        start_impersonation(request, tenant)
        return redirect("tenant_home", tenant_slug=tenant.slug)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["tenant", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["tenant__slug", "user__email"]
    autocomplete_fields = ["user", "tenant"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    list_display = ["email", "tenant", "role", "created_at", "expires_at", "accepted_at"]
    search_fields = ["email", "tenant__slug"]
    readonly_fields = ["token_hash", "created_at", "accepted_at", "accepted_by", "invited_by"]


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = ["at", "actor_label", "via", "tenant_slug", "verb", "object_repr", "ip"]
    list_filter = ["via", "verb"]
    search_fields = ["actor_label", "tenant_slug", "verb", "object_repr"]
    date_hierarchy = "at"
    actions = ["export_csv"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.action(description="Export selected entries to CSV")
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


@admin.register(Announcement)
class AnnouncementAdmin(admin.ModelAdmin):
    list_display = ["message", "level", "starts_at", "ends_at"]
    filter_horizontal = ["tenants"]
