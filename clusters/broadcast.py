"""Live updates: after a commit, tell the pages that show a cluster that it changed.

Group names: ``tenant.<id>`` (list pages) and ``tenant.<id>.cluster.<id>`` (detail page).

Rendering a push costs far more than the change it reports, so a process that applies many
changes (the watcher) installs a ``Coalescer``: pushes then leave from a background thread,
at most one per cluster per interval, always with the state as committed at send time.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import close_old_connections, connections, transaction

logger = logging.getLogger("clusters.broadcast")
_sink: Callable[[int], None] | None = None


def tenant_group(tenant_id: int) -> str:
    return f"tenant.{tenant_id}"


def cluster_group(tenant_id: int, cluster_id: int) -> str:
    return f"tenant.{tenant_id}.cluster.{cluster_id}"


def cluster_changed(cluster_id: int) -> None:
    """Send the cluster's fresh state to its groups. Never raises: pages also poll to catch up."""
    try:
        layer = get_channel_layer()
        if layer is None:
            return
        from clusters.live import render_cluster_messages

        for group, message in render_cluster_messages(cluster_id):
            async_to_sync(layer.group_send)(group, message)
    except Exception:  # a broadcast failure must never undo or fail the change it reports
        logger.exception("cluster.broadcast.failed", extra={"cluster_id": cluster_id})


_local = threading.local()


def notify(cluster_id: int) -> None:
    """Push now, or hand over to the installed coalescer, or to the enclosing ``batched()``."""
    pending = getattr(_local, "pending", None)
    if pending is not None:
        pending.add(cluster_id)
    elif _sink is not None:
        _sink(cluster_id)
    else:
        cluster_changed(cluster_id)


@contextmanager
def batched() -> Iterator[None]:
    """Push each changed cluster once, when the block ends (a task that commits several
    steps of one change sends one push, with the final state)."""
    if getattr(_local, "pending", None) is not None:
        yield
        return
    _local.pending = pending = set()
    try:
        yield
    finally:
        _local.pending = None
        for cluster_id in sorted(pending):
            notify(cluster_id)


def on_commit(cluster_id: int) -> None:
    """Push once the current transaction commits (never for a rolled-back change)."""
    transaction.on_commit(lambda: notify(cluster_id))


class Coalescer:
    """Background pushes: many changes of one cluster within ``interval`` make one push."""

    def __init__(self, interval: float = 0.25,
                 send: Callable[[int], None] = cluster_changed) -> None:
        self.interval = interval
        self.send = send
        self._pending: set[int] = set()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.sent = 0

    def submit(self, cluster_id: int) -> None:
        with self._cond:
            self._pending.add(cluster_id)
            self._cond.notify()

    def start(self) -> Coalescer:
        global _sink
        self._thread = threading.Thread(target=self._run, name="broadcast", daemon=True)
        self._thread.start()
        _sink = self.submit
        return self

    def stop(self, timeout: float = 5.0) -> None:
        global _sink
        if _sink == self.submit:
            _sink = None
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while not self._pending and not self._stopping:
                        self._cond.wait()
                    if self._stopping and not self._pending:
                        return
                    batch, self._pending = self._pending, set()
                close_old_connections()
                for cluster_id in sorted(batch):
                    self.send(cluster_id)
                    self.sent += 1
                with self._cond:
                    if not self._stopping:
                        self._cond.wait(self.interval)
        finally:
            connections.close_all()
