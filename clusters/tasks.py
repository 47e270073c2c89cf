"""Celery tasks that carry operations to the platform and follow them until they converge.

Tasks take ids, re-read the rows and claim work with a conditional UPDATE: a lease, which the
worker renews from a heartbeat thread while the task runs (``Heartbeat``). A killed worker's
lease runs out unrenewed within ``OPERATION_LEASE_SECONDS`` and the relay loop hands the
operation to another worker (``clusters.outbox``); the broker's redelivery of the
unacknowledged message and the periodic resync are the backstops. They never sleep waiting for
the platform: they record where things stand and enqueue a poll, or a retry with exponential
backoff and jitter.
"""

from __future__ import annotations

import logging
import random
import threading
from datetime import timedelta
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import (
    events,
    lifecycle,
    observe,
    offerings,
    operations,
    plans,
    platform_release,
    progress,
    watcher,
)
from clusters.desired import write_desired_rows
from clusters.models import Cluster, ClusterEvent, Operation
from cozystack.dialects import Dialect
from cozystack.gateway import (
    MANAGED_BY,
    MANAGED_BY_LABEL,
    Applied,
    Conflict,
    NotFound,
    PlatformError,
    PlatformRejected,
    PlatformUnavailable,
    QuotaExceeded,
    get_gateway,
)
from cozystack.manifests import render_kubernetes
from cozystack.specjson import spec_from_json
from cozystack.validation import validate_manifest
from portal import metrics

logger = logging.getLogger("clusters.tasks")
TASK_OPTIONS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True,
                                "soft_time_limit": 90, "time_limit": 120}
STALE_AFTER = timedelta(minutes=1)


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with jitter, so a platform coming back is not stampeded."""
    return random.uniform(base / 2, min(cap, base * 2 ** max(attempt - 1, 0)))


class SpecRejected(Exception):
    """The spec fails the platform's published schema or the portal's rules: never sent."""


class ReleaseUnknown(PlatformUnavailable):
    """The platform runs a release no dialect knows: nothing is sent, the operation waits (with
    backoff, until its deadline) for a portal that speaks it."""


# --------------------------------------------------------------------------- polling


def schedule_poll(operation_id: int) -> None:
    poll_operation.apply_async((operation_id,), countdown=settings.OPERATION_POLL_SECONDS)


def _step(operation: Operation, key: str, state: str) -> None:
    operations.step(operation, key, state)
    events.cluster_changed(operation.cluster_id)


class Heartbeat:
    """Renews the lease of a claimed operation from a thread of its own, every
    ``OPERATION_HEARTBEAT_SECONDS``, while the task runs (a worker blocked on the platform
    keeps it; a dead one lets it run out). Ends with the task, or once the lease is no longer
    this claim's (sent, parked for a retry, finished)."""

    def __init__(self, operation_id: int, holder: str) -> None:
        self.operation_id, self.holder = operation_id, holder
        self.every = operations.heartbeat_seconds()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True,
                                       name=f"lease-{operation_id}")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join(5)

    def _run(self) -> None:
        try:
            while not self.done.wait(self.every):
                try:
                    if not operations.renew(self.operation_id, self.holder):
                        return
                except Exception as exc:  # the database blinked: the next beat tries again
                    logger.warning("cluster.operation.heartbeat_failed",
                                   extra={"operation_id": self.operation_id,
                                          "error": type(exc).__name__})
                    connection.close()
        finally:
            connection.close()


# --------------------------------------------------------------------------- failing


