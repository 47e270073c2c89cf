from __future__ import annotations

from django.apps import AppConfig


class PortalConfig(AppConfig):
    default = True
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        from portal import account_audit

        account_audit.connect()
