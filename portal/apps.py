from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.contrib.auth.signals import user_login_failed

from portal import (
    checks,  # noqa: F401 - registers the system checks on import
    metrics,
    reauthentication,
)
from portal.metrics import celery as celery_metrics


def _login_failed(sender: Any, **kwargs: Any) -> None:
    # Sent by django.contrib.auth.authenticate, which allauth's sign-in goes through.
    metrics.login_failed()


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
        user_login_failed.connect(_login_failed, dispatch_uid="metrics.login_failed")
        metrics.register_collector("celery", celery_metrics.queue_depth)
