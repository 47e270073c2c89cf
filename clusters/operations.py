"""The operation state machine: the one writer of ``Operation`` state.

An operation is one change of a cluster on its way to the platform. Its state, steps, lease,
attempts, timestamps and outcome change here and nowhere else, each through a transition that
``TRANSITIONS`` allows; any other move raises ``IllegalTransition``. That is a bug, never a
person's mistake: what a person may be refused (a second change while one runs, a cancel once
the platform has the change, a retry of something that did not fail) is refused in words first
by the ``check_*`` functions here, which the actions call.

::

    start ─► queued ─claim─► running ─submit─► running (sent) ─succeed─► succeeded
               │                │  └─back_off─┘ (wait, then claim again)
               └──── fail / cancel / abandon ────► failed / cancelled ─retry─► a new queued one

    schedule ─► scheduled ─release (when due)─► queued …   (reschedule: another start time;
                    └──────── unschedule ────────► cancelled       it blocks no other change)

One active operation per cluster: ``check_idle`` refuses a second one in words, and the
partial unique index ``one_active_operation_per_cluster`` backs it (``start`` answers the
index's refusal with the same words). Every final state publishes ``OperationFinished`` in the
finishing transaction; its subscribers (staff alerts) run after commit. Each transition also
writes its entry in the cluster's timeline.

Locks: callers that finish or send an operation hold the cluster's row lock, then the
operation's (that order, everywhere). ``claim``, ``renew``, ``take_over`` and ``claim_poll``
are conditional updates and need no lock.

Leases: a claim holds the operation for ``OPERATION_LEASE_SECONDS`` under a holder id of its
own; the worker renews it every ``OPERATION_HEARTBEAT_SECONDS`` while the task runs. A lease
that ran out unrenewed means its worker died: ``take_over`` releases the operation for another
claim (the relay loop looks for such operations every second or so).

Adding a kind of waiting (an operation scheduled for a maintenance window) is a state on the
model, its rows in ``TRANSITIONS`` and its function here (``start`` with a start time, a
release that moves due operations to ``queued``); the rest of the portal keeps calling these.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import events, progress
from clusters.models import Cluster, ClusterEvent, Operation
from portal.audit import Actor

State = Operation.State
ACTIVE = frozenset(Operation.ACTIVE_STATES)
RETRYABLE = frozenset(Operation.RETRYABLE_STATES)


@dataclass(frozen=True)
class Transition:
    """Which states a verb moves an operation from, to which (``None``: it stays), and what
    must also hold of the operation (``guard``)."""

    sources: frozenset[str]
    target: str | None
    guard: Callable[[Operation], bool] | None = None


def _unsent(operation: Operation) -> bool:
    return operation.submitted_at is None


def _sent(operation: Operation) -> bool:
    return operation.submitted_at is not None


def _cancellable(operation: Operation) -> bool:
    return operation.can_cancel


TRANSITIONS: Mapping[str, Transition] = {
    # A worker takes an unsent operation to send it (a conditional update, see ``claim``).
    "claim": Transition(ACTIVE, State.RUNNING, _unsent),
    # Progress while it runs: a step moves, a worker waits to try again, a poll is due.
    "step": Transition(ACTIVE, None),
    "back_off": Transition(ACTIVE, None, _unsent),
    # Its worker holds it and is alive (a heartbeat renews the lease).
    "renew": Transition(ACTIVE, None, _unsent),
    # Its worker died (the lease ran out unrenewed): released for another to claim.
    "take_over": Transition(ACTIVE, None, _unsent),
    "submit": Transition(ACTIVE, None, _unsent),
    "poll": Transition(ACTIVE, None, _sent),
    # Final states.
    "succeed": Transition(ACTIVE, State.SUCCEEDED, _sent),
    "fail": Transition(ACTIVE, State.FAILED),
    "cancel": Transition(ACTIVE, State.CANCELLED, _cancellable),
    # Staff take over (manual cleanup): ended whatever its progress, the platform not asked.
    "abandon": Transition(ACTIVE, State.CANCELLED),
    # A failed or cancelled operation is run again as a new, queued operation.
    "retry": Transition(RETRYABLE, State.QUEUED),
    # A scheduled operation waits for its start time: moved to another time, released to the
    # queue when due, or dropped (re-planned, the policy changed, the cluster went away).
    "reschedule": Transition(frozenset({State.SCHEDULED}), None),
    "release": Transition(frozenset({State.SCHEDULED}), State.QUEUED),
    "unschedule": Transition(frozenset({State.SCHEDULED}), State.CANCELLED),
}


class IllegalTransition(Exception):
    """A transition the table does not allow for the operation as it stands."""

    def __init__(self, operation: Operation, verb: str) -> None:
        self.operation, self.verb = operation, verb
        super().__init__(f"operation {operation.pk} ({operation.state}, "
                         f"{'sent' if operation.submitted_at else 'unsent'}) cannot {verb}")


def allowed(operation: Operation, verb: str) -> bool:
    """May ``operation`` take ``verb`` as it stands?"""
    transition = TRANSITIONS[verb]
    return operation.state in transition.sources and (
        transition.guard is None or transition.guard(operation))


def check(operation: Operation, verb: str) -> str:
    """The state ``verb`` moves ``operation`` to; ``IllegalTransition`` if it may not."""
    if not allowed(operation, verb):
        raise IllegalTransition(operation, verb)
    return TRANSITIONS[verb].target or operation.state


# --------------------------------------------------------------------------- refusals in words


def busy_error() -> ValidationError:
    return ValidationError(
        _("Another change to this cluster is still in progress. Wait for it to finish, or "
          "cancel it, then try again."), code="busy")


def active_operation(cluster: Cluster, *, lock: bool = False) -> Operation | None:
    """The cluster's operation in progress, if any (row-locked with ``lock``)."""
    qs = cluster.operations.filter(state__in=Operation.ACTIVE_STATES)
    if lock:
        qs = qs.select_for_update(no_key=True)
    return qs.first()


