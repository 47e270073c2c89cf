from __future__ import annotations

import csv

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from portal.models import Announcement, AuditEntry, Invitation, Membership, Tenant


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


@admin.register(Tenant)
class TenantAdmin(admin.ModelAdmin):
    list_display = ["slug", "name", "created_at", "suspended_at"]
    search_fields = ["slug", "name"]
    list_filter = [("suspended_at", admin.EmptyFieldListFilter)]
    inlines = [MembershipInline]

    def get_readonly_fields(self, request, obj=None):
        return ["slug", "created_at"] if obj else ["created_at"]


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
