"""The transactional outbox: the intent to run an operation commits with the operation.

An action that starts an operation writes an ``OutboxEntry`` in its own transaction (``put``).
Right after the commit, the same thread hands the entry to the broker (best effort: a broker
that refuses is logged, never raised, so the request still answers that the change was
recorded). The relay loop (``Relay``, a thread of every Celery worker, ``manage.py
relay_outbox`` on its own) hands over whatever that missed, trying again with backoff while
the broker refuses, so the operation starts within seconds of the broker returning.

Exactly-once effect: a relay takes pending entries under row locks that other relays skip,
publishes them, and marks them sent in that same transaction. A relay that dies between
publishing and committing leaves its entries pending, and they are published again: the tasks
are idempotent on the operation id (a second ``apply_operation`` finds the operation claimed or
sent and changes nothing), so a message may be doubled, never an effect.

The loop also takes over what dead workers left: an operation whose lease ran out unrenewed
(its worker stopped sending heartbeats) is released and handed out again.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from celery import signals
from django.conf import settings
from django.db import close_old_connections, connection, transaction
from django.utils import timezone

from clusters import events, operations, tasks
from clusters.models import OutboxEntry
from portal.logging import redact

logger = logging.getLogger("clusters.outbox")
Task = OutboxEntry.Task
TASKS: dict[str, Any] = {Task.APPLY: tasks.apply_operation, Task.POLL: tasks.poll_operation}
# One quick retry when publishing: a broker that is down answers at once, and the entry waits
# for the relay loop rather than the request for the broker.
PUBLISH_RETRY = {"max_retries": 1, "interval_start": 0.1, "interval_step": 0.2,
                 "interval_max": 0.2}


def describe(exc: BaseException) -> str:
    """An error in words fit for a log line or a row: its class and message, no credentials."""
    return redact(f"{type(exc).__name__}: {exc}")[:300]


# --------------------------------------------------------------------------- writing


def put(operation_id: int, task: str = Task.APPLY, *, now: datetime | None = None) -> None:
    """Record, in the caller's transaction, that ``task`` must run for the operation, and hand
    it to the broker once that transaction commits. A pending entry for the same operation
    and task already covers it (nothing is added)."""
    now = now or timezone.now()
    grace = timedelta(seconds=settings.OUTBOX_GRACE_SECONDS)
    OutboxEntry.objects.bulk_create(
        [OutboxEntry(operation_id=operation_id, task=task, created_at=now, due_at=now + grace)],
        ignore_conflicts=True)
    transaction.on_commit(lambda: hand_over([operation_id]))


def hand_over(operation_ids: list[int]) -> None:
    """After commit: publish the entries of these operations now, whatever their due time.
    Never raises: what is not handed over now, the relay loop hands over later."""
    try:
        relay(operation_ids=operation_ids)
    except Exception as exc:
        logger.warning("cluster.outbox.hand_over_deferred",
                       extra={"operations": operation_ids, "error": describe(exc)})


# --------------------------------------------------------------------------- relaying


@dataclass
class Relayed:
    sent: int = 0
    refused: int = 0
    error: str = ""


def _retry_delay(tries: int) -> float:
    """Backoff with jitter before an entry the broker refused is tried again."""
    delay = min(settings.OUTBOX_MAX_BACKOFF_SECONDS,
                settings.OUTBOX_RELAY_SECONDS * 2 ** max(tries - 1, 0))
    return random.uniform(delay / 2, delay)


def publish(entry: OutboxEntry) -> None:
    TASKS[entry.task].apply_async((entry.operation_id,), retry=True,
                                  retry_policy=PUBLISH_RETRY)


def relay(*, operation_ids: list[int] | None = None, limit: int = 100,
          now: datetime | None = None) -> Relayed:
    """Publish pending entries (those of ``operation_ids`` whatever their due time, else every
    due one) and mark them sent. At the first refusal the rest wait, with backoff."""
    now = now or timezone.now()
    result = Relayed()
    pending = OutboxEntry.objects.filter(sent_at__isnull=True)
    if operation_ids is None:
        pending = pending.filter(due_at__lte=now)
    else:
        pending = pending.filter(operation_id__in=operation_ids)
    if not pending.exists():  # the usual round: no transaction (SQLite would lock for it)
        return result
    with transaction.atomic():
        entries = list(pending.select_for_update(skip_locked=True)
                       .order_by("due_at", "pk")[:limit])
        sent: list[OutboxEntry] = []
        for index, entry in enumerate(entries):
            try:
                publish(entry)
            except Exception as exc:  # the broker refuses: these wait for the relay loop
                result.error = describe(exc)
                result.refused = len(entries) - index
                for waiting in entries[index:]:
                    waiting.tries += 1
                    waiting.due_at = now + timedelta(seconds=_retry_delay(waiting.tries))
                    waiting.last_error = result.error
                OutboxEntry.objects.bulk_update(entries[index:],
                                                ["tries", "due_at", "last_error"])
                logger.warning("cluster.outbox.broker_refused",
                               extra={"entries": result.refused, "error": result.error})
                break
            entry.sent_at = timezone.now()
            entry.tries += 1
            sent.append(entry)
        OutboxEntry.objects.bulk_update(sent, ["sent_at", "tries"])
        result.sent = len(sent)
    if result.sent:
        logger.info("cluster.outbox.relayed", extra={"entries": result.sent})
    return result


def purge(now: datetime | None = None) -> int:
    """Forget entries sent longer ago than ``OUTBOX_KEEP_SENT_SECONDS``."""
    now = now or timezone.now()
    before = now - timedelta(seconds=settings.OUTBOX_KEEP_SENT_SECONDS)
    deleted, _kinds = OutboxEntry.objects.filter(sent_at__lt=before).delete()
    return deleted


# --------------------------------------------------------------------------- taking over


def take_over_stalled(now: datetime | None = None) -> int:
    """Hand out again what dead workers left: operations whose lease ran out unrenewed (the
    worker stopped its heartbeats, or the retry it scheduled was lost). Returns how many.

    A sent operation needs no take-over: the watcher finishes it from what it observes, and
    the resync restarts a poll chain that broke."""
    now = now or timezone.now()
    count = 0
    for operation_id in operations.stalled(now):
        with transaction.atomic():
            operation = operations.take_over(operation_id, now=now)
            if operation is not None:
                put(operation_id, Task.APPLY, now=now)
                events.cluster_changed(operation.cluster_id)
                count += 1
                logger.warning("cluster.operation.taken_over",
                               extra={"operation_id": operation_id})
    return count


# --------------------------------------------------------------------------- the loop


class Relay:
    """The relay loop, in a thread: every ``OUTBOX_RELAY_SECONDS``, take over what dead workers
    left and hand pending entries to the broker; while the broker or the database refuses,
    back off (with jitter) up to ``OUTBOX_MAX_BACKOFF_SECONDS``. Never stops on an error."""

    def __init__(self, *, interval: float | None = None,
                 max_backoff: float | None = None) -> None:
        self.interval = settings.OUTBOX_RELAY_SECONDS if interval is None else interval
        self.max_backoff = (settings.OUTBOX_MAX_BACKOFF_SECONDS if max_backoff is None
                            else max_backoff)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.rounds = 0
        self._last_purge = -600  # the first round purges

    def start(self) -> Relay:
        self.thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self.thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(timeout)

    def run_once(self) -> Relayed:
        take_over_stalled()
        result = relay()
        if result.refused == 0 and self.rounds - self._last_purge >= 600:
            self._last_purge = self.rounds
            purge()
        return result

    def run(self) -> None:
        failures = 0
        try:
            while not self.stopping.is_set():
                close_old_connections()
                try:
                    refused = self.run_once().refused
                except Exception as exc:  # the database is unreachable: try again later
                    refused = 1
                    logger.warning("cluster.outbox.relay_failed", extra={"error": describe(exc)})
                    try:
                        connection.close()
                    except Exception:  # already gone
                        logger.debug("cluster.outbox.close_failed", exc_info=True)
                self.rounds += 1
                failures = failures + 1 if refused else 0
                delay = self.interval
                if failures:
                    delay = min(self.max_backoff, self.interval * 2 ** min(failures - 1, 6))
                    delay = random.uniform(delay / 2, delay)
                self.stopping.wait(delay)
        finally:
            connection.close()


_relay: Relay | None = None
_relay_lock = threading.Lock()


def start_relay() -> Relay:
    """The process's relay loop (one per process, however often this is called)."""
    global _relay
    with _relay_lock:
        if _relay is None:
            _relay = Relay().start()
        return _relay


def stop_relay() -> None:
    global _relay
    with _relay_lock:
        relay_loop, _relay = _relay, None
    if relay_loop is not None:
        relay_loop.stop()


def _on_worker_init(**_kwargs: Any) -> None:
    if settings.OUTBOX_RELAY_IN_WORKERS:
        start_relay()


def _on_worker_shutdown(**_kwargs: Any) -> None:
    stop_relay()


def connect_to_workers() -> None:
    """Every Celery worker (the embedded one of ``make run`` too) runs the relay loop, unless
    ``OUTBOX_RELAY_IN_WORKERS`` is off (then ``manage.py relay_outbox`` runs it)."""
    signals.worker_init.connect(_on_worker_init, weak=False)
    signals.worker_shutdown.connect(_on_worker_shutdown, weak=False)
