from __future__ import annotations

from django.apps import AppConfig

from clusters import events


class ClustersWebConfig(AppConfig):
    """The web floor of clusters: pages, API, live pushes. It reacts to domain events here and
    tells the API how to answer the platform's errors."""

    name = "clusters.web"
    label = "clusters_web"
    verbose_name = "Clusters (web)"

    def ready(self) -> None:
        # Start-up order: the live pages and the API import the models, which exist only now.
        from clusters.web import broadcast, live  # noqa: PLC0415
        from clusters.web.api import problems  # noqa: PLC0415

        events.subscribe(events.ClusterChanged, broadcast.on_cluster_changed,
                         moment="after_commit")
        events.on_delivery_thread(broadcast.delivery_loop, batch_end=broadcast.send_pending)
        events.subscribe(events.OfferingsChanged, live.on_offerings_changed,
                         moment="after_commit")
        problems.register()
