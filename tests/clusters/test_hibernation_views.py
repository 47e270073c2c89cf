"""Hibernation on the cluster page, the list and the usage page: hibernate now, wake now,
the schedule form (errors beside their fields), "Hibernating since … · wakes at …", a scale
while asleep says it applies at the wake, the savings figure; outsiders get 404."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.urls import reverse

from clusters import hibernation
from clusters import hibernation_actions as hib
from clusters.models import Hibernation, HibernationSchedule, NodeGroup, Operation
from tests.billing.conftest import add_price
from tests.clusters.conftest import cluster_spec, group
from tests.clusters.ui import url

pytestmark = pytest.mark.django_db
MONDAY_NOON = datetime(2026, 12, 7, 11, 0, tzinfo=UTC)


@pytest.fixture
def simulated_platform(simulated_platform_factory):
    return simulated_platform_factory(release="1.3.6")


@pytest.fixture
def demo(engine):
    cluster = engine.create(cluster_spec(groups=(group("md0", min_replicas=2, max_replicas=5),)))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    return cluster


def test_hibernate_now_and_wake_now_from_the_page(engine, demo, client_for, owner, tenant,
                                                  django_capture_on_commit_callbacks):
    client = client_for(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("hibernate", tenant, cluster_name="demo"))
    assert response.status_code == 302
    engine.settle(demo)
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert 'data-testid="hibernating"' in page and "Hibernating since" in page
    assert "wakes when someone wakes it" in page
    assert 'data-testid="wake-now"' in page and 'data-testid="restore-note"' in page
    listing = client.get(url("list", tenant)).content.decode()
    assert 'data-testid="row-hibernating"' in listing

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url("wake", tenant, cluster_name="demo"),
                               headers={"HX-Request": "true"})
    assert response.status_code == 200 and "Wake requested" in response.content.decode()
    assert Hibernation.objects.get(cluster=demo).state == Hibernation.State.WAKING


def test_a_scale_while_asleep_says_it_applies_at_the_wake(engine, demo, client_for, owner,
                                                          tenant,
                                                          django_capture_on_commit_callbacks):
    engine.act(hib.do_hibernate, "demo")
    engine.settle(demo)
    client = client_for(owner)
    path = url("group_scale", tenant, cluster_name="demo", group_name="md0")
    data = {"scale-md0-min_replicas": "3", "scale-md0-max_replicas": "6"}
    review = client.post(path, data, headers={"HX-Request": "true"}).content.decode()
    assert 'data-testid="confirm-scale-md0"' in review
    with django_capture_on_commit_callbacks(execute=True):
        done = client.post(path, {**data, "scale-md0-confirm": "True"},
                           headers={"HX-Request": "true"}).content.decode()
    assert "this applies when it wakes" in done
    assert NodeGroup.objects.get(cluster=demo, name="md0", removed_at__isnull=True) \
        .max_replicas == 0
    assert Hibernation.objects.get(cluster=demo).restore[0]["max_replicas"] == 6
    assert "md0 3–6" in done


def test_the_schedule_form_saves_a_preset_and_the_page_says_when_it_wakes(
        engine, demo, client_for, owner, tenant):
    client = client_for(owner)
    with time_machine.travel(MONDAY_NOON, tick=False):
        response = client.post(url("hibernation_schedule", tenant, cluster_name="demo"), {
            "hibernation-enabled": "on", "hibernation-time_zone": "Europe/Zurich",
            "hibernation-preset": "nights_weekends"})
        assert response.status_code == 302
        row = HibernationSchedule.objects.get(cluster=demo)
        assert row.preset == "nights_weekends" and len(row.ranges) == 7
        engine.act(hib.do_hibernate, "demo")
        page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert "wakes at 2026-12-08 07:00 UTC" in page


@pytest.mark.parametrize(("data", "field"), [
    ({"hibernation-time_zone": "Mars/Olympus", "hibernation-preset": "nights"},
     "hibernation-time_zone"),
    ({"hibernation-time_zone": "UTC", "hibernation-day0_start": "25:00",
      "hibernation-day0_end": "08:00"}, "hibernation-day0_start"),
    ({"hibernation-time_zone": "UTC", "hibernation-day2_start": "20:00"},
     "hibernation-day2_end"),
    ({"hibernation-time_zone": "UTC", "hibernation-preset": "always"}, "hibernation-preset"),
    ({"hibernation-time_zone": "UTC", "hibernation-enabled": "on"}, "hibernation-preset"),
    ({"hibernation-time_zone": "x" * 65, "hibernation-preset": "nights"},
     "hibernation-time_zone"),
])
def test_a_bad_schedule_is_refused_beside_its_field(demo, client_for, owner, tenant, data,
                                                     field):
    response = client_for(owner).post(url("hibernation_schedule", tenant, cluster_name="demo"),
                                      data, headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert f'data-field="{field}"' in response.content.decode()
    assert not HibernationSchedule.objects.exists()


def test_outsiders_get_404_and_viewers_may_not_hibernate(demo, client_for, outsider, viewer,
                                                         tenant):
    for name in ("hibernate", "wake", "hibernation_schedule"):
        assert client_for(outsider).post(url(name, tenant, cluster_name="demo")).status_code \
            == 404
        assert client_for(viewer).post(url(name, tenant, cluster_name="demo")).status_code \
            == 403
    assert not Hibernation.objects.exists()


def test_waking_a_cluster_that_does_not_sleep_says_so(demo, client_for, owner, tenant):
    response = client_for(owner).post(url("wake", tenant, cluster_name="demo"),
                                      headers={"HX-Request": "true"})
    assert response.status_code == 422
    assert "This cluster does not hibernate." in response.content.decode()


def test_the_cluster_page_and_the_usage_page_show_what_hibernation_saved(
        demo, client_for, owner, tenant):
    """md0 restores to min 2 nodes of u1.large with 30 GiB each; asleep from 09:00 to 12:00
    (3 h) at CHF 0.36 per node-hour and CHF 0.0036 per GiB-hour: 2 × 3 × 0.36 = 2.16 for the
    nodes, 60 × 3 × 0.0036 = 0.648 → 0.65 for the disk; saved CHF 2.81."""
    noon = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
    add_price("node.u1.large", "0.36", since=datetime(2026, 12, 1, tzinfo=UTC))
    add_price("disk.gib", "0.0036", since=datetime(2026, 12, 1, tzinfo=UTC), kind="disk",
              unit="gib-hour")
    Hibernation.objects.create(
        tenant=tenant, cluster=demo, state=Hibernation.State.WOKEN,
        started_at=datetime(2026, 12, 7, 9, 0, tzinfo=UTC),
        ended_at=datetime(2026, 12, 7, 12, 0, tzinfo=UTC),
        restore=hibernation.groups_to_json(demo.to_spec().node_groups))
    client = client_for(owner)
    with time_machine.travel(noon + timedelta(minutes=5), tick=False):
        detail = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
        usage = client.get(reverse("billing:usage", kwargs={"tenant_slug": tenant.slug}))
    assert "Saved this month by hibernation: CHF 2.81" in " ".join(detail.split())
    assert "Saved this month by hibernation: CHF 2.81" in " ".join(
        usage.content.decode().split())


def test_own_ranges_per_weekday_are_saved_and_shown_again(demo, client_for, owner, tenant):
    client = client_for(owner)
    response = client.post(url("hibernation_schedule", tenant, cluster_name="demo"), {
        "hibernation-enabled": "on", "hibernation-time_zone": "America/New_York",
        "hibernation-day0_start": "22:00", "hibernation-day0_end": "06:00",
        "hibernation-day5_start": "00:00", "hibernation-day5_end": "00:00"})
    assert response.status_code == 302
    row = HibernationSchedule.objects.get(cluster=demo)
    assert row.ranges == [{"day": 0, "start": "22:00", "end": "06:00"},
                          {"day": 5, "start": "00:00", "end": "00:00"}]
    assert row.time_zone == "America/New_York" and row.preset == ""
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert 'name="hibernation-day0_start" value="22:00"' in page
    assert 'value="America/New_York"' in page