def fail_operation(operation_id: int, error_class: str, message: str) -> None:
    """Mark an operation failed with a message a person can act on; the cluster shows it.

    A change that never reached the platform leaves it untouched: the desired rows go back to
    what they were, so they keep saying what the platform runs. Safe to repeat (a finished
    operation is left alone).
    """
    with transaction.atomic():
        cluster_id = Operation.objects.values_list("cluster_id", flat=True).get(pk=operation_id)
        cluster = (Cluster.objects.select_for_update(no_key=True, of=("self",))
                   .select_related("tenant").get(pk=cluster_id))
        operation = Operation.objects.select_for_update(no_key=True).get(pk=operation_id)
        if not operation.is_active:
            return
        operations.fail(operation, error_class, message)
        if operation.submitted_at is None and operation.kind == Operation.Kind.CREATE:
            cluster.phase = Cluster.Phase.FAILED
            cluster.status_message = (_("Failed: %(message)s") % {"message": message})[:500]
            cluster.last_error = message
            cluster.save()
            events.cluster_changed(cluster.pk)
        else:
            if operation.submitted_at is None and operation.params.get("before") \
                    and operation.kind != Operation.Kind.DELETE:
                write_desired_rows(cluster, spec_from_json(operation.params["before"]))
            observe.refresh(cluster)
    logger.warning("cluster.operation.failed",
                   extra={"operation_id": operation_id, "error_class": error_class})


def remove_orphan(cluster: Cluster) -> bool:
    """Delete a platform object left by a create that failed before the portal recorded it as
    sent (its POST landed, the answer was lost). True if one was removed.

    Only objects the portal created are touched, and only while no operation of the cluster
    was ever sent or is still running: then nothing on the platform can be intended.
    """
    if cluster.operations.filter(Q(submitted_at__isnull=False)
                                 | Q(state__in=Operation.ACTIVE_STATES)).exists():
        return False
    gateway = get_gateway()
    obj = gateway.get_cluster(cluster.tenant.namespace, cluster.name)
    if obj is None:
        return False
    meta = obj.get("metadata") or {}
    if (meta.get("labels") or {}).get(MANAGED_BY_LABEL) != MANAGED_BY:
        return False
    if not meta.get("deletionTimestamp"):
        gateway.delete_cluster(cluster.tenant.namespace, cluster.name)
        ClusterEvent.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, source=ClusterEvent.Source.PORTAL,
            severity=ClusterEvent.Severity.WARNING, reason="cleanup",
            message=_("Removed what the failed creation had left on the platform."))
        logger.warning("cluster.orphan.removed", extra={"cluster_id": cluster.pk})
    return True


# --------------------------------------------------------------------------- sending


def _release() -> platform_release.PlatformRelease:
    """The release the platform runs right now, read from its published schema."""
    try:
        release = platform_release.current(fresh=True)
    except PlatformUnavailable:
        raise
    except PlatformError:
        logger.warning("cluster.schema.unreadable_using_last_known")
        release = platform_release.current()
    if release.dialect is None:
        raise ReleaseUnknown(_(platform_release.UNKNOWN_MESSAGE))
    return release


def _validate(operation: Operation, release: platform_release.PlatformRelease) -> None:
    """Check the spec against the schema the platform publishes right now (and our rules, in
    the dialect of the release it runs)."""
    assert release.dialect is not None  # checked by _release
    after = spec_from_json(operation.params["after"])
    before = operation.params.get("before")
    errors = validate_manifest(after, release.schema, dialect=release.dialect,
                               creating=operation.kind == Operation.Kind.CREATE,
                               previous=spec_from_json(before) if before else None,
                               **offerings.as_requested(after))
    if operation.params.get("retry_of"):
        errors = plans.waived_for_retry(errors)
    errors = plans.waived_while_asleep(spec_from_json(before) if before else None, after,
                                       operation.params.get(plans.HIBERNATION_PARAM), errors)
    if errors:
        # Each sentence names its field in words ("Node group md0: …"); never sent.
        raise SpecRejected(" ".join(e.message for e in errors))


