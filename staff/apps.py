from __future__ import annotations

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from clusters import events


class StaffConfig(AppConfig):
    default = True
    name = "staff"
    verbose_name = "Staff"

    def ready(self) -> None:
        # Start-up order: the alerts import the models, which exist only now.
        from staff import alerts  # noqa: PLC0415

        events.subscribe(events.OperationFinished, alerts.on_operation_finished,
                         moment="after_commit")
        events.subscribe(events.WakeFailing, alerts.on_wake_failing, moment="after_commit")
        events.subscribe(events.ClusterPhaseChanged, alerts.on_cluster_vanished,
                         moment="after_commit")


class StaffAdminConfig(admin_apps.AdminConfig):
    """Django's admin, on the staff site (second factor required, every change audited)."""

    default = False
    default_site = "staff.admin_site.PortalAdminSite"
