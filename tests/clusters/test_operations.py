"""The operation state machine: which transitions it allows, what each one writes, and that
every final state is announced (staff are alerted only of platform-side failures nobody chose).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from clusters import actions, events, operations, progress
from clusters.models import ClusterEvent, Operation
from portal.audit import Actor
from portal.permissions import Role
from portal.tenancy import TenantContext
from tests.clusters.ui import make_cluster, make_operation
from tests.factories import UserFactory

S = Operation.State
VERBS = ["claim", "step", "back_off", "renew", "take_over", "submit", "poll", "succeed", "fail",
         "cancel", "abandon", "retry", "reschedule", "release", "unschedule"]


def operation_in(situation: str) -> Operation:
    """An unsaved operation in one of the situations the table distinguishes."""
    now = timezone.now()
    state, sent, lease_until, token = {
        "queued": (S.QUEUED, False, None, ""),
        "waiting to retry": (S.RUNNING, False, now + timedelta(minutes=1), "retry-token"),
        "being sent": (S.RUNNING, False, now + timedelta(minutes=1), ""),
        "sent": (S.RUNNING, True, None, ""),
        "succeeded": (S.SUCCEEDED, True, None, ""),
        "failed": (S.FAILED, False, None, ""),
        "cancelled": (S.CANCELLED, False, None, ""),
        "scheduled": (S.SCHEDULED, False, None, ""),
    }[situation]
    return Operation(kind=Operation.Kind.SCALE, state=state, submitted_at=now if sent else None,
                     lease_until=lease_until, lease_token=token,
                     steps=progress.initial_steps(Operation.Kind.SCALE))


# Which verbs each situation allows, and where they lead ("=": the state stays).
TABLE = {
    "queued": {"claim": S.RUNNING, "step": "=", "back_off": "=", "renew": "=", "take_over": "=",
               "submit": "=", "fail": S.FAILED, "cancel": S.CANCELLED, "abandon": S.CANCELLED},
    "waiting to retry": {"claim": S.RUNNING, "step": "=", "back_off": "=", "renew": "=",
                         "take_over": "=", "submit": "=", "fail": S.FAILED,
                         "cancel": S.CANCELLED, "abandon": S.CANCELLED},
    "being sent": {"claim": S.RUNNING, "step": "=", "back_off": "=", "renew": "=",
                   "take_over": "=", "submit": "=", "fail": S.FAILED, "abandon": S.CANCELLED},
    "sent": {"step": "=", "poll": "=", "succeed": S.SUCCEEDED, "fail": S.FAILED,
             "abandon": S.CANCELLED},
    "succeeded": {},
    "failed": {"retry": S.QUEUED},
    "cancelled": {"retry": S.QUEUED},
    # Waiting for its maintenance window: only moved, released or dropped.
    "scheduled": {"reschedule": "=", "release": S.QUEUED, "unschedule": S.CANCELLED},
}


@pytest.mark.parametrize("situation", list(TABLE))
@pytest.mark.parametrize("verb", VERBS)
def test_the_transition_table(situation, verb):
    operation = operation_in(situation)
    expected = TABLE[situation].get(verb)
    if expected is None:
        assert not operations.allowed(operation, verb)
        with pytest.raises(operations.IllegalTransition):
            operations.check(operation, verb)
    else:
        assert operations.allowed(operation, verb)
        assert operations.check(operation, verb) == (
            operation.state if expected == "=" else expected)


def test_every_verb_of_the_table_is_tested():
    assert set(operations.TRANSITIONS) == set(VERBS)


def test_cancel_follows_what_a_person_is_told():
    for situation in TABLE:
        operation = operation_in(situation)
        assert operations.allowed(operation, "cancel") == operation.can_cancel
        assert operations.allowed(operation, "retry") == operation.can_retry


# --------------------------------------------------------------------------- what each writes


@pytest.fixture
def actor(owner):
    return Actor(user=owner)


@pytest.fixture
def cluster(tenant):
    return make_cluster(tenant)


@pytest.fixture
def finished(monkeypatch):
    """The ``OperationFinished`` events published (delivery is not the point here)."""
    published: list[events.OperationFinished] = []
    publish = events.publish

    def record(event, **kwargs):
        if isinstance(event, events.OperationFinished):
            published.append(event)
        else:
            publish(event, **kwargs)

    monkeypatch.setattr(events, "publish", record)
    return published


def start(actor, cluster, kind=Operation.Kind.SCALE):
    return operations.start(actor, cluster, kind, params={}, desired_spec={},
                            summary="Scale requested.")


def test_start_queues_an_operation_with_its_steps_deadline_and_timeline_entry(actor, cluster):
    operation = start(actor, cluster)
    operation.refresh_from_db()
    assert operation.state == S.QUEUED and operation.requested_by == actor.user
    assert [s["key"] for s in operation.steps] == progress.step_keys(Operation.Kind.SCALE)
    assert operation.deadline_at > operation.created_at
    entry = ClusterEvent.objects.get(operation=operation)
    assert (entry.reason, entry.message, entry.actor_label) == (
        "operation.scale", "Scale requested.", actor.label)


def test_one_active_operation_per_cluster(actor, cluster):
    start(actor, cluster)
    with pytest.raises(ValidationError) as refused:
        operations.check_idle(cluster)
    assert refused.value.code == "busy"
    with pytest.raises(ValidationError) as refused:  # the index, when the check was raced
        start(actor, cluster)
    assert refused.value.code == "busy"
    assert cluster.operations.count() == 1


def test_a_claim_holds_the_operation_until_its_lease_runs_out(actor, cluster):
    operation = start(actor, cluster)
    assert operations.claim(operation.pk)
    assert not operations.claim(operation.pk)
    operation.refresh_from_db()
    assert (operation.state, operation.attempts) == (S.RUNNING, 1)
    Operation.objects.filter(pk=operation.pk).update(lease_until=timezone.now()
                                                     - timedelta(seconds=1))
    assert operations.claim(operation.pk)


def test_the_heartbeat_renews_only_its_own_claim(actor, cluster, settings):
    settings.OPERATION_LEASE_SECONDS = 20
    operation = start(actor, cluster)
    holder = operations.claim(operation.pk)
    assert holder
    past = timezone.now() - timedelta(seconds=1)
    Operation.objects.filter(pk=operation.pk).update(lease_until=past)
    assert operations.renew(operation.pk, holder)
    operation.refresh_from_db()
    assert operation.lease_until > timezone.now() + timedelta(seconds=15)
    assert not operations.renew(operation.pk, "another-claim")
    token = operations.back_off(operation, countdown=5, detail="Unreachable; retrying.")
    assert not operations.renew(operation.pk, holder)  # parked: the retry's, not this claim's
    assert operations.claim(operation.pk, token) not in ("", holder)


def test_a_lease_that_ran_out_is_taken_over_once_and_said_in_the_timeline(actor, cluster):
    operation = start(actor, cluster)
    holder = operations.claim(operation.pk)
    assert operations.stalled() == []
    assert operations.take_over(operation.pk) is None  # its worker is alive
    Operation.objects.filter(pk=operation.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1))
    assert operations.stalled() == [operation.pk]
    taken = operations.take_over(operation.pk)
    assert taken is not None and taken.pk == operation.pk
    assert operations.take_over(operation.pk) is None  # once
    operation.refresh_from_db()
    assert (operation.state, operation.lease_until, operation.lease_holder) == (
        S.RUNNING, None, "")
    assert not operations.renew(operation.pk, holder)  # the dead worker's claim is over
    assert operations.claim(operation.pk)  # another worker's
    entry = ClusterEvent.objects.get(operation=operation, reason="operation.taken_over")
    assert entry.severity == ClusterEvent.Severity.WARNING
    assert "another worker takes it over" in entry.message


def test_a_back_off_keeps_the_operation_for_the_retry_that_carries_its_token(actor, cluster):
    operation = start(actor, cluster)
    operations.claim(operation.pk)
    operation.refresh_from_db()
    token = operations.back_off(operation, countdown=30, detail="Unreachable; retrying.")
    assert not operations.claim(operation.pk)
    assert not operations.claim(operation.pk, "someone-else")
    assert operations.claim(operation.pk, token)
    operation.refresh_from_db()
    assert operation.step("validate")["detail"] == "Unreachable; retrying."


def test_a_sent_operation_is_claimed_no_more_and_polled_once_per_interval(actor, cluster,
                                                                         settings):
    settings.OPERATION_POLL_SECONDS = 60
    operation = start(actor, cluster)
    operations.claim(operation.pk)
    operation.refresh_from_db()
    assert not operations.claim_poll(operation.pk)  # nothing to poll before it is sent
    operations.submit(operation, changed=True, baseline=None)
    operation.refresh_from_db()
    assert operation.submitted_at is not None and operation.lease_until is None
    assert not operations.claim(operation.pk)
    assert operations.claim_poll(operation.pk)
    assert not operations.claim_poll(operation.pk)
    assert ClusterEvent.objects.filter(operation=operation, reason="operation.submitted").exists()


def test_an_illegal_transition_raises_and_writes_nothing(actor, cluster, finished):
    operation = start(actor, cluster)
    with pytest.raises(operations.IllegalTransition):
        operations.succeed(operation, steps=operation.steps)  # never sent
    operation.refresh_from_db()
    assert operation.state == S.QUEUED and operation.finished_at is None
    assert finished == []


def test_a_final_operation_cannot_be_finished_again(actor, cluster, finished):
    operation = start(actor, cluster)
    operations.fail(operation, Operation.ErrorClass.INVALID_SPEC, "Refused.")
    for finish in (lambda: operations.fail(operation, Operation.ErrorClass.TIMEOUT, "Late."),
                   lambda: operations.cancel(operation, "No.", actor_label="x"),
                   lambda: operations.abandon(operation, "Gone.", actor_label="x")):
        with pytest.raises(operations.IllegalTransition):
            finish()
    operation.refresh_from_db()
    assert (operation.state, operation.error_message) == (S.FAILED, "Refused.")
    assert len(finished) == 1


def test_a_sent_operation_cannot_be_cancelled_only_abandoned(actor, cluster, finished):
    operation = start(actor, cluster)
    operations.claim(operation.pk)
    operation.refresh_from_db()
    operations.submit(operation, changed=True, baseline=None)
    with pytest.raises(ValidationError) as refused:
        operations.check_cancellable(operation)
    assert refused.value.code == "not_cancellable"
    with pytest.raises(operations.IllegalTransition):
        operations.cancel(operation, "No.", actor_label="x")
    operations.abandon(operation, "Taken over.", actor_label="ops@example.org")
    operation.refresh_from_db()
    assert operation.state == S.CANCELLED and operation.error_message == "Taken over."
    assert {s["state"] for s in operation.steps} <= {progress.DONE, progress.SKIPPED}
    assert [(e.operation.pk, e.actor_label) for e in finished] == [
        (operation.pk, "ops@example.org")]


def test_an_abandoned_deletion_fails_as_a_platform_error(actor, cluster, finished):
    operation = start(actor, cluster, Operation.Kind.DELETE)
    operations.abandon(operation, "Volumes left by hand.", actor_label="ops@example.org")
    operation.refresh_from_db()
    assert operation.state == S.FAILED
    assert operation.error_class == Operation.ErrorClass.PLATFORM_ERROR
    assert [s["state"] for s in operation.steps] == [progress.FAILED, progress.SKIPPED]


@pytest.mark.parametrize("outcome", ["succeed", "fail", "cancel"])
def test_every_final_state_is_announced(actor, cluster, finished, outcome):
    operation = start(actor, cluster)
    if outcome == "succeed":
        operations.claim(operation.pk)
        operation.refresh_from_db()
        operations.submit(operation, changed=True, baseline=None)
        operations.succeed(operation, steps=operation.steps)
    elif outcome == "fail":
        operations.fail(operation, Operation.ErrorClass.TIMEOUT, "Too slow.")
    else:
        operations.cancel(operation, "Not now.", actor_label=actor.label)
    assert [e.operation.pk for e in finished] == [operation.pk]
    operation.refresh_from_db()
    assert operation.finished_at is not None and not operation.is_active
    reason = {"succeed": "operation.scale.done", "fail": "operation.scale.failed",
              "cancel": "operation.cancelled"}[outcome]
    assert ClusterEvent.objects.filter(operation=operation, reason=reason).exists()


def test_a_tenant_cancel_is_announced_as_finished(actor, tenant, cluster, finished):
    operation = start(actor, cluster)
    ctx = TenantContext(tenant, Role.OWNER, None)
    actions.do_cancel_operation(actor, ctx, operation.pk)
    assert [(e.operation.state, e.actor_label) for e in finished] == [
        (S.CANCELLED, actor.label)]


def test_retry_starts_a_new_operation_only_from_the_latest_failed_one(actor, cluster):
    old = start(actor, cluster)
    with pytest.raises(ValidationError) as refused:
        operations.check_retry(old, cluster)
    assert refused.value.code == "not_retryable"
    operations.fail(old, Operation.ErrorClass.PLATFORM_ERROR, "Boom.")
    new = operations.retry(actor, old, cluster, desired_spec={}, params={}, summary="Again.")
    assert new.state == S.QUEUED and new.params["retry_of"] == old.pk
    operations.cancel(new, "Not now.", actor_label=actor.label)
    with pytest.raises(ValidationError) as refused:
        operations.check_retry(old, cluster)
    assert refused.value.code == "superseded"


# --------------------------------------------------------------------------- staff alerts


def test_staff_are_alerted_of_a_platform_failure_but_not_of_one_staff_recorded(
        tenant, actor, mailoutbox, django_capture_on_commit_callbacks):
    UserFactory(email="ops@example.org", is_staff=True)
    deletion = make_operation(make_cluster(tenant, "gone"), Operation.Kind.DELETE,
                              state=S.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        operations.abandon(deletion, "Left by hand.", actor_label="ops@example.org")
    assert mailoutbox == []

    stuck = make_operation(make_cluster(tenant, "stuck"), Operation.Kind.SCALE, state=S.RUNNING)
    with django_capture_on_commit_callbacks(execute=True):
        operations.fail(stuck, Operation.ErrorClass.PLATFORM_ERROR, "Helm failed.")
    assert [m.to for m in mailoutbox] == [["ops@example.org"]]
