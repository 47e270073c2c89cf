"""Every notification starts from a domain event: a cluster that becomes ready or is deleted,
an operation that ends, a budget threshold, an invoice, a version near its end of life. The
event and its deliveries are written in the transaction of the change; emails go to the
members who want them, each with a link to their preferences."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import transaction
from django.utils import translation

from billing import budgets
from billing.models import Budget
from clusters import actions, observe, offerings
from clusters.models import Cluster, ClusterEvent, Offering, Operation, VersionNotice
from notifications import emails, publishing
from notifications.models import Delivery, Event
from portal.models import NotificationPreference, UserProfile
from portal.notifications import EventType
from tests.billing.conftest import T0, make_rig
from tests.billing.test_invoices import _final
from tests.clusters.conftest import cluster_spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


def events_of(event_type: str) -> list[Event]:
    return list(Event.objects.filter(type=event_type).order_by("created_at"))


def send_emails_of(event: Event) -> list[mail.EmailMessage]:
    mail.outbox = []
    emails.send_event_emails(event.pk)
    return list(mail.outbox)


def opt(user, event_type: str, email: bool) -> None:
    NotificationPreference.objects.update_or_create(user=user, event_type=event_type,
                                                    defaults={"email": email})


def test_a_cluster_that_comes_up_is_ready_and_its_creation_succeeded(
        engine, tenant, owner, member, viewer, receiver, make_endpoint):
    endpoint = make_endpoint(receiver.url("/ok"),
                             ("cluster.ready", "operation.succeeded")).endpoint
    opt(viewer, EventType.CLUSTER_READY, False)
    cluster = engine.create()
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.SUCCEEDED

    [ready] = events_of(EventType.CLUSTER_READY)
    assert ready.tenant == tenant and ready.data["cluster"]["name"] == "demo"
    assert ready.data["previous_phase"] == Cluster.Phase.CREATING
    assert ready.data["cluster"]["url"].endswith(f"/t/{tenant.slug}/clusters/demo/")
    [succeeded] = events_of(EventType.OPERATION_SUCCEEDED)
    assert succeeded.data["operation"] == {
        "id": operation.pk, "kind": "create", "state": "succeeded", "error_class": None,
        "error_message": None, "created_at": succeeded.data["operation"]["created_at"],
        "finished_at": succeeded.data["operation"]["finished_at"]}
    assert sorted(Delivery.objects.filter(endpoint=endpoint)
                  .values_list("event__type", flat=True)) == ["cluster.ready",
                                                              "operation.succeeded"]

    sent = send_emails_of(ready)
    assert sorted(m.to[0] for m in sent) == sorted([owner.email, member.email])
    assert "demo is ready" in sent[0].subject
    assert "http://127.0.0.1:8000/account/notifications/" in sent[0].body
    assert send_emails_of(succeeded) == []  # successes are off unless chosen
    assert send_emails_of(ready) == []  # once


def test_a_german_speaking_owner_reads_the_ready_email_in_german(engine, tenant, owner,
                                                                 member):
    UserProfile.objects.update_or_create(user=owner, defaults={"language": "de"})
    cluster = engine.create()
    engine.settle(cluster)
    [ready] = events_of(EventType.CLUSTER_READY)
    with translation.override("en"):  # whoever's request the worker runs after
        sent = {m.to[0]: m for m in send_emails_of(ready)}
    assert "ist bereit" in sent[owner.email].subject, sent[owner.email].subject
    assert "is ready" in sent[member.email].subject


def test_an_operation_that_fails_carries_its_error_class(engine, tenant, owner):
    cluster = engine.create(cluster_spec(version="v1.33"))
    engine.settle(cluster)
    Cluster.objects.filter(pk=cluster.pk).update(version="v1.34")
    engine.act(actions.do_upgrade_cluster, "demo", "v1.35")
    operation = engine.settle(cluster)
    assert operation.state == Operation.State.FAILED

    [failed] = events_of(EventType.OPERATION_FAILED)
    assert failed.data["operation"]["error_class"] == "invalid_spec"
    assert failed.data["operation"]["error_message"] == operation.error_message
    [message] = send_emails_of(failed)
    assert message.to == [owner.email] and "failed" in message.subject
    assert "The platform rejected the specification" in message.body


def test_a_deleted_cluster_is_announced(engine, tenant, owner):
    cluster = engine.create()
    engine.settle(cluster)
    engine.act(actions.do_delete_cluster, "demo", confirm="demo")
    engine.settle(cluster)
    [deleted] = events_of(EventType.CLUSTER_DELETED)
    assert deleted.data["cluster"]["url"] is None
    assert deleted.data["previous_phase"] == Cluster.Phase.DELETING
    assert len(events_of(EventType.CLUSTER_READY)) == 1


def test_a_degraded_cluster_that_recovers_is_ready_again_but_an_update_is_not(engine,
                                                                            tenant):
    cluster = engine.create()
    engine.settle(cluster)
    for before in (Cluster.Phase.DEGRADED, Cluster.Phase.UPDATING):
        Cluster.objects.filter(pk=cluster.pk).update(phase=before)
        with transaction.atomic():
            observe.refresh(Cluster.objects.select_for_update().get(pk=cluster.pk))
        assert Cluster.objects.get(pk=cluster.pk).phase == Cluster.Phase.RUNNING
    readies = events_of(EventType.CLUSTER_READY)
    assert [e.data["previous_phase"] for e in readies] == ["creating", "degraded"]


def test_a_subscriber_failure_never_undoes_the_change(engine, tenant, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("notification bug")

    monkeypatch.setattr(publishing, "record_event", broken)
    cluster = engine.create()
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    assert Event.objects.count() == 0


def test_budget_thresholds_and_invoices_reach_webhooks_and_respect_email_choices(
        tenant, price_book, owner, billing_user, receiver, make_endpoint,
        django_capture_on_commit_callbacks):
    endpoint = make_endpoint(receiver.url("/ok"),
                             ("budget.threshold", "invoice.finalized")).endpoint
    opt(billing_user, EventType.BUDGET_THRESHOLD, False)
    opt(owner, EventType.INVOICE_FINALIZED, False)
    Budget.objects.create(tenant=tenant, amount=Decimal("36.00"), thresholds=[50])
    rig = make_rig(tenant, "web")
    rig.observe(T0, md0=1)
    with django_capture_on_commit_callbacks(execute=True):
        budgets.check_budgets(now=T0 + timedelta(hours=60))
    [threshold] = events_of(EventType.BUDGET_THRESHOLD)
    assert threshold.data == {"threshold_percent": 50, "month": "2026-03",
                              "budget_amount": "36.00", "spent": "21.60", "currency": "CHF"}
    assert not threshold.email_due  # billing sends its own
    assert [m.to for m in mail.outbox] == [[owner.email]]
    assert "/account/notifications/" in mail.outbox[0].body

    mail.outbox = []
    rig.observe(T0 + timedelta(hours=61), md0=0)
    with django_capture_on_commit_callbacks(execute=True):
        invoice = _final(tenant)
    [finalized] = events_of(EventType.INVOICE_FINALIZED)
    assert finalized.data["invoice"]["number"] == invoice.number
    assert finalized.data["invoice"]["total"] == f"{invoice.total:.2f}"
    assert [m.to for m in mail.outbox] == [[billing_user.email]]
    assert "/account/notifications/" in mail.outbox[0].body
    assert Delivery.objects.filter(endpoint=endpoint).count() == 2


def test_a_version_near_its_end_of_life_is_announced_once_per_cluster_and_version(
        engine, tenant, owner):
    cluster = engine.create(cluster_spec(version="v1.33"))
    engine.settle(cluster)
    now = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=date(2026, 4, 15))
    assert offerings.check_end_of_life(now=now, lead_days=30) == 0  # 45 days away
    soon = now + timedelta(days=20)
    assert offerings.check_end_of_life(now=soon, lead_days=30) == 1
    assert offerings.check_end_of_life(now=soon + timedelta(days=1), lead_days=30) == 0

    [event] = events_of(EventType.VERSION_END_OF_LIFE_SOON)
    assert event.data["version"] == "v1.33" and event.data["end_of_life_on"] == "2026-04-15"
    assert event.data["days_left"] == 25 and event.data["upgrade_to"] == "v1.34"
    assert ClusterEvent.objects.filter(cluster=cluster, reason="EndOfLifeSoon").count() == 1
    [message] = send_emails_of(event)
    assert message.to == [owner.email] and "v1.33" in message.subject
    assert "Upgrade it to v1.34" in message.body

    # Upgraded to a version that also nears its end: told again, for that version.
    Cluster.objects.filter(pk=cluster.pk).update(version="v1.34")
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.34",
                            end_of_life_on=date(2026, 4, 10))
    assert offerings.check_end_of_life(now=soon, lead_days=30) == 1
    assert sorted(VersionNotice.objects.values_list("version", flat=True)) == ["v1.33", "v1.34"]