def check_idle(cluster: Cluster) -> None:
    """One active operation per cluster: refuse a new change while one is in progress."""
    if cluster.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
        raise busy_error()


def check_cancellable(operation: Operation) -> None:
    """A person may cancel only what the platform has not received, and nothing a worker may
    be sending right now."""
    if not allowed(operation, "cancel"):
        raise ValidationError(_(
            "This operation can no longer be cancelled: the platform already has the change. "
            "Make a new change to undo it."), code="not_cancellable")


def check_retryable(operation: Operation) -> None:
    if not allowed(operation, "retry"):
        raise ValidationError(_("Only a failed or cancelled operation can be retried."),
                              code="not_retryable")


def check_retry(operation: Operation, cluster: Cluster) -> None:
    """Only the cluster's latest operation is retried, and only while nothing else runs, so a
    retry cannot be applied twice."""
    check_retryable(operation)
    if cluster.operations.filter(created_at__gt=operation.created_at).exclude(
            state=State.SCHEDULED).exists():
        raise ValidationError(_("A newer change to this cluster exists; retry that one."),
                              code="superseded")
    check_idle(cluster)


# --------------------------------------------------------------------------- starting


def start(actor: Actor, cluster: Cluster, kind: str, *, params: dict[str, Any],
          desired_spec: dict[str, Any], summary: str, idempotency_key: str = "",
          now: datetime | None = None) -> Operation:
    """Record a queued operation of ``cluster`` and its timeline entry. A second active
    operation of the cluster is refused in words (the partial unique index decides, so two
    concurrent requests cannot both pass)."""
    now = now or timezone.now()
    operation = Operation(
        tenant_id=cluster.tenant_id, cluster=cluster, kind=kind, state=State.QUEUED,
        params=params, desired_spec=desired_spec, steps=progress.initial_steps(kind),
        requested_by_id=actor.user.pk if actor.user is not None else None,
        requested_via=actor.via, created_at=now,
        deadline_at=now + timedelta(seconds=settings.PLATFORM_OPERATION_TIMEOUT),
        idempotency_key=idempotency_key)
    try:
        with transaction.atomic():
            operation.save()
    except IntegrityError:
        raise busy_error() from None
    _timeline(operation, f"operation.{kind}", summary, at=now, actor_label=actor.label)
    return operation


