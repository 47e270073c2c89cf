"""The staff console and impersonation, under ``/staff/`` (names kept global, as before)."""

from __future__ import annotations

from django.urls import path

from staff import automation, views

urlpatterns = [
    path("", views.console, name="staff_console"),
    path("impersonate/", views.impersonate, name="staff_impersonate"),
    path("impersonate/stop/", views.impersonate_stop, name="staff_impersonate_stop"),
    path("automation/", automation.automation, name="staff_automation"),
    path("automation/pause/", automation.automation_pause, name="staff_automation_pause"),
]
