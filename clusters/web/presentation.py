"""How cluster state reads to a person: phase styles, classified problems, operation progress.

Pure functions over rows already loaded (no queries), shared by the pages, the live pushes and
the list, so every place words a failure the same way: what went wrong, who must act, and how.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext as _

from clusters import progress
from clusters.models import Cluster, ClusterEvent, Operation
from cozystack.values import ValuesError

PHASE_STYLE: dict[str, str] = {
    Cluster.Phase.CREATING: "progress",
    Cluster.Phase.UPDATING: "progress",
    Cluster.Phase.DELETING: "progress",
    Cluster.Phase.RUNNING: "running",
    Cluster.Phase.DEGRADED: "degraded",
    Cluster.Phase.FAILED: "failed",
    Cluster.Phase.DELETED: "idle",
}
BADGE_STYLE = {"progress": "bg-yellow-lt", "running": "bg-green-lt", "degraded": "bg-orange-lt",
               "failed": "bg-red-lt", "idle": "bg-secondary-lt"}

# Who has to do something about a failure. Shown as a label beside the explanation.
YOU, PLATFORM, NOBODY = "you", "platform", "nobody"


@dataclass(frozen=True)
class Problem:
    """A failure in words: ``title`` (what), ``who`` must act, ``action`` (how), ``detail``."""

    title: str
    who: str
    action: str
    detail: str
    error_class: str = ""

    @property
    def who_label(self) -> str:
        return {YOU: _("You need to act"), PLATFORM: _("Platform staff act"),
                NOBODY: _("No action needed")}[self.who]


def _instance_type_problem(message: str, retryable: bool) -> Problem | None:
    lowered = message.lower()
    if "instancetype" in lowered or "instance type" in lowered:
        return Problem(
            _("Instance type not offered by the platform"), YOU,
            _("Choose another instance type for the node group, then retry.") if retryable
            else _("Choose another instance type for the node group (Change this cluster → "
                   "Node group); the platform applies it at once."), message,
            Operation.ErrorClass.INVALID_SPEC)
    return None


def classify(error_class: str, message: str, *, retrying: bool = False,
             retryable: bool = True) -> Problem:
    """The wording for an ``Operation.ErrorClass`` (or a platform message without a class).

    ``retryable`` is False for a failure the platform reports outside any operation (nothing
    to retry: a change of the spec is the way out).
    """
    if error_class in ("", Operation.ErrorClass.INVALID_SPEC):
        specific = _instance_type_problem(message, retryable)
        if specific is not None:
            return specific
    if error_class == Operation.ErrorClass.INVALID_SPEC:
        return Problem(_("The platform rejected the specification"), YOU,
                       _("Change the specification as the message says, then retry.")
                       if retryable else
                       _("Change the specification as the message says; the platform applies "
                         "the change at once."), message, error_class)
    if error_class == Operation.ErrorClass.QUOTA:
        return Problem(_("Quota exceeded"), YOU,
                       _("Lower the maximum nodes or use a smaller instance type, or ask an "
                         "administrator of this tenant for a higher quota."), message,
                       error_class)
    if error_class == Operation.ErrorClass.PLATFORM_UNAVAILABLE:
        if retrying:
            return Problem(_("Platform incident"), PLATFORM,
                           _("Staff are notified. The portal keeps retrying by itself; "
                             "nothing to do on your side."), message, error_class)
        return Problem(_("Platform incident"), PLATFORM,
                       _("Staff are notified. The platform stayed unreachable; retry once it "
                         "is back."), message, error_class)
    if error_class == Operation.ErrorClass.TIMEOUT:
        return Problem(_("The change did not finish in time"), PLATFORM,
                       _("Staff are notified. Check the timeline for what is missing (workers "
                         "that never became ready usually mean a quota or capacity "
                         "shortage), then retry."), message, error_class)
    if error_class == Operation.ErrorClass.CONFLICT:
        return Problem(_("Conflicting change"), YOU,
                       _("Someone changed or removed this cluster outside the portal. Retry "
                         "to apply the portal's version."), message, error_class)
    if error_class == Operation.ErrorClass.PLATFORM_ERROR:
        return Problem(_("The platform failed to apply the change"), PLATFORM,
                       _("Staff are notified. Retry; if it fails again, contact support with "
                         "the message below."), message, error_class)
    # A platform failure outside any operation (``Ready=False`` on a running cluster).
    return classify(progress.classify_failure(message), message, retryable=retryable)


class ShownCluster(Protocol):
    """What ``problem_for`` reads of a cluster: the model, or a row of the list."""

    @property
    def phase(self) -> str: ...
    @property
    def last_error(self) -> str: ...
    @property
    def status_message(self) -> str: ...


class ShownOperation(Protocol):
    """What ``problem_for`` reads of an operation: the model, or a row's latest operation."""

    @property
    def state(self) -> str: ...
    @property
    def error_class(self) -> str: ...
    @property
    def error_message(self) -> str: ...
    @property
    def steps(self) -> list[dict[str, Any]]: ...
    @property
    def is_active(self) -> bool: ...