def retry(actor: Actor, old: Operation, cluster: Cluster, *, desired_spec: dict[str, Any],
          params: dict[str, Any], summary: str) -> Operation:
    """Start a new operation with the intent of ``old`` (failed or cancelled, the cluster's
    latest, nothing else running)."""
    check_retry(old, cluster)
    check(old, "retry")
    return start(actor, cluster, old.kind, params={**params, "retry_of": old.pk},
                 desired_spec=desired_spec, summary=summary)


# --------------------------------------------------------------------------- waiting


def schedule(actor: Actor, cluster: Cluster, kind: str, *, params: dict[str, Any],
             not_before: datetime, summary: str, now: datetime | None = None) -> Operation:
    """Record an operation of ``cluster`` that waits until ``not_before`` (a maintenance
    window), and its timeline entry. It is not active: other changes go ahead meanwhile, and
    what it sends is planned when it is released (``release``)."""
    now = now or timezone.now()
    operation = Operation.objects.create(
        tenant_id=cluster.tenant_id, cluster=cluster, kind=kind, state=State.SCHEDULED,
        params=params, desired_spec={}, steps=[], not_before=not_before,
        requested_by_id=actor.user.pk if actor.user is not None else None,
        requested_via=actor.via, created_at=now)
    _timeline(operation, f"operation.{kind}.scheduled", summary, at=now,
              actor_label=actor.label)
    return operation


def reschedule(operation: Operation, not_before: datetime, message: str, *, actor_label: str,
               params: dict[str, Any] | None = None, now: datetime | None = None) -> None:
    """Move a scheduled operation to another start time, said on the timeline."""
    check(operation, "reschedule")
    operation.not_before = not_before
    fields = ["not_before"]
    if params is not None:
        operation.params = params
        fields.append("params")
    operation.save(update_fields=fields)
    _timeline(operation, "operation.rescheduled", message, at=now, actor_label=actor_label)


def release(operation: Operation, *, params: dict[str, Any], desired_spec: dict[str, Any],
            summary: str, actor_label: str, now: datetime | None = None) -> None:
    """A scheduled operation's time came: it is queued with what it sends, planned now, and
    runs like any other. The caller holds the cluster's row lock and checked it idle; the
    partial unique index still refuses a second active operation in words."""
    state = check(operation, "release")
    now = now or timezone.now()
    try:
        with transaction.atomic():
            Operation.objects.filter(pk=operation.pk, state=State.SCHEDULED).update(
                state=state, params=params, desired_spec=desired_spec,
                steps=progress.initial_steps(operation.kind),
                deadline_at=now + timedelta(seconds=settings.PLATFORM_OPERATION_TIMEOUT))
    except IntegrityError:
        raise busy_error() from None
    operation.refresh_from_db()
    _timeline(operation, f"operation.{operation.kind}", summary, at=now, actor_label=actor_label)


def unschedule(operation: Operation, reason: str, *, actor_label: str,
               at: datetime | None = None) -> None:
    """Drop a scheduled operation before it started (nothing was sent, nothing to undo)."""
    _finish(operation, "unschedule", steps=[], error_message=reason, at=at,
            actor_label=actor_label)
    _timeline(operation, "operation.cancelled", reason, at=at, actor_label=actor_label)


# --------------------------------------------------------------------------- sending


def lease() -> timedelta:
    return timedelta(seconds=settings.OPERATION_LEASE_SECONDS)


def heartbeat_seconds() -> float:
    """How often a worker renews the lease of the operation it runs."""
    return float(settings.OPERATION_HEARTBEAT_SECONDS)


def claim(operation_id: int, token: str = "") -> str:
    """Take the operation for sending: only while unsent, and only if nobody holds it (or this
    message is the retry its holder scheduled, carrying the holder's token). Returns the
    holder id of this claim (renew the lease with it), or "" when the operation is not free."""
    now = timezone.now()
    free = Q(lease_until__isnull=True) | Q(lease_until__lt=now)
    if token:
        free |= Q(lease_token=token)
    holder = uuid.uuid4().hex
    taken = (
        Operation.objects.filter(pk=operation_id, state__in=TRANSITIONS["claim"].sources,
                                 submitted_at__isnull=True)
        .filter(free)
        .update(state=TRANSITIONS["claim"].target, lease_until=now + lease(), lease_token="",
                lease_holder=holder, attempts=F("attempts") + 1,
                started_at=Coalesce("started_at", now))
    )
    return holder if taken else ""


