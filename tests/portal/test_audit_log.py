"""The audit log: who sees it, its filters, and why nobody can rewrite it."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import Permission
from django.db import transaction
from django.urls import reverse

from portal.audit import Actor, record
from portal.models import AuditEntry
from tests.factories import UserFactory
from tests.portal.conftest import give_totp
from tests.portal.pages import field_errors, table_rows


def log_url(tenant) -> str:
    return reverse("audit_log", kwargs={"tenant_slug": tenant.slug})


def entry(tenant, *, verb: str, actor, at: datetime, via: str = "web", **extra) -> AuditEntry:
    return AuditEntry.objects.create(
        at=at, actor=actor, actor_label=actor.email if actor else "system", via=via,
        tenant=tenant, tenant_slug=tenant.slug if tenant else "", verb=verb,
        object_type="tenant", object_repr=str(tenant), **extra)


@pytest.fixture
def history(tenant, owner, tenant_admin, other_tenant, outsider):
    """A small history: three entries in ACME, one in Globex."""
    entry(tenant, verb="tenant.rename", actor=owner, at=datetime(2026, 1, 10, 9, tzinfo=UTC),
          changes={"name": ["Acme", "ACME"]}, ip="192.0.2.10")
    entry(tenant, verb="invitation.create", actor=tenant_admin,
          at=datetime(2026, 2, 3, 14, tzinfo=UTC), via="api", token_name="ci-token")
    entry(tenant, verb="membership.role_change", actor=owner,
          at=datetime(2026, 3, 5, 23, 59, tzinfo=UTC), changes={"role": ["member", "viewer"]})
    entry(other_tenant, verb="tenant.rename", actor=outsider,
          at=datetime(2026, 2, 1, tzinfo=UTC), changes={"name": ["Secret", "Globex"]})


def shown(response) -> list[str]:
    """The verbs listed, newest first."""
    return [cells[4] for cells in table_rows(response, "audit-entries") if len(cells) == 7]


@pytest.mark.parametrize("persona", ["owner", "tenant_admin"])
def test_owners_and_admins_read_the_tenant_log(client_for, history, tenant, persona, request):
    response = client_for(request.getfixturevalue(persona)).get(log_url(tenant))

    assert response.status_code == 200
    assert shown(response) == ["membership.role_change", "invitation.create", "tenant.rename"]
    rows = table_rows(response, "audit-entries")
    assert rows[0][0] == "2026-03-05 23:59:00 UTC"
    assert rows[0][6] == "role: member → viewer"
    assert rows[1][1].endswith("(ci-token)") and rows[1][2] == "API"
    assert rows[2][3] == "192.0.2.10"


@pytest.mark.parametrize("persona", ["member", "viewer", "billing_user"])
def test_other_roles_cannot_read_the_log(client_for, history, tenant, persona, request):
    response = client_for(request.getfixturevalue(persona)).get(log_url(tenant))
    assert response.status_code == 403


def test_an_outsider_gets_404_for_the_log(client_for, history, tenant, outsider):
    assert client_for(outsider).get(log_url(tenant)).status_code == 404


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"verb": "rename"}, ["tenant.rename"]),
        ({"verb": "INVITATION"}, ["invitation.create"]),
        ({"via": "api"}, ["invitation.create"]),
        ({"via": "web"}, ["membership.role_change", "tenant.rename"]),
        ({"since": "2026-02-01"}, ["membership.role_change", "invitation.create"]),
        ({"until": "2026-02-03"}, ["invitation.create", "tenant.rename"]),
        ({"since": "2026-03-05", "until": "2026-03-05"}, ["membership.role_change"]),
        ({"verb": "nothing-like-this"}, []),
    ],
    ids=["verb", "verb-any-case", "via-api", "via-web", "since", "until-inclusive", "one-day",
         "no-match"],
)
def test_filters_narrow_the_log(client_for, history, owner, tenant, query, expected):
    response = client_for(owner).get(log_url(tenant), query)
    assert response.status_code == 200
    assert shown(response) == expected


def test_the_actor_filter_matches_part_of_the_address(client_for, history, owner, tenant,
                                                      tenant_admin):
    local_part = tenant_admin.email.split("@")[0]  # "user12@" must not match "user123@"
    response = client_for(owner).get(log_url(tenant), {"actor": local_part.upper() + "@"})
    assert shown(response) == ["invitation.create"]


def test_an_empty_result_says_so(client_for, history, owner, tenant):
    response = client_for(owner).get(log_url(tenant), {"verb": "nothing"})
    assert table_rows(response, "audit-entries") == [["Nothing recorded for these filters."]]


def test_a_bad_date_is_reported_beside_the_field(client_for, history, owner, tenant):
    response = client_for(owner).get(log_url(tenant), {"since": "yesterday-ish"})
    assert response.status_code == 200
    assert field_errors(response, "since") == ["Enter a valid date."]


def test_an_htmx_filter_returns_only_the_entries(client_for, history, owner, tenant):
    response = client_for(owner).get(log_url(tenant), {"via": "api"}, HTTP_HX_REQUEST="true")
    body = response.content.decode().strip()
    assert body.startswith('<div class="card" id="audit-entries">')
    assert "<form" not in body
    assert shown(response) == ["invitation.create"]


def test_another_tenants_entries_never_show(client_for, history, owner, tenant):
    client = client_for(owner)
    for query in ({}, {"verb": "tenant.rename"}, {"actor": "user"}, {"since": "2026-02-01",
                                                                       "until": "2026-02-01"}):
        response = client.get(log_url(tenant), query)
        assert "Globex" not in response.content.decode()
        assert "Secret" not in response.content.decode()


def test_the_log_pages_through_long_histories(client_for, owner, tenant):
    for n in range(55):
        entry(tenant, verb=f"test.step{n:02d}", actor=owner,
              at=datetime(2026, 1, 1, 0, n, tzinfo=UTC))
    client = client_for(owner)

    first = client.get(log_url(tenant), {"verb": "test."})
    second = client.get(log_url(tenant), {"verb": "test.", "page": 2})

    assert len(shown(first)) == 50 and shown(first)[0] == "test.step54"
    assert shown(second) == [f"test.step{n:02d}" for n in range(4, -1, -1)]
    assert "verb=test." in first.content.decode().split("Older")[0].rsplit("href=", 1)[1]


def test_the_log_page_runs_a_bounded_number_of_queries(
        client_for, owner, tenant, django_assert_max_num_queries):
    for n in range(30):
        entry(tenant, verb="test.step", actor=owner, at=datetime(2026, 1, 1, 0, n, tzinfo=UTC))
    client = client_for(owner)
    with django_assert_max_num_queries(12):
        assert client.get(log_url(tenant)).status_code == 200


# -- append-only -------------------------------------------------------------------------------

@pytest.fixture
def one_entry(tenant, owner):
    return record(Actor(user=owner), "tenant.rename", tenant, tenant=tenant,
                  changes={"name": ["A", "B"]})


def test_saving_an_existing_entry_is_refused(one_entry):
    one_entry.verb = "tenant.delete"
    with pytest.raises(PermissionError):
        one_entry.save()
    assert AuditEntry.objects.get(pk=one_entry.pk).verb == "tenant.rename"


def test_a_queryset_update_is_refused(one_entry):
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=one_entry.pk).update(verb="tenant.delete")
    with pytest.raises(PermissionError):
        AuditEntry.objects.update(actor_label="nobody")
    assert AuditEntry.objects.get(pk=one_entry.pk).verb == "tenant.rename"


def test_a_bulk_update_is_refused(one_entry):
    one_entry.verb = "tenant.delete"
    with pytest.raises(PermissionError), transaction.atomic():
        AuditEntry.objects.bulk_update([one_entry], ["verb"])
    assert AuditEntry.objects.get(pk=one_entry.pk).verb == "tenant.rename"


def test_deleting_entries_is_refused(one_entry):
    with pytest.raises(PermissionError):
        one_entry.delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.filter(pk=one_entry.pk).delete()
    with pytest.raises(PermissionError):
        AuditEntry.objects.all().delete()
    assert AuditEntry.objects.filter(pk=one_entry.pk).exists()


def test_entries_outlive_the_tenant_and_the_actor(one_entry, tenant, owner):
    tenant.delete()
    owner.delete()
    kept = AuditEntry.objects.get(pk=one_entry.pk)
    assert kept.tenant is None and kept.actor is None
    assert kept.tenant_slug == "acme" and kept.actor_label == owner.email


# -- the staff admin ---------------------------------------------------------------------------

@pytest.fixture
def auditor(db):
    """Staff (not superuser) with MFA and only the permission to view audit entries."""
    user = UserFactory(is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_auditentry"))
    give_totp(user)
    return user


ADMIN_LIST = "/admin/portal/auditentry/"


def test_staff_read_the_audit_log_in_the_admin(client_for, auditor, one_entry):
    response = client_for(auditor).get(ADMIN_LIST)
    assert response.status_code == 200
    assert "tenant.rename" in response.content.decode()


@pytest.mark.parametrize("user_fixture", ["auditor", "staff_with_mfa"],
                         ids=["viewer-staff", "superuser"])
def test_the_admin_cannot_add_change_or_delete_entries(client_for, one_entry, user_fixture,
                                                      request):
    client = client_for(request.getfixturevalue(user_fixture))
    change = f"{ADMIN_LIST}{one_entry.pk}/change/"

    assert client.get(f"{ADMIN_LIST}add/").status_code == 403
    assert client.post(f"{ADMIN_LIST}add/", {"verb": "forged"}).status_code == 403
    assert client.post(change, {"verb": "forged", "actor_label": "x"}).status_code == 403
    assert client.get(f"{ADMIN_LIST}{one_entry.pk}/delete/").status_code == 403
    assert client.post(f"{ADMIN_LIST}{one_entry.pk}/delete/", {"post": "yes"}).status_code == 403
    bulk = client.post(ADMIN_LIST, {"action": "delete_selected",
                                    "_selected_action": [one_entry.pk], "post": "yes"})
    assert bulk.status_code in (200, 302)
    assert AuditEntry.objects.get(pk=one_entry.pk).verb == "tenant.rename"
    listing = client.get(ADMIN_LIST).content.decode()
    assert 'value="delete_selected"' not in listing
    assert f'href="{ADMIN_LIST}add/"' not in listing


def test_staff_export_the_selected_entries_as_csv(client_for, auditor, one_entry, tenant, owner):
    second = record(Actor(user=owner, ip="198.51.100.7"), "invitation.create", tenant,
                    tenant=tenant)

    response = client_for(auditor).post(ADMIN_LIST, {
        "action": "export_csv", "_selected_action": [one_entry.pk, second.pk]})

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="audit-log.csv"' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:6] == ["at", "actor", "via", "ip", "tenant", "verb"]
    assert [(r[1], r[3], r[4], r[5]) for r in rows[1:]] == [
        (owner.email, "", "acme", "tenant.rename"),
        (owner.email, "198.51.100.7", "acme", "invitation.create"),
    ]


def test_staff_without_mfa_cannot_export(client_for, one_entry):
    user = UserFactory(is_staff=True, is_superuser=True)
    response = client_for(user).post(ADMIN_LIST, {"action": "export_csv",
                                                  "_selected_action": [one_entry.pk]})
    assert response.status_code == 302
    assert "text/csv" not in response.get("Content-Type", "")
