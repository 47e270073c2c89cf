"""The registry of domain events: who reacts to what, found in one place.

A domain says *what happened* by publishing a small, typed event (a frozen dataclass of its
own module, such as ``clusters.events``); it never calls the floors that react. Billing meters
usage, the web floor pushes to open pages, staff are alerted: each registers its handlers at
start-up (``AppConfig.ready``), so every reaction can be found by reading those ``ready``
methods, and no domain imports its subscribers.

Two moments of delivery:

- ``in_transaction``: the handler runs inside ``publish``, in the publisher's transaction (if
  any), so what it writes commits or rolls back with the change it follows (metering).
- ``after_commit``: the handler runs once the publisher's transaction commits, never for a
  change that rolled back (pushes, alerts, enqueued work). A failing handler is logged and never
  undoes or fails the change it reports.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from django.db import transaction

logger = logging.getLogger("portal.events")

Moment = Literal["in_transaction", "after_commit"]
E = TypeVar("E")
Handler = Callable[[Any], None]

_handlers: dict[tuple[type, Moment], list[Handler]] = defaultdict(list)


def subscribe(event_type: type[E], handler: Callable[[E], None], *, moment: Moment) -> None:
    """Call ``handler`` for every ``event_type`` published from now on (idempotent)."""
    handlers = _handlers[(event_type, moment)]
    if handler not in handlers:
        handlers.append(handler)


def subscribers(event_type: type, moment: Moment) -> list[Handler]:
    """Who reacts to ``event_type`` at ``moment``."""
    return list(_handlers[(event_type, moment)])


def publish(event: object, *, after_commit: Callable[[], None] | None = None) -> None:
    """Run the in-transaction handlers now and schedule the after-commit ones.

    ``after_commit`` replaces the plain after-commit delivery for events whose publisher
    delivers them its own way (batched or coalesced); it calls ``deliver`` in the end.
    """
    for handler in _handlers[(type(event), "in_transaction")]:
        handler(event)
    if after_commit is not None:
        transaction.on_commit(after_commit)
    elif _handlers[(type(event), "after_commit")]:
        transaction.on_commit(lambda: deliver(event))


def deliver(event: object) -> None:
    """Run the after-commit handlers of ``event`` now, in this thread."""
    for handler in _handlers[(type(event), "after_commit")]:
        try:
            handler(event)
        except Exception:  # a reaction must never undo or fail the change it reports
            logger.exception("event.handler.failed",
                             extra={"event": type(event).__name__,
                                    "handler": getattr(handler, "__qualname__", repr(handler))})