def manifest_to_send(operation: Operation, dialect: Dialect) -> dict[str, Any]:
    """The object to write: the operation's desired spec rendered in the dialect of the
    release the platform runs now (it may have been upgraded since the request), never a copy
    of what the platform shows (that would carry its defaults, ``talos`` among them)."""
    return render_kubernetes(spec_from_json(operation.params["after"]), dialect,
                             labels={MANAGED_BY_LABEL: MANAGED_BY})


def _send(operation: Operation, cluster: Cluster, dialect: Dialect | None) -> Applied | None:
    gateway = get_gateway()
    namespace = cluster.tenant.namespace
    if operation.kind == Operation.Kind.DELETE or dialect is None:
        gateway.delete_cluster(namespace, cluster.name)
        return None
    manifest = manifest_to_send(operation, dialect)
    if operation.kind == Operation.Kind.CREATE:
        return gateway.create_cluster(manifest)
    try:
        return gateway.replace_cluster(manifest)
    except NotFound:
        if cluster.platform_resource_version:
            raise
        # The creation never reached the platform: the latest desired spec creates it.
        return gateway.create_cluster(manifest)


def _retry_later(operation: Operation, error: PlatformError | str) -> None:
    """Release the operation to a retry scheduled with backoff (nobody else may take it
    meanwhile), or fail it if the retry would come after its deadline."""
    message = error.message if isinstance(error, PlatformError) else error
    countdown = backoff(operation.attempts)
    now = timezone.now()
    paused = isinstance(error, ReleaseUnknown)
    if operation.deadline_at and now + timedelta(seconds=countdown) >= operation.deadline_at:
        fail_operation(operation.pk, Operation.ErrorClass.PLATFORM_UNAVAILABLE,
                       message if paused else
                       _("The platform stayed unreachable until the deadline: %(e)s")
                       % {"e": message})
        return
    retry = {"s": max(1, round(countdown)), "n": operation.attempts}
    detail = (_("%(message)s Trying again in %(s)s s (attempt %(n)s).")
              % {"message": message, **retry}) if paused else \
        _("The platform is unreachable; retrying in %(s)s s (attempt %(n)s).") % retry
    with transaction.atomic():
        token = operations.back_off(operation, countdown=countdown, now=now, detail=detail)
        events.cluster_changed(operation.cluster_id)
    logger.info("cluster.operation.retry", extra={"operation_id": operation.pk,
                                                   "countdown": countdown, "error": message})
    apply_operation.apply_async((operation.pk,), {"token": token}, countdown=countdown)


def _record_submitted(operation: Operation, cluster: Cluster, applied: Applied | None) -> None:
    with transaction.atomic():
        now = timezone.now()
        Cluster.objects.select_for_update(no_key=True).filter(pk=cluster.pk).first()
        locked = Operation.objects.select_for_update(no_key=True).get(pk=operation.pk)
        operations.submit(locked, changed=applied.changed if applied else True,
                          baseline=applied.baseline if applied else None, now=now)
        events.cluster_changed(cluster.pk)


@shared_task(name="clusters.apply_operation", bind=True, **TASK_OPTIONS)
def apply_operation(self: Any, operation_id: int, token: str = "") -> None:
    """Send an operation's change to the platform once; safe to deliver any number of times.

    Changes: the platform object (create, replace or delete), then the operation's steps and
    ``submitted_at``. A repeated delivery finds the operation claimed or already sent and only
    makes sure a poll follows it. A create that finds its object already there (its POST
    landed, the worker died before recording it) re-applies the same spec, which changes
    nothing: the platform never holds two objects and the intent is never lost. A spec that
    fails the platform's published schema is never sent.
    """
    with events.batched():
        _apply_operation(operation_id, token)


def _apply_operation(operation_id: int, token: str) -> None:
    """The body of ``apply_operation``."""
    holder = operations.claim(operation_id, token)
    if not holder:
        operation = Operation.objects.filter(pk=operation_id).first()
        if operation is not None and operation.is_active and operation.submitted_at:
            schedule_poll(operation_id)
        return
    with Heartbeat(operation_id, holder):
        _send_claimed(operation_id, holder)


