from __future__ import annotations

from django.apps import AppConfig

from clusters import (
    checks,  # noqa: F401 - registers the system checks on import
    events,
)
from cozystack.gateway import get_gateway
from portal import health
from portal.member_events import MembershipEnded, MembershipRoleChanged


def ping_management_cluster() -> None:
    """/readyz: the management cluster answers (the gateway in use at the time of the check)."""
    get_gateway().ping()


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        # Start-up order: offerings, access and the outbox import the models, which exist only
        # now. Every Celery worker runs the outbox relay loop (a thread started at worker_init).
        from clusters import (  # noqa: PLC0415
            access,
            expiry,
            hibernation_actions,
            lifecycle,
            maintenance,
            offerings,
            outbox,
        )
        from clusters import metrics as cluster_metrics  # noqa: PLC0415

        outbox.connect_to_workers()

        events.subscribe(events.OfferingsChanged, offerings.forget_offerings,
                         moment="after_commit")
        events.subscribe(MembershipEnded, access.on_membership_ended, moment="after_commit")
        events.subscribe(MembershipRoleChanged, access.on_membership_role_changed,
                         moment="after_commit")
        health.register_check("management_cluster", ping_management_cluster)
        cluster_metrics.register()
        lifecycle.register(maintenance.PLANNER)
        lifecycle.register(hibernation_actions.PLANNER)
        events.subscribe(events.OperationFinished, hibernation_actions.on_operation_finished,
                         moment="in_transaction")
        lifecycle.register(expiry.PLANNER)
