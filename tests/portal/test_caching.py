"""Caches built from rows are dropped by whoever changes the rows, never by the rows themselves.

``save()`` and ``delete()`` have no side effects (portal/caching.py): the actions that change
announcements and offerings drop the caches once the change commits. Every way the portal
changes announcements (the staff admin's add, edit, delete and "delete selected") goes through
those actions, and the announcements every page reads follow each of them at once. The same
guarantee for offerings, including the list edits and the catalogue import, is in
tests/clusters/test_offerings.py.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from clusters.models import Offering
from clusters.offerings import end_of_life_dates, hidden_offerings
from portal import actions
from portal.models import Announcement, active_announcements
from tests.factories import UserFactory
from tests.portal.conftest import give_totp


@pytest.fixture
def staff_client(db, client_for):
    user = UserFactory(is_staff=True, is_superuser=True)
    give_totp(user)
    return client_for(user)


def shown() -> list[str]:
    """The banners every tenant sees now (read through the cache, as pages do)."""
    return [a.message for a in active_announcements(None)]


def announcement_form(message: str, **extra: str) -> dict[str, str]:
    now = timezone.now() - timedelta(minutes=1)
    return {"message": message, "level": "info", "starts_at_0": now.strftime("%Y-%m-%d"),
            "starts_at_1": now.strftime("%H:%M:%S"), "ends_at_0": "", "ends_at_1": "", **extra}


def test_saving_or_deleting_rows_has_no_side_effect(db, django_capture_on_commit_callbacks):
    assert shown() == [] and hidden_offerings()[Offering.Kind.INSTANCE_TYPE] == frozenset()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        banner = Announcement.objects.create(message="Maintenance", starts_at=timezone.now())
        banner.save()
        row = Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large",
                                      hidden=True)
        Offering.objects.bulk_update([row], ["hidden"])

    assert callbacks == []
    # The caches still hold what they held: only the actions drop them.
    assert shown() == [] and hidden_offerings()[Offering.Kind.INSTANCE_TYPE] == frozenset()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        Offering.objects.all().delete()
        banner.delete()
    assert callbacks == []


def test_a_new_announcement_shows_at_once(staff_client, django_capture_on_commit_callbacks):
    assert shown() == []  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:portal_announcement_add"),
                                     announcement_form("Maintenance tonight"))

    assert response.status_code == 302, response.content[:2000]
    assert shown() == ["Maintenance tonight"]


def test_an_edited_announcement_shows_at_once_with_its_new_audience(
        staff_client, tenant, django_capture_on_commit_callbacks):
    banner = actions.do_save_announcement(Announcement(message="Maintenance tonight",
                                                       starts_at=timezone.now()))
    assert shown() == ["Maintenance tonight"]  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:portal_announcement_change", args=[banner.pk]),
            announcement_form("Maintenance moved to tomorrow", tenants=str(tenant.pk)))

    assert response.status_code == 302, response.content[:2000]
    assert shown() == []  # for one tenant only now
    assert [a.message for a in active_announcements(tenant)] == ["Maintenance moved to tomorrow"]


def test_a_deleted_announcement_disappears_at_once(staff_client,
                                                   django_capture_on_commit_callbacks):
    banner = actions.do_save_announcement(Announcement(message="Maintenance tonight",
                                                       starts_at=timezone.now()))
    assert shown() == ["Maintenance tonight"]  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            reverse("admin:portal_announcement_delete", args=[banner.pk]), {"post": "yes"})

    assert response.status_code == 302
    assert shown() == []


def test_announcements_deleted_from_the_list_disappear_at_once(
        staff_client, django_capture_on_commit_callbacks):
    first = actions.do_save_announcement(Announcement(message="First",
                                                      starts_at=timezone.now()))
    second = actions.do_save_announcement(Announcement(message="Second",
                                                       starts_at=timezone.now()))
    assert sorted(shown()) == ["First", "Second"]  # now cached

    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(reverse("admin:portal_announcement_changelist"), {
            "action": "delete_selected", "_selected_action": [first.pk, second.pk],
            "post": "yes"})

    assert response.status_code == 302
    assert shown() == []


def test_the_actions_drop_the_caches_only_once_the_change_commits(
        db, django_capture_on_commit_callbacks):
    from clusters.offerings import do_save_offering

    assert shown() == [] and end_of_life_dates() == {}  # now cached
    with django_capture_on_commit_callbacks() as callbacks:
        actions.do_save_announcement(Announcement(message="Soon", starts_at=timezone.now()))
        do_save_offering(Offering(kind=Offering.Kind.VERSION, name="v1.33",
                                  end_of_life_on=date(2020, 1, 1)))
        # Not committed yet: readers keep the cached answer.
        assert shown() == [] and end_of_life_dates() == {}

    for callback in callbacks:
        callback()
    assert shown() == ["Soon"] and end_of_life_dates() == {"v1.33": date(2020, 1, 1)}
