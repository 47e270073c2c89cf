"""Live updates: when a cluster changed, tell the web processes whose pages may show it.

What leaves the process that made the change (watcher, worker, web) is a small notice on the
channel layer, to the live group (``clusters.web.groups``): ``{"type": "cluster.changed",
"changes": [[tenant_id, cluster_id, revision], ...]}``, nothing rendered: one message for the
changes sent together. The web processes with a cluster page
open are in the group (``clusters.web.hub``, once per process); each renders what
its own pages need from the committed rows. A change nobody looks at costs one small query
and a send to a group with no member (no message at all).

``cluster_changed`` subscribes to the domain's ``ClusterChanged`` (after commit; see
``clusters.events``, which batches and coalesces those deliveries). A background delivery
thread (the watcher's) gets one event loop for all its sends (``delivery_loop``):
``async_to_sync`` starts a thread and a loop per call, and the Redis layer connects anew in
each loop (~3 ms a message, against ~0.2 ms in one loop); closing the loop closes the layer's
connections made in it. There the notices of a batch of deliveries leave together at its end
(``send_pending``): one query for all their revisions, one message.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from clusters.events import ClusterChanged
from clusters.web.groups import LIVE_GROUP
from clusters.web.live import forget_lists
from clusters.web.queries import tenants_and_revisions
from portal.pushes import group_send_many

logger = logging.getLogger("clusters.web.broadcast")
_local = threading.local()
NOTICE = "cluster.changed"


def on_cluster_changed(event: ClusterChanged) -> None:
    cluster_changed(event.cluster_id)


def notice(changes: list[tuple[int, int, int]]) -> dict[str, Any]:
    """The notice of changes to some clusters: (tenant id, cluster id, revision) each."""
    return {"type": NOTICE, "changes": [list(change) for change in changes]}


def changes_of(message: dict[str, Any]) -> list[tuple[int, int, int]]:
    """The (tenant id, cluster id, revision) triples of a notice."""
    return [(int(tenant_id), int(cluster_id), int(revision or 0))
            for tenant_id, cluster_id, revision in message.get("changes") or ()]


def cluster_changed(cluster_id: int) -> None:
    """Tell the pages of the cluster's tenant that it changed (and forget the tenant's cached
    list regions): now, or with the rest of the batch on a delivery thread. Never raises:
    pages also catch up by themselves."""
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.append(cluster_id)
        return
    _send([cluster_id])


def send_pending() -> None:
    """The notices gathered on this delivery thread since the last call."""
    pending = getattr(_local, "pending", None)
    if pending:
        _local.pending = []
        _send(pending)


def _send(cluster_ids: list[int]) -> None:
    try:
        found = tenants_and_revisions(cluster_ids)
        if not found:
            return
        forget_lists({tenant_id for tenant_id, _revision in found.values()})
        # While the channel layer is out of reach (``portal.pushes``), nothing is sent: the
        # pages poll and catch up when their socket connects again.
        sends = [(LIVE_GROUP, notice([(tenant_id, cluster_id, revision) for cluster_id,
                                      (tenant_id, revision) in sorted(found.items())]))]
        group_send_many(sends, loop=getattr(_local, "loop", None))
    except Exception:  # a broadcast failure must never undo or fail the change it reports
        logger.exception("cluster.broadcast.failed", extra={"cluster_ids": cluster_ids})


@contextmanager
def delivery_loop() -> Iterator[None]:
    """One event loop for every send of the current (background delivery) thread, whose
    notices wait for the end of each batch (``send_pending``)."""
    _local.loop = loop = asyncio.new_event_loop()
    _local.pending = []
    try:
        yield
        send_pending()
    finally:
        _local.loop = _local.pending = None
        loop.close()
