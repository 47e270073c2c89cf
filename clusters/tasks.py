"""Celery tasks that carry operations to the platform and follow them until they converge.

Tasks take ids, re-read the rows, claim work with a conditional UPDATE (a lease, so a killed
worker's operation is picked up again after redelivery), and never sleep waiting for the
platform: they record where things stand and enqueue a poll.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import broadcast, observe, progress
from clusters.models import Cluster, ClusterEvent, Operation
from clusters.platform.gateway import (
    Conflict,
    NotFound,
    PlatformError,
    PlatformUnavailable,
    get_gateway,
)
from clusters.platform.validation import validate_manifest
from clusters.schema import platform_schema
from clusters.specjson import spec_from_json

logger = logging.getLogger("clusters.tasks")
LEASE = timedelta(seconds=120)
TASK_OPTIONS = {"acks_late": True, "reject_on_worker_lost": True, "soft_time_limit": 90,
                "time_limit": 120, "max_retries": None}


def backoff(attempt: int, *, base: float = 1.0, cap: float = 60.0) -> float:
    """Exponential backoff with full jitter, so a platform coming back is not stampeded."""
    return random.uniform(base / 2, min(cap, base * 2 ** max(attempt - 1, 0)))


def _claim(operation_id: int) -> bool:
    now = timezone.now()
    return bool(
        Operation.objects.filter(pk=operation_id, state__in=Operation.ACTIVE_STATES,
                                 submitted_at__isnull=True)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lt=now))
        .update(state=Operation.State.RUNNING, lease_until=now + LEASE,
                attempts=F("attempts") + 1, started_at=Coalesce("started_at", now))
    )


def _save_steps(operation: Operation, steps: list, **fields) -> None:
    operation.steps = steps
    for key, value in fields.items():
        setattr(operation, key, value)
    operation.save(update_fields=["steps", *fields])
    cluster_id = operation.cluster_id
    transaction.on_commit(lambda: broadcast.cluster_changed(cluster_id))


def fail_operation(operation_id: int, error_class: str, message: str) -> None:
    """Mark an operation failed with a message a person can act on; the cluster shows it."""
    with transaction.atomic():
        operation = Operation.objects.select_for_update().get(pk=operation_id)
        if not operation.is_active:
            return
        cluster = Cluster.objects.select_for_update().get(pk=operation.cluster_id)
        key = next((s["key"] for s in operation.steps
                    if s["state"] in (progress.PENDING, progress.RUNNING)),
                   operation.steps[-1]["key"])
        operation.steps = progress.set_step(operation.steps, key, progress.FAILED, message)
        operation.state = Operation.State.FAILED
        operation.error_class = error_class
        operation.error_message = message
        operation.finished_at = timezone.now()
        operation.lease_until = None
        operation.save()
        ClusterEvent.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, operation=operation,
            source=ClusterEvent.Source.PORTAL, severity=ClusterEvent.Severity.ERROR,
            reason=f"operation.{operation.kind}.failed", message=message)
        if operation.kind == Operation.Kind.CREATE and operation.submitted_at is None:
            cluster.phase = Cluster.Phase.FAILED
            cluster.status_message = (_("Failed: %(message)s") % {"message": message})[:500]
            cluster.last_error = message
            cluster.save()
        else:
            observe.refresh(cluster)
        cluster_id = cluster.pk
        transaction.on_commit(lambda: broadcast.cluster_changed(cluster_id))
    logger.warning("cluster.operation.failed",
                   extra={"operation_id": operation_id, "error_class": error_class})


@shared_task(name="clusters.apply_operation", bind=True, **TASK_OPTIONS)
def apply_operation(self, operation_id: int) -> None:
    """Send an operation's change to the platform once; safe to deliver any number of times.

    A create that finds the object already there (a redelivery after a crash) replaces its
    spec with the same spec, so the platform never holds two objects or loses the intent.
    """
    if not _claim(operation_id):
        operation = Operation.objects.filter(pk=operation_id).first()
        if operation is not None and operation.is_active and operation.submitted_at:
            poll_operation.apply_async((operation_id,),
                                       countdown=settings.OPERATION_POLL_SECONDS)
        return
    operation = Operation.objects.select_related("cluster__tenant").get(pk=operation_id)
    cluster = operation.cluster
    namespace = cluster.tenant.namespace
    gateway = get_gateway()
    try:
        if operation.kind != Operation.Kind.DELETE:
            _save_steps(operation, progress.set_step(operation.steps, "validate",
                                                     progress.RUNNING))
            schema = platform_schema(fresh=True)
            after = spec_from_json(operation.params["after"])
            before = operation.params.get("before")
            errors = validate_manifest(after, schema,
                                       creating=operation.kind == Operation.Kind.CREATE,
                                       previous=spec_from_json(before) if before else None)
            if errors:
                fail_operation(operation_id, Operation.ErrorClass.INVALID_SPEC,
                               " ".join(e.message for e in errors))
                return
            _save_steps(operation, progress.set_step(operation.steps, "validate", progress.DONE))
            _save_steps(operation, progress.set_step(operation.steps, "submit",
                                                     progress.RUNNING))
            gateway.apply_cluster(operation.desired_spec)
        else:
            _save_steps(operation, progress.set_step(operation.steps, "submit",
                                                     progress.RUNNING))
            gateway.delete_cluster(namespace, cluster.name)
    except PlatformUnavailable as exc:
        Operation.objects.filter(pk=operation_id).update(lease_until=None)
        if timezone.now() >= operation.deadline_at:
            fail_operation(operation_id, Operation.ErrorClass.PLATFORM_UNAVAILABLE,
                           _("The platform stayed unreachable until the deadline: %(e)s")
                           % {"e": exc.message})
            return
        key = "validate" if progress.step_keys(operation.kind)[0] == "validate" and \
            operation.step("validate")["state"] != progress.DONE else "submit"
        _save_steps(operation, progress.set_step(
            operation.steps, key, progress.RUNNING,
            _("The platform is unreachable; retrying (attempt %(n)s).")
            % {"n": operation.attempts}))
        raise self.retry(countdown=backoff(operation.attempts), exc=exc) from None
    except (Conflict, NotFound) as exc:
        fail_operation(operation_id, Operation.ErrorClass.CONFLICT, exc.message)
        return
    except PlatformError as exc:
        fail_operation(operation_id, Operation.ErrorClass.PLATFORM_ERROR, exc.message)
        return
    with transaction.atomic():
        now = timezone.now()
        operation = Operation.objects.select_for_update().get(pk=operation_id)
        operation.steps = progress.set_step(operation.steps, "submit", progress.DONE, now=now)
        operation.submitted_at = now
        operation.lease_until = None
        operation.save(update_fields=["steps", "submitted_at", "lease_until"])
        ClusterEvent.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, operation=operation, at=now,
            source=ClusterEvent.Source.PORTAL, reason="operation.submitted",
            message=_("The platform accepted the change."))
        transaction.on_commit(lambda: broadcast.cluster_changed(cluster.pk))
    poll_operation.apply_async((operation_id,), countdown=settings.OPERATION_POLL_SECONDS)


def observe_cluster(cluster: Cluster) -> None:
    """Read everything the platform says about one cluster and apply it (the watcher's twin)."""
    gateway = get_gateway()
    namespace = cluster.tenant.namespace
    obj = gateway.get_cluster(namespace, cluster.name)
    observe.apply_cluster_object(namespace, obj, name=cluster.name)
    if obj is None:
        return
    seen = set()
    for md in gateway.list_machine_deployments(namespace, cluster.name):
        located = observe.group_of(md)
        if located:
            seen.add(located[1])
        observe.apply_machine_deployment(namespace, md)
    for group in cluster.node_groups.exclude(name__in=seen).exclude(observed_phase="Deleted"):
        if group.observed_nodes or group.desired_nodes or group.removed_at:
            observe.apply_machine_deployment(namespace, _absent_md(cluster, group.name),
                                             deleted=True)
    observe.apply_kubeconfig_presence(namespace, cluster.name,
                                      gateway.kubeconfig_exists(namespace, cluster.name))


def _absent_md(cluster: Cluster, group: str) -> dict:
    release = f"kubernetes-{cluster.name}"
    return {"metadata": {"name": f"{release}-{group}",
                         "labels": {"cluster.x-k8s.io/cluster-name": release}}}


@shared_task(name="clusters.poll_operation", bind=True, **TASK_OPTIONS)
def poll_operation(self, operation_id: int) -> None:
    """Observe the cluster of an operation in flight; finish it, fail it at the deadline, or
    poll again later."""
    operation = Operation.objects.select_related("cluster__tenant").filter(
        pk=operation_id).first()
    if operation is None or not operation.is_active or operation.submitted_at is None:
        return
    try:
        observe_cluster(operation.cluster)
    except PlatformUnavailable as exc:
        logger.info("cluster.poll.platform_unavailable", extra={"operation_id": operation_id,
                                                                "error": exc.message})
    operation.refresh_from_db()
    if not operation.is_active:
        return
    if timezone.now() >= operation.deadline_at:
        fail_operation(operation_id, Operation.ErrorClass.TIMEOUT,
                       progress.stuck_message(operation))
        return
    Operation.objects.filter(pk=operation_id).update(
        next_poll_at=timezone.now() + timedelta(seconds=settings.OPERATION_POLL_SECONDS))
    poll_operation.apply_async((operation_id,), countdown=settings.OPERATION_POLL_SECONDS)


@shared_task(name="clusters.resync", **TASK_OPTIONS)
def resync() -> dict[str, int]:
    """Repair anything a dropped watch or a lost message missed (beat, every minute)."""
    counts = {"clusters": 0, "requeued": 0, "unreachable": 0}
    stale = timezone.now() - timedelta(minutes=1)
    for operation in Operation.objects.filter(state__in=Operation.ACTIVE_STATES):
        if operation.submitted_at is None and operation.created_at < stale and (
                operation.lease_until is None or operation.lease_until < timezone.now()):
            apply_operation.delay(operation.pk)
            counts["requeued"] += 1
        elif operation.submitted_at and (operation.next_poll_at or operation.submitted_at) \
                < stale:
            poll_operation.delay(operation.pk)
            counts["requeued"] += 1
    clusters = Cluster.objects.live().select_related("tenant").exclude(
        operations__kind=Operation.Kind.CREATE, operations__submitted_at__isnull=True,
        operations__state__in=Operation.ACTIVE_STATES)
    for cluster in clusters:
        try:
            observe_cluster(cluster)
            counts["clusters"] += 1
        except PlatformUnavailable:
            counts["unreachable"] += 1
    record_resync(counts)
    return counts


def record_resync(counts: dict[str, int]) -> None:
    from django.core.cache import cache

    cache.set("clusters:last-resync", {"at": timezone.now().isoformat(), **counts}, None)
