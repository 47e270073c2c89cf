"""How cluster states read on the pages (cluster_tags, clusters.web.presentation): every state has
its style, so templates map none themselves."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from clusters import progress
from clusters.models import Cluster, ClusterEvent, Operation
from clusters.web import presentation
from clusters.web.templatetags import cluster_tags


@pytest.mark.parametrize(("state", "badge"), [
    (Operation.State.FAILED, "bg-red-lt"), (Operation.State.SUCCEEDED, "bg-green-lt"),
    (Operation.State.CANCELLED, "bg-secondary-lt"), (Operation.State.QUEUED, "bg-yellow-lt"),
    (Operation.State.RUNNING, "bg-yellow-lt")])
def test_an_operation_state_has_its_badge(state, badge):
    assert cluster_tags.operation_badge(state) == badge


@pytest.mark.parametrize(("state", "icon"), [
    (progress.DONE, "✓"), (progress.FAILED, "✕"), (progress.SKIPPED, "–"), (progress.PENDING, "○"),
    (progress.RUNNING, '<span class="spinner-border spinner-border-sm"></span>')])
def test_a_step_shows_the_symbol_of_its_state(state, icon):
    assert cluster_tags.step_icon(state) == icon


def test_every_operation_and_step_state_is_styled():
    not_yellow = set(Operation.State.values) - {Operation.State.QUEUED, Operation.State.RUNNING}
    assert not_yellow == set(presentation.OPERATION_BADGE)
    assert {progress.DONE, progress.FAILED, progress.SKIPPED} == set(presentation.STEP_SYMBOL)


@pytest.mark.parametrize(("source", "severity", "badge", "text"), [
    (ClusterEvent.Source.PORTAL, ClusterEvent.Severity.ERROR, "bg-blue-lt", "text-danger"),
    (ClusterEvent.Source.PLATFORM, ClusterEvent.Severity.WARNING, "bg-secondary-lt",
     "text-warning"),
    (ClusterEvent.Source.PLATFORM, ClusterEvent.Severity.INFO, "bg-secondary-lt", "")])
def test_timeline_events_show_their_source_and_severity(source, severity, badge, text):
    assert cluster_tags.source_badge(source) == badge
    assert cluster_tags.severity_text(severity) == text


@pytest.mark.parametrize(("phase", "ready", "deleted", "expected"), [
    (Cluster.Phase.RUNNING, True, False, ("Available from the platform.", "running", False)),
    (Cluster.Phase.CREATING, False, False, (
        "Not issued yet: the platform issues it once the control plane is ready.", "progress",
        False)),
    (Cluster.Phase.DELETED, True, False, ("The cluster is deleted.", "", True)),
    (Cluster.Phase.DELETING, True, True, ("The cluster is deleted.", "", True))])
def test_the_kubeconfig_card_says_whether_it_can_be_downloaded(phase, ready, deleted, expected):
    status = presentation.kubeconfig_status(Cluster(phase=phase, kubeconfig_ready=ready),
                                            deleted=deleted)
    assert (status.text, status.dot, status.deleted) == expected


@pytest.mark.parametrize(("state", "note"), [(Operation.State.FAILED, ""),
                                             (Operation.State.SUCCEEDED, "retried once"),
                                             (Operation.State.CANCELLED, "retried once")])
def test_only_an_operation_that_did_not_fail_adds_its_message_as_a_note(state, note):
    # A failed operation's message is the problem shown above the steps, not a note.
    assert presentation.operation_note(Operation(state=state, error_message="retried once")) == note


@pytest.mark.parametrize(("kind", "can_change", "can_delete", "steer"), [
    (Operation.Kind.DELETE, True, False, False), (Operation.Kind.DELETE, True, True, True),
    (Operation.Kind.SCALE, True, False, True), (Operation.Kind.SCALE, False, True, False)])
def test_retrying_or_cancelling_needs_the_right_the_operation_needed(kind, can_change, can_delete,
                                                                    steer):
    assert presentation.may_steer(Operation(kind=kind), can_change=can_change,
                                  can_delete=can_delete) is steer


@pytest.mark.parametrize(("open_action", "opens"), [
    ("scale-md0", True), ("edit-md0", True), ("remove-md0", True), ("scale-md01", False),
    ("add", False), (None, False)])
def test_a_group_section_stays_open_while_one_of_its_forms_is_in_use(open_action, opens):
    assert cluster_tags.opens_group(open_action, "md0") is opens


def test_the_list_query_keeps_filters_and_page_encoded():
    query = cluster_tags.list_query({"phase": "running", "version": "v1.33 &x/y"}, 2)
    assert query == "phase=running&version=v1.33%20%26x/y&page=2"
    assert cluster_tags.list_query({}, 1) == "phase=&version=&page=1"


def test_a_stuck_operation_says_what_its_running_step_waits_for():
    operation = SimpleNamespace(steps=[
        {"key": "submit", "state": progress.DONE, "detail": "sent"},
        {"key": "workers", "state": progress.RUNNING, "detail": "1 of 3 ready"},
        {"key": "kubeconfig", "state": progress.PENDING, "detail": ""}])
    assert cluster_tags.running_step_detail(operation) == "1 of 3 ready"
    assert cluster_tags.running_step_detail(SimpleNamespace(steps=[])) == ""