def renew(operation_id: int, holder: str) -> bool:
    """The heartbeat of the worker that claimed the operation as ``holder``: extend its lease.
    False once the lease is no longer this claim's (sent, finished, parked for a retry, or
    taken over after it ran out): the worker must not send then."""
    transition = TRANSITIONS["renew"]
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=transition.sources,
                                 submitted_at__isnull=True, lease_holder=holder,
                                 lease_token="")
        .update(lease_until=timezone.now() + lease())
    )


def stalled(now: datetime | None = None) -> list[int]:
    """Operations whose lease ran out unrenewed (their worker died, or the retry it scheduled
    was lost), oldest first."""
    now = now or timezone.now()
    return list(
        Operation.objects.filter(state__in=TRANSITIONS["take_over"].sources,
                                 submitted_at__isnull=True, lease_until__lt=now)
        .order_by("lease_until").values_list("pk", flat=True)[:100]
    )


def take_over(operation_id: int, *, now: datetime | None = None) -> Operation | None:
    """Release an operation whose lease ran out, so that another worker claims it, and say so
    in its timeline. ``None`` if it is no longer stalled (claimed again, sent or finished)."""
    now = now or timezone.now()
    transition = TRANSITIONS["take_over"]
    released = Operation.objects.filter(
        pk=operation_id, state__in=transition.sources, submitted_at__isnull=True,
        lease_until__lt=now,
    ).update(lease_until=None, lease_token="", lease_holder="")
    if not released:
        return None
    operation = Operation.objects.get(pk=operation_id)
    _timeline(operation, "operation.taken_over",
              _("The worker handling this change stopped responding; another worker takes it "
                "over."), severity=ClusterEvent.Severity.WARNING, at=now)
    return operation


def step(operation: Operation, key: str, state: str, detail: str | None = None, *,
         now: datetime | None = None) -> None:
    """Move one step of the operation (``progress`` step states)."""
    check(operation, "step")
    operation.steps = progress.set_step(operation.steps, key, state, detail, now=now)
    Operation.objects.filter(pk=operation.pk).update(steps=operation.steps)


def back_off(operation: Operation, *, countdown: float, detail: str,
             now: datetime | None = None) -> str:
    """Hold the operation for the retry a worker schedules in ``countdown`` seconds (nobody
    else may take it meanwhile); the token lets that retry take it back."""
    check(operation, "back_off")
    now = now or timezone.now()
    token = uuid.uuid4().hex
    validate = operation.step("validate")
    key = "submit" if validate is None or validate["state"] == progress.DONE else "validate"
    operation.steps = progress.set_step(operation.steps, key, progress.RUNNING, detail)
    operation.lease_until = now + timedelta(seconds=countdown) + lease()
    operation.lease_token = token
    operation.lease_holder = ""
    Operation.objects.filter(pk=operation.pk).update(
        lease_until=operation.lease_until, lease_token=token, lease_holder="",
        steps=operation.steps)
    return token


def submit(operation: Operation, *, changed: bool, baseline: dict[str, Any] | None,
           now: datetime | None = None) -> None:
    """The platform has the change: record what it found (whether the spec changed there and
    the Ready condition it replaced) and release the lease. The caller holds the row locks."""
    check(operation, "submit")
    now = now or timezone.now()
    operation.steps = progress.set_step(operation.steps, "submit", progress.DONE, "", now=now)
    operation.submitted_at = now
    operation.lease_until = None
    operation.lease_token = ""
    operation.lease_holder = ""
    operation.submitted_changed = changed
    operation.baseline_ready = baseline
    operation.save(update_fields=["steps", "submitted_at", "lease_until", "lease_token",
                                  "lease_holder", "submitted_changed", "baseline_ready"])
    _timeline(operation, "operation.submitted",
              _("The platform accepted the change.") if changed
              else _("The platform already had this configuration."), at=now)


