"""Staff's offerings reach every path that writes a cluster: hiding stops new uses only."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from clusters import actions
from clusters.models import Offering
from portal.audit import Actor
from portal.tenancy import access_tenant
from tests.clusters.conftest import cluster_spec, group


@pytest.fixture
def ctx(tenant, owner):
    return access_tenant(owner, tenant.slug)


def test_a_hidden_instance_type_cannot_be_chosen_for_a_new_cluster(platform, ctx, owner):
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    with pytest.raises(ValidationError) as caught:
        actions.do_create_cluster(Actor(owner), ctx, cluster_spec("shop"))
    messages = caught.value.message_dict["node_groups[0].instance_type"]
    assert "u1.large is no longer offered" in messages[0]
    assert not ctx.tenant.clusters.exists()


def test_a_hidden_version_cannot_be_chosen_but_a_visible_one_can(platform, ctx, owner):
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.34", hidden=True)
    errors = actions.check_spec(ctx, cluster_spec("shop", version="v1.34"))
    assert [e.field for e in errors] == ["version"]
    assert actions.check_spec(ctx, cluster_spec("shop", version="v1.33")) == []


def test_a_cluster_keeps_a_hidden_instance_type_it_already_runs(platform, ctx, owner):
    before = cluster_spec("shop")
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    rescaled = cluster_spec("shop", groups=(group(max_replicas=5),))
    errors = actions.check_spec(ctx, rescaled, previous=before, cluster_id=None)
    assert not [e for e in errors if e.code == "not_offered"]
    added = cluster_spec("shop", groups=(group(), group("extra", instance_type="u1.large",
                                                           roles=())))
    errors = actions.check_spec(ctx, added, previous=before)
    assert [e.field for e in errors if e.code == "not_offered"] == [
        "node_groups[1].instance_type"]


def test_pickers_follow_a_staff_change_at_once(db, django_capture_on_commit_callbacks):
    from clusters.offerings import hidden_offerings

    assert "u1.large" not in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        row = Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large",
                                      hidden=True)
    assert "u1.large" in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]
    with django_capture_on_commit_callbacks(execute=True):
        row.delete()
    assert "u1.large" not in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]


def test_end_of_life_dates_follow_a_staff_change_at_once_and_the_calendar(
        db, django_capture_on_commit_callbacks, django_assert_num_queries):
    from datetime import date

    from clusters.offerings import end_of_life_dates

    assert end_of_life_dates() == {}  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        row = Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                                      end_of_life_on=date(2030, 6, 1))
    with django_assert_num_queries(1):
        assert end_of_life_dates(today=date(2030, 5, 31)) == {}
    with django_assert_num_queries(0):  # the cached dates serve every day
        assert end_of_life_dates(today=date(2030, 6, 1)) == {"v1.33": date(2030, 6, 1)}
    with django_capture_on_commit_callbacks(execute=True):
        row.delete()
    assert end_of_life_dates(today=date(2030, 6, 1)) == {}


def test_pickers_follow_offerings_created_and_updated_in_bulk(
        db, django_capture_on_commit_callbacks):
    from clusters.offerings import hidden_offerings

    assert "u1.large" not in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        Offering.objects.bulk_create([Offering(kind=Offering.Kind.INSTANCE_TYPE,
                                               name="u1.large", hidden=True)])
    assert "u1.large" in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]
    row = Offering.objects.get(name="u1.large")
    row.hidden = False
    with django_capture_on_commit_callbacks(execute=True):
        Offering.objects.bulk_update([row], ["hidden"])
    assert "u1.large" not in hidden_offerings()[Offering.Kind.INSTANCE_TYPE]