def _send_claimed(operation_id: int, holder: str) -> None:
    """Validate and send an operation this worker claimed as ``holder``."""
    operation = Operation.objects.select_related("cluster__tenant").get(pk=operation_id)
    cluster = operation.cluster
    try:
        release = _release()
        dialect = None
        if operation.kind != Operation.Kind.DELETE:
            _step(operation, "validate", progress.RUNNING)
            _validate(operation, release)
            _step(operation, "validate", progress.DONE)
            dialect = release.dialect
        if not operations.renew(operation_id, holder):
            # Taken over while this worker was stalled: the new holder sends it.
            logger.warning("cluster.operation.lease_lost", extra={"operation_id": operation_id})
            return
        _step(operation, "submit", progress.RUNNING)
        applied = _send(operation, cluster, dialect)
    except SpecRejected as exc:
        fail_operation(operation_id, Operation.ErrorClass.INVALID_SPEC, str(exc))
        return
    except PlatformUnavailable as exc:
        _retry_later(operation, exc)
        return
    except SoftTimeLimitExceeded:
        _retry_later(operation, _("The platform answered too slowly."))
        return
    except (Conflict, NotFound) as exc:
        fail_operation(operation_id, Operation.ErrorClass.CONFLICT, exc.message)
        return
    except PlatformRejected as exc:
        error_class = Operation.ErrorClass.QUOTA if isinstance(exc, QuotaExceeded) else \
            Operation.ErrorClass.INVALID_SPEC if exc.status in (400, 422) \
            else Operation.ErrorClass.PLATFORM_ERROR
        fail_operation(operation_id, error_class, exc.message)
        if operation.kind == Operation.Kind.CREATE:
            _cleanup_after_failed_create(cluster)
        return
    _record_submitted(operation, cluster, applied)
    schedule_poll(operation_id)


def _cleanup_after_failed_create(cluster: Cluster) -> None:
    try:
        remove_orphan(cluster)
    except PlatformError as exc:  # the resync tries again
        logger.info("cluster.orphan.cleanup_deferred", extra={"cluster_id": cluster.pk,
                                                              "error": exc.message})


# --------------------------------------------------------------------------- following


def observe_cluster(cluster: Cluster) -> None:
    """Read everything the platform says about one cluster and apply it (the watcher's twin),
    then weigh its operation in flight against the result."""
    gateway = get_gateway()
    namespace = cluster.tenant.namespace
    obj = gateway.get_cluster(namespace, cluster.name)
    if obj is None:
        observe.apply_cluster_object(namespace, obj, name=cluster.name)
        return
    mds = gateway.list_machine_deployments(namespace, cluster.name)
    kubeconfig = gateway.kubeconfig_exists(namespace, cluster.name)
    with observe.batch():  # everything read above, applied in one transaction
        _apply_observed(cluster, obj, mds, kubeconfig)
        observe.reevaluate(namespace, cluster.name)


def _apply_observed(cluster: Cluster, obj: dict[str, Any], mds: list[dict[str, Any]],
                    kubeconfig: bool) -> None:
    namespace = cluster.tenant.namespace
    observe.apply_cluster_object(namespace, obj, name=cluster.name)
    seen = set()
    for md in mds:
        located = observe.group_of(md)
        if located:
            seen.add(located[1])
        observe.apply_machine_deployment(namespace, md)
    release = f"kubernetes-{cluster.name}"
    for group in cluster.node_groups.exclude(name__in=seen).exclude(observed_phase="Deleted"):
        if group.observed_nodes or group.desired_nodes or group.removed_at:
            absent = {"metadata": {"name": f"{release}-{group.name}",
                                   "labels": {"cluster.x-k8s.io/cluster-name": release}}}
            observe.apply_machine_deployment(namespace, absent, deleted=True)
    observe.apply_kubeconfig_presence(namespace, cluster.name, kubeconfig)


