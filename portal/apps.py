from __future__ import annotations

from django.apps import AppConfig

from portal import (
    checks,  # noqa: F401 - registers the system checks on import
    reauthentication,
)


class PortalConfig(AppConfig):
    default = True
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # Start-up order: the audit log's models exist only once the apps are ready.
        from portal import account_audit, languages  # noqa: PLC0415

        account_audit.connect()
        languages.connect()
        reauthentication.connect()
