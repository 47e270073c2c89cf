"""Operation steps and how far an operation has come, derived from observed state.

The same function runs after every observation (watcher or poll), so progress is always
recomputed from facts, never counted: a repeated observation changes nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from clusters.models import Cluster, NodeGroup, Operation
from clusters.platform_release import observed_dialect
from cozystack import dialects
from cozystack.gateway import quota_message, quota_shortfalls

PENDING, RUNNING, DONE, FAILED, SKIPPED = "pending", "running", "done", "failed", "skipped"

# Labels are translated when shown (templates call gettext on them).
STEP_LABELS = {
    "validate": gettext_noop("Check the specification"),
    "submit": gettext_noop("Send to the platform"),
    "control_plane": gettext_noop("Control plane ready"),
    "kubeconfig": gettext_noop("Kubeconfig issued"),
    "converge": gettext_noop("Platform applies the change"),
    "upgrade": gettext_noop("Control plane upgraded"),
    "workers": gettext_noop("Worker nodes ready"),
    "teardown": gettext_noop("Platform removes the cluster and its volumes"),
}

STEPS_BY_KIND: dict[str, list[str]] = {
    Operation.Kind.CREATE: ["validate", "submit", "control_plane", "kubeconfig", "workers"],
    Operation.Kind.UPGRADE: ["validate", "submit", "upgrade", "workers"],
    Operation.Kind.DELETE: ["submit", "teardown"],
}
DEFAULT_STEPS = ["validate", "submit", "converge", "workers"]
FAILED_REASONS = {"InstallFailed", "UpgradeFailed", "ArtifactFailed", "ReconciliationFailed",
                  "RollbackFailed", "UninstallFailed"}


def step_keys(kind: str) -> list[str]:
    return STEPS_BY_KIND.get(kind, DEFAULT_STEPS)


def initial_steps(kind: str) -> list[dict[str, Any]]:
    return [{"key": key, "label": STEP_LABELS[key], "state": PENDING, "detail": "",
             "started_at": None, "finished_at": None} for key in step_keys(kind)]


def cancel_steps(steps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**s, "state": SKIPPED} if s["state"] in (PENDING, RUNNING) else s for s in steps]


def fail_current(steps: list[dict[str, Any]], message: str, *,
                 now: datetime | None = None) -> list[dict[str, Any]]:
    """A copy of ``steps`` with the step in progress (else the last) failed with ``message``."""
    key = next((s["key"] for s in steps if s["state"] in (PENDING, RUNNING)), steps[-1]["key"])
    return set_step(steps, key, FAILED, message, now=now)


def set_step(steps: list[dict[str, Any]], key: str, state: str, detail: str | None = None,
             *, now: datetime | None = None) -> list[dict[str, Any]]:
    """A copy of ``steps`` with ``key`` moved to ``state`` (timestamps kept from the first move)."""
    stamp = (now or timezone.now()).isoformat()
    result = []
    for step in steps:
        if step["key"] == key:
            step = dict(step)
            if state in (RUNNING, DONE, FAILED) and not step.get("started_at"):
                step["started_at"] = stamp
            if state in (DONE, FAILED, SKIPPED) and not step.get("finished_at"):
                step["finished_at"] = stamp
            step["state"] = state
            if detail is not None:
                step["detail"] = detail
        result.append(step)
    return result


@dataclass(frozen=True)
class Verdict:
    steps: list[dict[str, Any]]
    outcome: str | None  # None while running, else Operation.State.SUCCEEDED / FAILED
    error_class: str = ""
    message: str = ""


def _same_condition(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    keys = ("status", "reason", "message", "lastTransitionTime")
    return a is not None and b is not None and all(a.get(k) == b.get(k) for k in keys)


def fresh_ready(operation: Operation, cluster: Cluster) -> dict[str, Any] | None:
    """The cluster's ``Ready`` condition if it describes the spec this operation sent.

    The platform has no ``observedGeneration``, and its clock is not ours, so timestamps are
    not compared. Instead the submit recorded the ``Ready`` it replaced: as long as the
    platform still shows exactly that condition, it has not reacted to our write yet. A
    write that changed nothing on the platform (a repeated apply) needs no reaction.
    """
    ready = cluster.condition("Ready")
    if ready is None:
        return None
    if operation.submitted_changed and _same_condition(ready, operation.baseline_ready):
        return None
    return ready


def explain_failure(message: str) -> tuple[str, str]:
    """(error class, a sentence a person can act on) for a platform-side failure message.

    The platform's own words (usually Helm's) are kept after the explanation.
    """
    lowered = message.lower()
    instance = re.search(r"instancetype not exists in cluster: (\S+)", message, re.IGNORECASE)
    if instance:
        return (Operation.ErrorClass.INVALID_SPEC,
                _("The platform rejected instance type %(type)s: it is not offered there. "
                  "Choose another instance type.") % {"type": instance.group(1)})
    if "tenantcontrolplane" in lowered and ("upgrade" in lowered or "downgrade" in lowered):
        return (Operation.ErrorClass.INVALID_SPEC,
                _("The platform refused the version change (%(detail)s). Versions move one "
                  "minor at a time, forward only.")
                % {"detail": message.rsplit(": ", 1)[-1].strip()})
    shortfalls = quota_shortfalls(message)
    if shortfalls:
        return (Operation.ErrorClass.QUOTA, quota_message(shortfalls))
    if "quota" in lowered or "exceeded" in lowered:
        return (Operation.ErrorClass.QUOTA,
                _("The platform ran out of quota for this tenant: %(detail)s")
                % {"detail": message})
    if "schema" in lowered or "invalid" in lowered:
        return (Operation.ErrorClass.INVALID_SPEC,
                _("The platform rejected the specification: %(detail)s") % {"detail": message})
    return (Operation.ErrorClass.PLATFORM_ERROR,
            _("The platform could not apply the change: %(detail)s") % {"detail": message})


def classify_failure(message: str) -> str:
    return explain_failure(message)[0]


def workers_detail(groups: list[NodeGroup]) -> tuple[bool, str]:
    """Are all groups at a settled size with their minimum ready, and a sentence saying so."""
    want = sum(max(g.min_replicas, g.desired_nodes) for g in groups)
    ready = sum(min(g.ready_nodes, max(g.min_replicas, g.desired_nodes)) for g in groups)
    settled = all(
        g.ready_nodes >= g.min_replicas
        and g.min_replicas <= g.desired_nodes <= max(g.max_replicas, g.min_replicas)
        and g.observed_nodes == g.desired_nodes
        and g.updated_nodes >= g.desired_nodes
        for g in groups
    )
    detail = _("%(ready)s of %(want)s workers ready") % {"ready": ready, "want": want}
    return settled, detail


def _ready_for(cluster: Cluster, at: datetime | None) -> timedelta | None:
    if cluster.ready_since is None:
        return None
    return (at or timezone.now()) - cluster.ready_since


def health_of(cluster: Cluster, settled: bool, *, at: datetime | None = None) -> dialects.Health:
    """What the cluster's conditions mean in the platform's release (``Dialect.health``)."""
    workloads = cluster.condition("WorkloadsReady") or {}
    return observed_dialect().health(
        ready=cluster.platform_ready, workloads_ready=workloads.get("status") or None,
        kubeconfig=cluster.kubeconfig_ready, settled=settled,
        ready_for=_ready_for(cluster, at))


def stuck_words(cluster: Cluster, *, at: datetime | None = None) -> str:
    """Ready for minutes, yet no control plane: the platform's side must be looked at."""
    minutes = int((_ready_for(cluster, at) or timedelta()).total_seconds() // 60)
    return _("Stuck on the platform side: it reported the cluster applied %(m)s minutes ago, "
             "but no control plane answers (no kubeconfig, no workloads). The platform team "
             "needs to look at it.") % {"m": minutes}


def evaluate(operation: Operation, cluster: Cluster, groups: list[NodeGroup], *,
             now: datetime | None = None) -> Verdict:
    """Where ``operation`` stands given what was last observed of ``cluster`` and its groups."""
    now = now or timezone.now()
    steps = operation.steps
    if operation.submitted_at is None:
        return Verdict(steps, None)
    if operation.kind == Operation.Kind.DELETE:
        if cluster.platform_deleted_at is not None:
            return Verdict(set_step(steps, "teardown", DONE, "", now=now),
                           Operation.State.SUCCEEDED)
        return Verdict(set_step(steps, "teardown", RUNNING,
                                _("Removing add-ons, control plane, workers and volumes."),
                                now=now), None)

    ready = fresh_ready(operation, cluster)
    if ready and ready.get("status") == "False" and ready.get("reason") in FAILED_REASONS:
        raw = ready.get("message") or ready.get("reason") or ""
        error_class, message = explain_failure(raw)
        return Verdict(fail_current(steps, raw, now=now), Operation.State.FAILED,
                       error_class, message)

    applied = bool(ready and ready.get("status") == "True")
    first_key = "control_plane" if operation.kind == Operation.Kind.CREATE else (
        "upgrade" if operation.kind == Operation.Kind.UPGRADE else "converge")
    if not applied:
        detail = (ready or {}).get("message") or _("Waiting for the platform.")
        return Verdict(set_step(steps, first_key, RUNNING, detail, now=now), None)
    dialect = observed_dialect()
    if operation.kind == Operation.Kind.CREATE and not dialect.control_plane_up(
            ready=True, kubeconfig=cluster.kubeconfig_ready):
        # Ready=True only says the manifests were applied (v1.6): the control plane is up when
        # it has issued its kubeconfig.
        stuck = health_of(cluster, False, at=now).state == dialects.STUCK
        detail = stuck_words(cluster, at=now) if stuck else \
            _("The platform applied the configuration; waiting for the control plane.")
        return Verdict(set_step(steps, first_key, RUNNING, detail, now=now), None)
    steps = set_step(steps, first_key, DONE, "", now=now)

    if operation.kind == Operation.Kind.CREATE:
        if not cluster.kubeconfig_ready:
            return Verdict(set_step(steps, "kubeconfig", RUNNING,
                                    _("Waiting for the control plane to issue credentials."),
                                    now=now), None)
        steps = set_step(steps, "kubeconfig", DONE, "", now=now)

    settled, detail = workers_detail(groups)
    if not settled:
        return Verdict(set_step(steps, "workers", RUNNING, detail, now=now), None)
    if dialect.waits_for_workloads and (cluster.condition("WorkloadsReady") or {}).get(
            "status") != "True":
        return Verdict(set_step(steps, "workers", RUNNING, _(
            "%(detail)s; waiting for the platform to report the workloads ready.")
            % {"detail": detail}, now=now), None)
    return Verdict(set_step(steps, "workers", DONE, detail, now=now), Operation.State.SUCCEEDED)


def stuck_message(operation: Operation) -> str:
    """What a timed-out operation was waiting for, in words."""
    running = next((s for s in operation.steps if s["state"] in (RUNNING, PENDING)), None)
    if running is None:
        return _("The operation did not finish in time.")
    label = _(running["label"])
    detail = running.get("detail") or ""
    return (_("Stuck at “%(step)s” for too long: %(detail)s") % {"step": label, "detail": detail}
            if detail else _("Stuck at “%(step)s” for too long.") % {"step": label})