def problem_for(cluster: ShownCluster, operation: ShownOperation | None) -> Problem | None:
    """The failure to show for a cluster, if any: its operation's, else the platform's."""
    if operation is not None and operation.state == Operation.State.FAILED:
        return classify(operation.error_class, operation.error_message or cluster.last_error)
    if operation is not None and operation.is_active:
        running = next((s for s in operation.steps if s["state"] == progress.RUNNING), None)
        detail = (running or {}).get("detail") or ""
        if "unreachable" in detail.lower():
            return classify(Operation.ErrorClass.PLATFORM_UNAVAILABLE, detail, retrying=True)
    if cluster.phase == Cluster.Phase.FAILED or (cluster.last_error and not (
            operation is not None and operation.is_active)):
        return classify("", cluster.last_error or cluster.status_message, retryable=False)
    return None


# --------------------------------------------------------------------------- operations


@dataclass(frozen=True)
class StepView:
    key: str
    label: str
    state: str
    detail: str
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def seconds(self) -> int | None:
        if self.started_at is None:
            return None
        end = self.finished_at or timezone.now()
        return max(0, int((end - self.started_at).total_seconds()))


def _when(value: Any) -> datetime | None:
    return parse_datetime(value) if isinstance(value, str) and value else None


def steps_of(operation: Operation) -> list[StepView]:
    return [StepView(s["key"], _(s.get("label") or progress.STEP_LABELS.get(s["key"], s["key"])),
                     s["state"], s.get("detail") or "", _when(s.get("started_at")),
                     _when(s.get("finished_at"))) for s in operation.steps]


def elapsed_seconds(operation: Operation) -> int:
    start = operation.started_at or operation.created_at
    end = operation.finished_at or timezone.now()
    return max(0, int((end - start).total_seconds()))


def duration_words(seconds: int | None) -> str:
    if seconds is None:
        return ""
    if seconds < 60:
        return _("%(s)s s") % {"s": seconds}
    if seconds < 3600:
        return _("%(m)s min %(s)s s") % {"m": seconds // 60, "s": seconds % 60}
    return _("%(h)s h %(m)s min") % {"h": seconds // 3600, "m": seconds % 3600 // 60}


def values_error_text(error: ValuesError) -> str:
    """A refused values document (``cozystack.values``) in the reader's language, with
    the line and column when it came from YAML."""
    where = _(" (line %(line)s, column %(col)s)") % {"line": error.line, "col": error.column} \
        if error.line is not None else ""
    params = {**error.params, "where": where}
    texts = {
        "too_large": _("Custom values may be at most %(max_kb)s KB."),
        "alias": _("Anchors and aliases (& and *) are not allowed in custom values%(where)s; "
                   "write each value out."),
        "too_deep": _("Custom values may be nested at most %(max_depth)s levels "
                      "deep%(where)s."),
        "not_finite": _("Numbers in custom values must be finite, not .inf or .nan%(where)s."),
        "int_too_large": _("Whole numbers in custom values must fit in 64 bits, from %(min)s to "
                           "%(max)s%(where)s."),
        "nul": _("Text in custom values may not contain NUL characters%(where)s."),
        "syntax": _("This is not valid YAML%(where)s: %(problem)s."),
    }
    return texts[error.code] % params


# --------------------------------------------------------------------------- styles and words

OPERATION_BADGE: dict[str, str] = {
    Operation.State.FAILED: "bg-red-lt", Operation.State.SUCCEEDED: "bg-green-lt",
    Operation.State.CANCELLED: "bg-secondary-lt", Operation.State.SCHEDULED: "bg-azure-lt"}
"""An operation's state badge; queued and running ones are yellow, a scheduled one (waiting
for its maintenance window) blue."""

STEP_SYMBOL: dict[str, str] = {progress.DONE: "✓", progress.FAILED: "✕", progress.SKIPPED: "–"}
"""A step's symbol; a pending one is a circle, a running one a spinner."""

SOURCE_BADGE: dict[str, str] = {ClusterEvent.Source.PORTAL: "bg-blue-lt"}
"""A timeline event's source badge; the platform's are grey."""

SEVERITY_TEXT: dict[str, str] = {ClusterEvent.Severity.ERROR: "text-danger",
                                 ClusterEvent.Severity.WARNING: "text-warning"}
"""A timeline message's colour; information keeps the text colour."""


def operation_note(operation: Operation) -> str:
    """What an operation that did not fail still has to say (a retried error, a cancel)."""
    return operation.error_message if operation.state != Operation.State.FAILED else ""


def may_steer(operation: Operation, *, can_change: bool, can_delete: bool) -> bool:
    """Whether the reader may retry or cancel ``operation``: a deletion needs the right to
    delete, any other change the right to change."""
    return can_delete if operation.kind == Operation.Kind.DELETE else can_change


@dataclass(frozen=True)
class KubeconfigStatus:
    """The kubeconfig card's first line: ``text``, after a status dot of style ``dot``."""

    text: str
    dot: str = ""
    deleted: bool = False


def kubeconfig_status(cluster: Cluster, *, deleted: bool = False) -> KubeconfigStatus:
    if deleted or cluster.phase == Cluster.Phase.DELETED:
        return KubeconfigStatus(_("The cluster is deleted."), deleted=True)
    if cluster.kubeconfig_ready:
        return KubeconfigStatus(_("Available from the platform."), "running")
    return KubeconfigStatus(
        _("Not issued yet: the platform issues it once the control plane is ready."), "progress")
