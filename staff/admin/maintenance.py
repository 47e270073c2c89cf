"""Staff's settings of automatic upgrades in the admin: freeze periods (no automatic operation
starts during them) and the platform-wide limits (concurrent automatic upgrades, the
end-of-life lead, the announcement lead). Every change is audited."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils import timezone

from clusters.models import FreezePeriod, UpgradeControl
from portal.audit import actor_from_request
from staff.admin_site import AuditedAdminMixin


@admin.register(FreezePeriod)
class FreezePeriodAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["starts_at", "ends_at", "reason", "created_by"]
    fields = ["starts_at", "ends_at", "reason"]
    ordering = ["-starts_at"]

    def save_model(self, request: HttpRequest, obj: FreezePeriod, form: Any,
                   change: bool) -> None:
        if not change:
            obj.created_by = actor_from_request(request).label
        super().save_model(request, obj, form, change)


@admin.register(UpgradeControl)
class UpgradeControlAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["max_concurrent_upgrades", "end_of_life_lead_days", "announce_days",
                    "changed_by", "changed_at"]
    fields = ["max_concurrent_upgrades", "end_of_life_lead_days", "announce_days"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # One row: staff change it once it exists.
        return super().has_add_permission(request) and not UpgradeControl.objects.exists()

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: UpgradeControl, form: Any,
                   change: bool) -> None:
        obj.pk = 1
        obj.changed_by, obj.changed_at = actor_from_request(request).label, timezone.now()
        super().save_model(request, obj, form, change)