def claim_poll(operation_id: int) -> bool:
    """One poll chain per operation: a poll runs only when the next poll is due (a duplicate
    chain, from a redelivery or the resync, finds it not due and ends)."""
    now = timezone.now()
    interval = timedelta(seconds=settings.OPERATION_POLL_SECONDS)
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=TRANSITIONS["poll"].sources,
                                 submitted_at__isnull=False)
        .filter(Q(next_poll_at__isnull=True) | Q(next_poll_at__lte=now + interval / 2))
        .update(next_poll_at=now + interval)
    )


def follow(operation: Operation, steps: list[dict[str, Any]]) -> None:
    """An observation moved the steps of an operation in flight, without an outcome."""
    check(operation, "step")
    if steps != operation.steps:
        operation.steps = steps
        operation.save(update_fields=["steps"])


# --------------------------------------------------------------------------- finishing


def succeed(operation: Operation, *, steps: list[dict[str, Any]],
            at: datetime | None = None) -> None:
    """The platform converged on the change."""
    _finish(operation, "succeed", steps=steps, at=at)
    _timeline(operation, f"operation.{operation.kind}.done",
              _("“%(op)s” finished.") % {"op": operation.get_kind_display()})


def fail(operation: Operation, error_class: str, message: str, *,
         steps: list[dict[str, Any]] | None = None, at: datetime | None = None) -> None:
    """End the operation as failed with a message a person can act on. ``steps``: as observed
    (else the step in progress fails with ``message``)."""
    _finish(operation, "fail", steps=steps if steps is not None
            else progress.fail_current(operation.steps, message),
            error_class=error_class, error_message=message, at=at)
    _timeline(operation, f"operation.{operation.kind}.failed", message,
              severity=ClusterEvent.Severity.ERROR)


def cancel(operation: Operation, reason: str, *, actor_label: str,
           at: datetime | None = None) -> None:
    """End an operation the platform has not received yet (steps left undone are skipped)."""
    _finish(operation, "cancel", steps=progress.cancel_steps(operation.steps),
            error_message=reason, at=at, actor_label=actor_label)
    _timeline(operation, "operation.cancelled", reason, actor_label=actor_label)


def abandon(operation: Operation, message: str, *, actor_label: str,
            at: datetime | None = None) -> None:
    """Staff take over what the platform cannot finish: a deletion fails (it did not
    finish; a platform error), any other change is cancelled, whatever its progress. The
    caller records why in the timeline."""
    at = at or timezone.now()
    if operation.kind == Operation.Kind.DELETE:
        _finish(operation, "fail", steps=progress.cancel_steps(
                    progress.fail_current(operation.steps, message, now=at)),
                error_class=Operation.ErrorClass.PLATFORM_ERROR, error_message=message, at=at,
                actor_label=actor_label)
    else:
        _finish(operation, "abandon", steps=progress.cancel_steps(operation.steps),
                error_message=message, at=at, actor_label=actor_label)


def _finish(operation: Operation, verb: str, *, steps: list[dict[str, Any]],
            error_class: str | None = None, error_message: str | None = None,
            at: datetime | None = None, actor_label: str = "") -> None:
    operation.state = check(operation, verb)
    operation.steps = steps
    operation.finished_at = at or timezone.now()
    operation.lease_until = None
    operation.lease_token = ""
    operation.lease_holder = ""
    fields = ["state", "steps", "finished_at", "lease_until", "lease_token", "lease_holder"]
    if error_class is not None:
        operation.error_class = error_class
        fields.append("error_class")
    if error_message is not None:
        operation.error_message = error_message
        fields.append("error_message")
    operation.save(update_fields=fields)
    events.publish(events.OperationFinished(operation, actor_label=actor_label))


def _timeline(operation: Operation, reason: str, message: str, *,
              severity: str = ClusterEvent.Severity.INFO, at: datetime | None = None,
              actor_label: str = "") -> None:
    ClusterEvent.objects.create(
        tenant_id=operation.tenant_id, cluster_id=operation.cluster_id, operation=operation,
        at=at or timezone.now(), source=ClusterEvent.Source.PORTAL, severity=severity,
        reason=reason, message=message, actor_label=actor_label)
