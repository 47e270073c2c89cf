from __future__ import annotations

from django.apps import AppConfig

from portal import reauthentication


class PortalConfig(AppConfig):
    default = True
    name = "portal"
    verbose_name = "Portal"

    def ready(self) -> None:
        # Start-up order: the audit log's models exist only once the apps are ready;
        # checks register the system checks on import.
        from portal import account_audit, checks  # noqa: F401

        account_audit.connect()
        reauthentication.connect()
