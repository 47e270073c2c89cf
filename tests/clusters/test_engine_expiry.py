"""Expiry against the simulated platform: at its expiry the planner deletes the cluster through
the normal delete operation, the platform removes it, and the deleted cluster says why."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from django.core import mail
from django.utils import timezone

from clusters import deleted, expiry
from clusters.models import Cluster, ClusterEvent, ClusterExpiry, Operation
from cozystack.gateway import get_gateway
from notifications import emails
from notifications.models import Event
from tests.clusters.conftest import NS
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


def test_expiry_deletes_the_cluster_through_the_normal_operation(engine):
    cluster = engine.create()
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    expires_at = timezone.now() + timedelta(hours=2)
    engine.act(expiry.do_set_cluster_expiry, "demo", expires_at)

    with engine.capture(execute=True):
        assert expiry.PLANNER.plan(expires_at - timedelta(minutes=1)) == 1  # 1-hour reminder
    assert engine.outbox.names() == []
    with time_machine.travel(expires_at, tick=False), engine.capture(execute=True):
        assert expiry.PLANNER.plan(expires_at) == 1
    assert engine.outbox.names() == ["clusters.apply_operation"]

    operation = engine.settle(cluster)
    assert operation.kind == Operation.Kind.DELETE
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert engine.platform.get_object("Kubernetes", NS, "demo") is None
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.phase == Cluster.Phase.DELETED and cluster.deleted_at is not None
    assert ClusterExpiry.objects.get(pk=cluster.pk).operation_id == operation.pk
    labels = dict(ClusterEvent.objects.filter(cluster=cluster).values_list("reason",
                                                                         "actor_label"))
    assert labels["operation.delete"] == "system (expiry)"
    assert expiry.PLANNER.plan(expires_at + timedelta(minutes=5)) == 0


def test_the_reminder_is_emailed_to_the_clusters_readers(engine, owner, member):
    cluster = engine.create()
    engine.settle(cluster)
    expires_at = timezone.now() + timedelta(hours=30)
    engine.act(expiry.do_set_cluster_expiry, "demo", expires_at)
    with engine.capture(execute=True):
        assert expiry.PLANNER.plan(expires_at - timedelta(hours=24)) == 1
    [event] = Event.objects.filter(type="cluster.expiring")
    mail.outbox = []
    emails.send_event_emails(event.pk)
    assert sorted(m.to[0] for m in mail.outbox) == sorted([owner.email, member.email])
    message = mail.outbox[0]
    assert "demo" in message.subject and "24" in message.subject
    assert "Extend the expiry" in message.body


def test_a_cluster_the_platform_lost_is_deleted_says_so_and_staff_are_alerted(engine):
    UserFactory(is_staff=True, email="ops@example.com")
    cluster = engine.create()
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    get_gateway().delete_cluster(NS, "demo")  # behind the portal's back
    engine.platform.advance(5.0)
    mail.outbox = []
    with engine.capture(execute=True):
        engine.observe()
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.phase == Cluster.Phase.DELETED and cluster.deleted_at is not None
    why = deleted.departure(cluster)
    assert why.kind == "vanished" and "staff were alerted" in why.sentence
    [alert] = [m for m in mail.outbox if m.to == ["ops@example.com"]]
    assert "disappeared from the platform" in alert.subject
