"""The pages of expiry, templates and clones, and deleted clusters: what each role may do,
refusals beside their fields, outsiders answered 404, a deleted cluster's read-only page."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clusters.models import (
    Cluster,
    ClusterEvent,
    ClusterExpiry,
    ClusterTemplate,
    ExpiryPolicy,
    Offering,
    Operation,
)
from portal.models import AuditEntry
from tests.clusters.test_views_create import form_data
from tests.clusters.ui import (
    field_errors,
    make_cluster,
    make_operation,
    offline_platform,
    signed_in,
    url,
)

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]

HX = {"HX-Request": "true"}


def in_hours(hours: float):
    return timezone.now() + timedelta(hours=hours)


# --------------------------------------------------------------------------- expiry


def test_a_cluster_created_with_delete_after_gets_its_expiry(client_for, member, tenant):
    response = client_for(member).post(url("create", tenant),
                                       form_data(name="web", **{"expiry-after_hours": "24"}))
    assert response.status_code == 302
    row = ClusterExpiry.objects.get(cluster__name="web")
    assert in_hours(23.9) < row.expires_at < in_hours(24.1)
    assert row.set_by == member.email
    assert AuditEntry.objects.filter(verb="cluster.expiry.set").count() == 1


def test_a_member_must_give_an_expiry_within_the_tenants_maximum(client_for, member, owner,
                                                                 tenant):
    ExpiryPolicy.objects.create(tenant=tenant, max_hours=72)
    client = client_for(member)

    missing = client.post(url("create", tenant), form_data(name="web"))
    assert missing.status_code == 422
    assert "at most 3 days" in " ".join(field_errors(missing, "expiry-expires_at"))
    too_long = client.post(url("create", tenant), form_data(
        name="web", **{"expiry-expires_at": (timezone.localtime() + timedelta(days=5))
                       .strftime("%Y-%m-%dT%H:%M")}))
    assert too_long.status_code == 422
    assert "at most 3 days" in " ".join(field_errors(too_long, "expiry-expires_at"))
    assert not Cluster.objects.filter(name="web").exists()

    assert client.post(url("create", tenant), form_data(
        name="web", **{"expiry-after_hours": "48"})).status_code == 302
    # Owners and admins may create a cluster without an expiry.
    assert client_for(owner).post(url("create", tenant),
                                  form_data(name="prod")).status_code == 302
    assert not ClusterExpiry.objects.filter(cluster__name="prod").exists()


def test_a_bad_delete_after_is_refused_beside_the_field(client_for, member, tenant):
    response = client_for(member).post(url("create", tenant), form_data(
        name="web", **{"expiry-after_hours": "99999"}))
    assert response.status_code == 422
    assert field_errors(response, "expiry-after_hours")
    past = client_for(member).post(url("create", tenant), form_data(
        name="web", **{"expiry-expires_at": "2001-01-01T10:00"}))
    assert "at least an hour" in " ".join(field_errors(past, "expiry-expires_at"))
    assert not Cluster.objects.filter(name="web").exists()


def test_the_cluster_page_says_when_it_expires_and_the_owner_sets_and_removes_it(
        client_for, owner, tenant):
    cluster = make_cluster(tenant)
    client = client_for(owner)
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert "No expiry" in page and 'data-testid="expiry-set"' in page

    answer = client.post(url("expiry_set", tenant, cluster_name="demo"),
                         {"expiry-after_hours": "8"}, headers=HX)
    assert answer.status_code == 200 and "Expiry set" in answer.content.decode()
    assert ClusterExpiry.objects.filter(cluster=cluster).exists()
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert "is deleted with its volumes on" in page and "alert-warning" in page  # within 24 h
    timeline = ClusterEvent.objects.get(cluster=cluster, reason="cluster.expiry.set")
    assert timeline.actor_label == owner.email

    answer = client.post(url("expiry_remove", tenant, cluster_name="demo"), headers=HX)
    assert "no longer deleted by itself" in answer.content.decode()
    assert not ClusterExpiry.objects.filter(cluster=cluster).exists()
    assert AuditEntry.objects.filter(verb="cluster.expiry.remove").count() == 1


def test_a_member_extends_within_the_limit_but_neither_schedules_nor_removes(
        client_for, member, tenant):
    cluster = make_cluster(tenant)
    client = client_for(member)
    first = client.post(url("expiry_set", tenant, cluster_name="demo"),
                        {"expiry-after_hours": "8"}, headers=HX)
    assert first.status_code == 422 and "Only owners and admins" in first.content.decode()
    assert not ClusterExpiry.objects.filter(cluster=cluster).exists()

    ExpiryPolicy.objects.create(tenant=tenant, max_hours=48)
    row = ClusterExpiry.objects.create(cluster=cluster, expires_at=in_hours(10))
    page = client.get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert 'data-testid="expiry-extend"' in page and 'data-testid="expiry-remove"' not in page
    ok = client.post(url("expiry_extend", tenant, cluster_name="demo"), {"extend-hours": "24"},
                     headers=HX)
    assert ok.status_code == 200
    row.refresh_from_db()
    assert in_hours(33.9) < row.expires_at < in_hours(34.1)
    beyond = client.post(url("expiry_extend", tenant, cluster_name="demo"),
                         {"extend-hours": "24"}, headers=HX)
    assert beyond.status_code == 422 and "at most 2 days" in beyond.content.decode()
    assert client.post(url("expiry_remove", tenant, cluster_name="demo")).status_code == 403


def test_an_expired_cluster_page_says_it_is_being_deleted_at_its_expiry(client_for, viewer,
                                                                        tenant):
    cluster = make_cluster(tenant, phase=Cluster.Phase.DELETING)
    ClusterExpiry.objects.create(cluster=cluster, expires_at=in_hours(-1), set_by="a@x.org",
                                 expired_at=timezone.now())
    page = client_for(viewer).get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert "This cluster expired on" in page and "a@x.org" in page


def test_the_owner_sets_the_tenants_maximum_expiry(client_for, owner, member, tenant):
    client = client_for(owner)
    assert client.get(url("expiry_policy", tenant)).status_code == 200
    bad = client.post(url("expiry_policy", tenant), {"max_hours": "99999"})
    assert bad.status_code == 422 and field_errors(bad, "max_hours")
    assert client.post(url("expiry_policy", tenant), {"max_hours": "168"}).status_code == 302
    assert ExpiryPolicy.objects.get(tenant=tenant).max_hours == 168
    assert AuditEntry.objects.get(verb="tenant.expiry_policy").changes == {
        "max_hours": [None, 168]}
    assert client_for(member).post(url("expiry_policy", tenant),
                                   {"max_hours": ""}).status_code == 403


def test_outsiders_get_not_found_for_expiry_templates_and_deleted_clusters(client_for,
                                                                           outsider, tenant):
    cluster = make_cluster(tenant)
    template = ClusterTemplate.objects.create(tenant=tenant, name="t", spec={})
    gone = make_cluster(tenant, "gone", phase=Cluster.Phase.DELETED)
    Cluster.objects.filter(pk=gone.pk).update(deleted_at=timezone.now())
    client = client_for(outsider)
    assert client.post(url("expiry_set", tenant, cluster_name=cluster.name),
                       {"expiry-after_hours": "8"}).status_code == 404
    assert client.get(url("template_edit", tenant, template_id=template.pk)).status_code == 404
    assert client.get(url("deleted_detail", tenant, deleted_id=gone.pk)).status_code == 404
    assert client.get(url("create", tenant) + f"?template={template.pk}").status_code == 404


# --------------------------------------------------------------------------- templates


def test_save_as_template_then_a_new_cluster_from_it_is_prefilled(client_for, member, tenant):
    make_cluster(tenant, groups=[{"name": "workers", "instance_type": "u1.large",
                                  "min_replicas": 2, "max_replicas": 5}])
    client = client_for(member)
    saved = client.post(url("template_save", tenant, cluster_name="demo"),
                        {"template-name": "small dev", "template-description": "for tests"},
                        headers=HX)
    assert saved.status_code == 200 and "small dev" in saved.content.decode()
    template = ClusterTemplate.objects.get(tenant=tenant)
    assert template.spec["name"] == "" and template.spec["host"] == ""
    assert template.source_cluster == "demo"
    assert client.get(url("templates", tenant)).content.decode().count("template-row") == 1

    page = client.get(url("create", tenant) + f"?template={template.pk}").content.decode()
    assert "From the template" in page
    assert 'name="ng-0-name" value="workers"' in page
    assert 'name="ng-0-min_replicas" value="2"' in page
    assert 'name="ng-0-max_replicas" value="5"' in page
    assert 'name="name" value=' not in page  # the new name is the person's to choose

    again = client.post(url("template_save", tenant, cluster_name="demo"),
                        {"template-name": "small dev"}, headers=HX)
    assert again.status_code == 422 and "already exists" in again.content.decode()


def test_a_template_name_too_long_is_refused_beside_its_field(client_for, member, tenant):
    make_cluster(tenant)
    answer = client_for(member).post(url("template_save", tenant, cluster_name="demo"),
                                     {"template-name": "x" * 61})
    assert answer.status_code == 422 and field_errors(answer, "template-name")
    assert not ClusterTemplate.objects.exists()


def test_a_tenant_keeps_at_most_fifty_templates(client_for, member, tenant):
    make_cluster(tenant)
    ClusterTemplate.objects.bulk_create([ClusterTemplate(tenant=tenant, name=f"t{i}", spec={})
                                         for i in range(50)])
    answer = client_for(member).post(url("template_save", tenant, cluster_name="demo"),
                                     {"template-name": "one more"}, headers=HX)
    assert answer.status_code == 422 and "the most it may keep" in answer.content.decode()
    assert ClusterTemplate.objects.count() == 50


def test_a_template_whose_version_reached_its_end_of_life_proposes_the_next(client_for, member,
                                                                            tenant):
    make_cluster(tenant, version="v1.33")
    client = client_for(member)
    client.post(url("template_save", tenant, cluster_name="demo"), {"template-name": "old"})
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=date(2026, 1, 1))
    template = ClusterTemplate.objects.get()
    page = client.get(url("create", tenant) + f"?template={template.pk}").content.decode()
    assert "Kubernetes v1.33 reached its end of life on 2026-01-01" in page
    assert "proposes v1.34" in page
    assert '<option value="v1.34" selected>' in page


def test_clone_opens_the_create_page_prefilled_with_every_field_editable(client_for, member,
                                                                          tenant):
    make_cluster(tenant, groups=[{"name": "md0", "max_replicas": 7}])
    page = client_for(member).get(url("create", tenant) + "?clone=demo").content.decode()
    assert "A clone of demo" in page
    assert 'name="ng-0-max_replicas" value="7"' in page
    assert client_for(member).get(url("create", tenant) + "?clone=nope").status_code == 404
    assert client_for(member).get(url("create", tenant) + "?template=x1").status_code == 404


def test_templates_are_renamed_and_deleted_with_audit(client_for, member, tenant):
    template = ClusterTemplate.objects.create(tenant=tenant, name="a", spec={})
    client = client_for(member)
    assert client.post(url("template_edit", tenant, template_id=template.pk),
                       {"name": "b", "description": "d"}).status_code == 302
    template.refresh_from_db()
    assert (template.name, template.description) == ("b", "d")
    assert client.post(url("template_delete", tenant,
                           template_id=template.pk)).status_code == 302
    assert not ClusterTemplate.objects.exists()
    assert [e.verb for e in AuditEntry.objects.order_by("pk")] == [
        "cluster_template.update", "cluster_template.delete"]


# --------------------------------------------------------------------------- deleted clusters


def gone(tenant, name: str = "old", *, days: float = 1) -> Cluster:
    cluster = make_cluster(tenant, name, phase=Cluster.Phase.DELETED, kubeconfig_ready=False)
    Cluster.objects.filter(pk=cluster.pk).update(deleted_at=timezone.now()
                                                 - timedelta(days=days))
    cluster.refresh_from_db()
    return cluster


def test_the_deleted_filter_lists_the_last_90_days_with_why(client_for, viewer, tenant):
    expired = gone(tenant, "expired")
    ClusterExpiry.objects.create(cluster=expired, expires_at=expired.deleted_at,
                                 set_by="dev@example.com", expired_at=expired.deleted_at)
    vanished = gone(tenant, "lost", days=3)
    ClusterEvent.objects.create(tenant=tenant, cluster=vanished, source="platform",
                                severity="error", reason="Vanished", message="gone")
    by_person = gone(tenant, "manual", days=5)
    make_operation(by_person, Operation.Kind.DELETE)
    gone(tenant, "ancient", days=91)
    make_cluster(tenant, "alive")

    page = client_for(viewer).get(url("deleted_list", tenant)).content.decode()
    assert page.count('data-testid="deleted-row"') == 3
    assert "ancient" not in page and "alive" not in page
    assert "at its expiry" in page and "dev@example.com" in page
    assert "disappeared from the platform" in page and "staff were alerted" in page
    assert "Deleted by" in page


def test_a_deleted_clusters_page_is_read_only_with_its_timeline_and_last_cost(client_for,
                                                                              member, tenant):
    cluster = gone(tenant)
    operation = make_operation(cluster, Operation.Kind.DELETE)
    ClusterEvent.objects.create(tenant=tenant, cluster=cluster, source="portal",
                                operation=operation,
                                reason="operation.delete", message="Deletion requested.",
                                actor_label="someone@example.com")
    client = client_for(member)
    # The name's page leads to the deleted cluster's page (it was 404 before).
    answer = client.get(url("detail", tenant, cluster_name="old"))
    assert answer.status_code == 302
    page = client.get(answer["Location"])
    html = page.content.decode()
    assert page.status_code == 200
    assert "Deleted by someone@example.com" in html
    assert "Deletion requested." in html
    assert 'data-testid="last-cost"' in html and "CHF 0.00" in html
    assert "kubeconfig" not in html.split("<main", 1)[-1].lower().replace(
        "its kubeconfig and its volumes went with it", "")
    # Every action and the kubeconfig still refuse a deleted cluster.
    assert signed_in(member).post(url("kubeconfig", tenant, cluster_name="old"),
                                  {"kind": "admin"}).status_code == 404
    assert client.get(url("oidc_kubeconfig", tenant, cluster_name="old")).status_code == 404
    assert client.post(url("expiry_set", tenant, cluster_name="old"),
                       {"expiry-after_hours": "8"}).status_code == 404
    assert client.post(url("template_save", tenant, cluster_name="old"),
                       {"template-name": "x"}).status_code == 404


def test_a_cluster_deleted_over_90_days_ago_is_kept_for_billing_only(client_for, member,
                                                                    tenant):
    cluster = gone(tenant, days=91)
    client = client_for(member)
    assert client.get(url("deleted_detail", tenant, deleted_id=cluster.pk)).status_code == 404
    assert client.get(url("detail", tenant, cluster_name="old")).status_code == 404
    live = make_cluster(tenant, "live")
    assert client.get(url("deleted_detail", tenant, deleted_id=live.pk)).status_code == 404


def test_the_deleted_list_reads_the_same_number_of_queries_whatever_its_length(
        client_for, viewer, tenant):
    def deletions(count: int, start: int) -> None:
        for index in range(start, start + count):
            cluster = gone(tenant, f"c{index}")
            make_operation(cluster, Operation.Kind.DELETE)

    client = client_for(viewer)
    deletions(2, 0)
    client.get(url("deleted_list", tenant))  # warm what the session and caches keep
    with CaptureQueriesContext(connection) as few:
        assert client.get(url("deleted_list", tenant)).status_code == 200
    deletions(6, 2)
    with CaptureQueriesContext(connection) as many:
        page = client.get(url("deleted_list", tenant))
    assert page.content.decode().count('data-testid="deleted-row"') == 8
    assert len(many.captured_queries) == len(few.captured_queries)


def test_a_template_is_judged_again_against_what_is_offered_now(client_for, member, tenant):
    make_cluster(tenant, groups=[{"name": "md0", "instance_type": "u1.large"}])
    client = client_for(member)
    client.post(url("template_save", tenant, cluster_name="demo"), {"template-name": "big"})
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    template = ClusterTemplate.objects.get()

    page = client.get(url("create", tenant) + f"?template={template.pk}")

    assert page.status_code == 200
    assert field_errors(page, "ng-0-instance_type") == [
        "The instance type u1.large is no longer offered; choose another one."]


def test_the_template_list_marks_a_version_past_its_end_of_life(client_for, viewer, tenant):
    ClusterTemplate.objects.create(tenant=tenant, name="old", spec={"version": "v1.33"})
    ClusterTemplate.objects.create(tenant=tenant, name="new", spec={"version": "v1.35"})
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.33",
                            end_of_life_on=date(2026, 1, 1))
    page = client_for(viewer).get(url("templates", tenant)).content.decode()
    assert page.count('data-testid="template-eol"') == 1
    assert "use-template" not in page  # a viewer creates nothing


def test_a_cluster_made_from_a_template_or_a_clone_says_so_on_its_timeline(client_for, member,
                                                                            tenant):
    make_cluster(tenant)
    client = client_for(member)
    client.post(url("template_save", tenant, cluster_name="demo"), {"template-name": "dev"})
    template = ClusterTemplate.objects.get()
    page = client.get(url("create", tenant) + f"?template={template.pk}").content.decode()
    assert f'name="prefill_source" value="template:{template.pk}"' in page

    assert client.post(url("create", tenant), form_data(
        name="web", prefill_source=f"template:{template.pk}")).status_code == 302
    assert client.post(url("create", tenant), form_data(
        name="copy", prefill_source="clone:demo")).status_code == 302
    assert client.post(url("create", tenant), form_data(
        name="plain", prefill_source="clone:nope")).status_code == 302
    said = dict(ClusterEvent.objects.filter(reason="cluster.origin")
                .values_list("cluster__name", "message"))
    assert said == {"web": "Created from the template “dev”.",
                    "copy": "Created as a clone of demo."}
    assert AuditEntry.objects.filter(verb="cluster.origin").count() == 2


@pytest.mark.parametrize("source", ["template:²٣", "clone:a\x00b", "template:" + "9" * 40,
                                    "clone:" + "a" * 5000, "x" * 100])
def test_a_made_up_origin_is_ignored(client_for, member, tenant, source):
    response = client_for(member).post(url("create", tenant),
                                       form_data(name="web", prefill_source=source))
    assert response.status_code == 302
    assert not ClusterEvent.objects.filter(reason="cluster.origin").exists()
