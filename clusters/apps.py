from __future__ import annotations

from django.apps import AppConfig


class ClustersConfig(AppConfig):
    name = "clusters"

    def ready(self) -> None:
        from clusters import events, offerings  # start-up order: apps are ready only now

        events.subscribe(events.OfferingsChanged, offerings.forget_offerings,
                         moment="in_transaction")
