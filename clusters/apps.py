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
        from clusters import access, events, offerings  # start-up order: apps are ready now
        from portal.member_events import MembershipEnded

        events.subscribe(events.OfferingsChanged, offerings.forget_offerings,
                         moment="in_transaction")
        events.subscribe(MembershipEnded, access.on_membership_ended, moment="after_commit")
        health.register_check("management_cluster", ping_management_cluster)
