"""Staff's offerings reach every path that writes a cluster: hiding stops new uses only. Every
way staff change them reaches the cached pickers and warnings at once."""

from __future__ import annotations

from datetime import date

import pytest
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.urls import reverse

from clusters import actions, offerings
from clusters.models import Offering
from clusters.offerings import end_of_life_dates, hidden_offerings
from portal.audit import Actor
from portal.tenancy import access_tenant
from tests.clusters.conftest import cluster_spec, group
from tests.factories import UserFactory
from tests.portal.conftest import give_totp


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


# --------------------------------------------------------------------------- staff's changes
# Every way the portal changes offerings (the staff admin's add, edit, list edit, delete,
# "delete selected" and catalogue import) goes through the actions of clusters.offerings, and
# pickers and warnings follow each of them at once although they are cached.


@pytest.fixture
def staff_client(db, client_for):
    user = UserFactory(is_staff=True, is_superuser=True, email="ops@example.org")
    give_totp(user)
    return client_for(user)


def hidden_types() -> frozenset[str]:
    return hidden_offerings()[Offering.Kind.INSTANCE_TYPE]


def saved(kind: str, name: str, **values) -> Offering:
    return offerings.do_save_offering(Offering(kind=kind, name=name, **values))


def test_an_offering_added_in_the_admin_reaches_the_pickers_at_once(
        staff_client, django_capture_on_commit_callbacks):
    assert "u1.large" not in hidden_types()  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:clusters_offering_add"), {
            "kind": "instance_type", "name": "u1.large", "hidden": "on"})

    assert response.status_code == 302, response.content[:2000]
    assert "u1.large" in hidden_types()


def test_an_offering_edited_on_its_page_reaches_the_warnings_at_once(
        staff_client, django_capture_on_commit_callbacks):
    row = saved(Offering.Kind.VERSION, "v1.33")
    assert end_of_life_dates() == {}  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:clusters_offering_change", args=[row.pk]),
            {"kind": "version", "name": "v1.33", "end_of_life_on": "2020-01-01", "note": ""})

    assert response.status_code == 302, response.content[:2000]
    assert end_of_life_dates() == {"v1.33": date(2020, 1, 1)}


def test_offerings_edited_in_the_list_reach_pickers_and_warnings_at_once(
        staff_client, django_capture_on_commit_callbacks):
    version, instance = saved(Offering.Kind.VERSION, "v1.33"), saved(
        Offering.Kind.INSTANCE_TYPE, "u1.large")
    assert end_of_life_dates() == {} and "u1.large" not in hidden_types()  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:clusters_offering_changelist"), {
            "form-TOTAL_FORMS": "2", "form-INITIAL_FORMS": "2", "_save": "Save",
            "form-0-id": str(instance.pk), "form-0-hidden": "on",
            "form-0-end_of_life_on": "",
            "form-1-id": str(version.pk), "form-1-end_of_life_on": "2020-01-01"})

    assert response.status_code == 302, response.content[:2000]
    assert "u1.large" in hidden_types()
    assert end_of_life_dates() == {"v1.33": date(2020, 1, 1)}


def test_an_offering_deleted_in_the_admin_leaves_the_pickers_at_once(
        staff_client, django_capture_on_commit_callbacks):
    row = saved(Offering.Kind.INSTANCE_TYPE, "u1.large", hidden=True)
    assert "u1.large" in hidden_types()  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:clusters_offering_delete", args=[row.pk]),
                                     {"post": "yes"})

    assert response.status_code == 302 and not Offering.objects.exists()
    assert "u1.large" not in hidden_types()


def test_offerings_deleted_from_the_list_leave_pickers_and_warnings_at_once(
        staff_client, django_capture_on_commit_callbacks):
    rows = [saved(Offering.Kind.INSTANCE_TYPE, "u1.large", hidden=True),
            saved(Offering.Kind.VERSION, "v1.33", end_of_life_on=date(2020, 1, 1))]
    assert "u1.large" in hidden_types() and end_of_life_dates() != {}  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:clusters_offering_changelist"), {
            "action": "delete_selected", "_selected_action": [r.pk for r in rows],
            "post": "yes"})

    assert response.status_code == 302 and not Offering.objects.exists()
    assert "u1.large" not in hidden_types() and end_of_life_dates() == {}


def test_the_catalogue_import_drops_the_cached_offerings(staff_client,
                                                       django_capture_on_commit_callbacks):
    # The imported rows hide nothing and retire nothing, so only the caches' absence shows it.
    assert hidden_types() == frozenset() and end_of_life_dates() == {}  # now cached
    assert cache.get(offerings.OFFERINGS_CACHE_KEY) is not None

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:clusters_offering_add_catalogue"))

    assert response.status_code == 302 and Offering.objects.exists()
    assert cache.get(offerings.OFFERINGS_CACHE_KEY) is None
    assert cache.get(offerings.END_OF_LIFE_CACHE_KEY) is None


def test_end_of_life_dates_are_cached_for_every_day(db, django_capture_on_commit_callbacks,
                                                    django_assert_num_queries):
    assert end_of_life_dates() == {}  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        row = saved(Offering.Kind.VERSION, "v1.33", end_of_life_on=date(2030, 6, 1))
    with django_assert_num_queries(1):
        assert end_of_life_dates(today=date(2030, 5, 31)) == {}
    with django_assert_num_queries(0):  # the cached dates serve every day
        assert end_of_life_dates(today=date(2030, 6, 1)) == {"v1.33": date(2030, 6, 1)}
    with django_capture_on_commit_callbacks(execute=True):
        offerings.do_delete_offerings(Offering.objects.filter(pk=row.pk))
    assert end_of_life_dates(today=date(2030, 6, 1)) == {}