@shared_task(name="clusters.poll_operation", bind=True, **TASK_OPTIONS)
def poll_operation(self: Any, operation_id: int) -> None:
    """Observe the cluster of an operation in flight; finish it, fail it at its deadline, or
    poll again later.

    Changes only what observation changes (rows, steps, the outcome) plus ``next_poll_at``.
    Safe to repeat: a second poll chain for the same operation ends at its first step.
    """
    with events.batched():
        _poll_operation(operation_id)


def _poll_operation(operation_id: int) -> None:
    operation = Operation.objects.select_related("cluster__tenant").filter(
        pk=operation_id).first()
    if operation is None or not operation.is_active or operation.submitted_at is None:
        return
    if not operations.claim_poll(operation_id):
        return
    try:
        observe_cluster(operation.cluster)
    except PlatformError as exc:
        logger.info("cluster.poll.platform_error", extra={"operation_id": operation_id,
                                                          "error": exc.message})
    except SoftTimeLimitExceeded:
        logger.info("cluster.poll.too_slow", extra={"operation_id": operation_id})
    operation.refresh_from_db()
    if not operation.is_active:
        return
    if operation.deadline_at and timezone.now() >= operation.deadline_at:
        fail_operation(operation_id, Operation.ErrorClass.TIMEOUT,
                       progress.stuck_message(operation))
        return
    schedule_poll(operation_id)


# --------------------------------------------------------------------------- repair


@shared_task(name="clusters.resync", **TASK_OPTIONS)
def resync() -> dict[str, int]:
    """Repair anything a dropped watch or a lost message missed (beat, every minute).

    Re-enqueues operations nobody holds, re-reads the platform in three lists and applies any
    difference, and removes objects left by failed creations. Safe to repeat.
    """
    now = timezone.now()
    counts = {"requeued": 0, "polled": 0, "changed": 0, "orphans": 0, "unreachable": 0}
    stale = now - STALE_AFTER
    poll_stale = now - max(STALE_AFTER, timedelta(seconds=3 * settings.OPERATION_POLL_SECONDS))
    for operation in Operation.objects.filter(state__in=Operation.ACTIVE_STATES):
        if operation.submitted_at is None:
            if operation.created_at < stale and (operation.lease_until is None
                                                 or operation.lease_until < now):
                apply_operation.delay(operation.pk)
                counts["requeued"] += 1
        elif (operation.next_poll_at or operation.submitted_at) < poll_stale:
            schedule_poll(operation.pk)
            counts["polled"] += 1
    try:
        counts["changed"] = watcher.sync_all(get_gateway())
        failed_creates = Cluster.objects.live().select_related("tenant").filter(
            phase=Cluster.Phase.FAILED, platform_resource_version="")
        for cluster in failed_creates:
            counts["orphans"] += remove_orphan(cluster)
    except PlatformError:
        counts["unreachable"] += 1
    record_resync(counts)
    return counts


def record_resync(counts: dict[str, int]) -> None:
    metrics.resync_finished(counts)
    cache.set("clusters:last-resync", {"at": timezone.now().isoformat(), **counts}, None)


@shared_task(name="clusters.check_end_of_life", **TASK_OPTIONS)
def check_end_of_life() -> int:
    """Tell tenants whose clusters run a version near its end of life (beat, every few
    hours).

    Changes: one ``VersionNotice`` and one timeline entry per cluster and version, and the
    ``version.end_of_life_soon`` notification. Safe to repeat: a cluster is told once per
    version.
    """
    return offerings.check_end_of_life()


@shared_task(name="clusters.plan_lifecycle", **TASK_OPTIONS)
def plan_lifecycle() -> dict[str, int]:
    """Start the automatic actions due now (beat, once a minute): upgrades in maintenance
    windows, hibernation and waking on schedule, expiry. See ``clusters.lifecycle``."""
    return lifecycle.run()
