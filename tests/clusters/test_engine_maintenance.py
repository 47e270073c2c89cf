"""An automatic upgrade in a maintenance window, against the simulated platform: the planner
schedules and announces it, releases it when the window opens, and it runs like any upgrade
(same steps, through the real client), audited as "system (window)"."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from clusters import lifecycle
from clusters.models import MaintenanceWindow, Operation, UpgradeControl, UpgradePolicy
from notifications.models import Event
from portal.models import AuditEntry
from tests.clusters.conftest import NS, cluster_spec

pytestmark = pytest.mark.django_db


def test_an_automatic_upgrade_runs_in_its_window(engine):
    cluster = engine.create(cluster_spec(version="v1.33"))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    # No notice period here, so that the window can open a minute from now.
    UpgradeControl.objects.create(pk=1, max_concurrent_upgrades=5, end_of_life_lead_days=30,
                                  announce_days=0)
    opens = (timezone.now() + timedelta(minutes=2)).replace(second=0, microsecond=0)
    MaintenanceWindow.objects.create(
        tenant=cluster.tenant, cluster=cluster, weekdays=[opens.weekday()],
        start_time=opens.time(), duration_minutes=60, time_zone="UTC",
        upgrade_policy=UpgradePolicy.KEEP_CURRENT)

    with engine.capture(execute=True):
        assert lifecycle.run(timezone.now())["window"] == 1
    waiting = cluster.operations.get(state=Operation.State.SCHEDULED)
    assert waiting.not_before == opens
    assert Event.objects.filter(type="maintenance.scheduled").count() == 1
    assert engine.outbox.names() == []  # nothing sent before the window
    assert engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.33"

    inside = opens + timedelta(minutes=1)
    with time_machine.travel(inside, tick=False), engine.capture(execute=True):
        assert lifecycle.run(inside)["window"] == 1
    assert engine.outbox.names() == ["clusters.apply_operation"]
    operation = engine.settle(cluster)

    assert operation.pk == waiting.pk and operation.state == Operation.State.SUCCEEDED
    assert [s["key"] for s in operation.steps] == ["validate", "submit", "upgrade", "workers"]
    assert engine.platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.34"
    assert cluster.version == "v1.34" and cluster.phase == "running"
    assert AuditEntry.objects.get(verb="cluster.upgrade").actor_label == "system (window)"
    assert cluster.events.filter(reason="operation.upgrade",
                                 actor_label="system (window)").exists()
