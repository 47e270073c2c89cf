from __future__ import annotations

from django.apps import AppConfig

from cozystack.gateway import get_gateway
from portal import health


def ping_management_cluster() -> None:
    """/readyz: the management cluster answers (the gateway in use at the time of the check)."""
    get_gateway().ping()


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        # Start-up order: apps are ready only now; checks register the system checks on import.
        from clusters import checks, events, offerings  # noqa: F401

        events.subscribe(events.OfferingsChanged, offerings.forget_offerings,
                         moment="after_commit")
        health.register_check("management_cluster", ping_management_cluster)
