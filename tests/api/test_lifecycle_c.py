"""Expiry, cluster templates and deleted clusters over the API: the answers, the rights, other
tenants answered 404, bad input answered 4xx with the field named, the limits."""

from __future__ import annotations

from datetime import timedelta

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
    Operation,
)
from portal.models import AuditEntry
from tests.api.factories import make_cluster, make_operation
from tests.clusters.conftest import gateway, platform

__all__ = ["gateway", "platform"]

pytestmark = pytest.mark.django_db
T = "/api/v1/tenants/acme/"


def fields(response) -> set[str]:
    return {e["field"] for e in response.json().get("errors", [])}


def test_the_owner_sets_extends_reads_and_removes_an_expiry(owner, api, tenant):
    make_cluster(tenant)
    client = api(owner)
    assert client.get(f"{T}clusters/prod-eu/expiry/").json()["expires_at"] is None

    answer = client.put(f"{T}clusters/prod-eu/expiry/", {"after_hours": 48}, format="json")
    assert answer.status_code == 200, answer.json()
    row = ClusterExpiry.objects.get()
    assert abs(row.expires_at - (timezone.now() + timedelta(hours=48))) < timedelta(minutes=1)
    assert answer.json()["set_by"] == owner.email and answer.json()["expired"] is False

    extended = client.post(f"{T}clusters/prod-eu/expiry/extend/", {"hours": 24}, format="json")
    assert extended.status_code == 200
    row.refresh_from_db()
    assert abs(row.expires_at - (timezone.now() + timedelta(hours=72))) < timedelta(minutes=1)

    assert client.delete(f"{T}clusters/prod-eu/expiry/").json()["expires_at"] is None
    assert [e.verb for e in AuditEntry.objects.order_by("pk")] == [
        "cluster.expiry.set", "cluster.expiry.set", "cluster.expiry.remove"]


def test_bad_expiry_input_is_a_4xx_naming_the_field(owner, api, tenant):
    make_cluster(tenant)
    client = api(owner)
    cases = [({"after_hours": 0}, "after_hours"), ({"after_hours": 10**30}, "after_hours"),
             ({"expires_at": "tomorrow"}, "expires_at"), ({}, "expires_at"),
             ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
             ({"after_hours": 5, "expires_at": "2030-01-01T00:00:00Z"}, "expires_at"),
             ({"after_hours": "NaN"}, "after_hours")]
    for body, field in cases:
        answer = client.put(f"{T}clusters/prod-eu/expiry/", body, format="json")
        assert 400 <= answer.status_code < 500, (body, answer.status_code)
        assert field in fields(answer), (body, answer.json())
    assert client.post(f"{T}clusters/prod-eu/expiry/extend/", {"hours": -1},
                       format="json").status_code == 400
    assert not ClusterExpiry.objects.exists()


def test_a_member_may_extend_but_not_schedule_or_remove(member, api, tenant):
    cluster = make_cluster(tenant)
    client = api(member)
    assert client.put(f"{T}clusters/prod-eu/expiry/", {"after_hours": 5},
                      format="json").status_code == 403
    ClusterExpiry.objects.create(cluster=cluster, expires_at=timezone.now() + timedelta(hours=5))
    assert client.post(f"{T}clusters/prod-eu/expiry/extend/", {"hours": 5},
                       format="json").status_code == 200
    assert client.delete(f"{T}clusters/prod-eu/expiry/").status_code == 403


def test_the_tenants_maximum_is_kept_on_every_expiry(owner, member, api, tenant):
    cluster = make_cluster(tenant)
    assert api(member).put(f"{T}expiry-policy/", {"max_hours": 24},
                           format="json").status_code == 403
    assert api(owner).put(f"{T}expiry-policy/", {"max_hours": 99999},
                          format="json").status_code == 400
    assert api(owner).put(f"{T}expiry-policy/", {"max_hours": 24},
                          format="json").json() == {"max_hours": 24}
    assert api(member).get(f"{T}expiry-policy/").json() == {"max_hours": 24}
    too_far = api(owner).put(f"{T}clusters/prod-eu/expiry/", {"after_hours": 48},
                             format="json")
    assert too_far.status_code == 422 and "expires_at" in fields(too_far)
    ClusterExpiry.objects.create(cluster=cluster, expires_at=timezone.now() + timedelta(hours=20))
    beyond = api(member).post(f"{T}clusters/prod-eu/expiry/extend/", {"hours": 12},
                              format="json")
    assert beyond.status_code == 422 and "hours" in fields(beyond)
    assert ExpiryPolicy.objects.get().max_hours == 24


def test_templates_crud_with_limits(owner, member, api, tenant):
    make_cluster(tenant)
    client = api(member)
    created = client.post(f"{T}cluster-templates/",
                          {"cluster": "prod-eu", "name": "small", "description": "dev"},
                          format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["version"] == "v1.34" and body["spec"]["name"] == ""
    assert body["spec"]["host"] == "" and body["source_cluster"] == "prod-eu"
    again = client.post(f"{T}cluster-templates/", {"cluster": "prod-eu", "name": "small"},
                        format="json")
    assert again.status_code == 409 and "name" in fields(again)
    too_long = client.post(f"{T}cluster-templates/",
                           {"cluster": "prod-eu", "name": "x" * 61}, format="json")
    assert too_long.status_code == 400 and "name" in fields(too_long)
    hidden = client.post(f"{T}cluster-templates/",
                         {"cluster": "prod-eu", "name": "a\u202eb"}, format="json")
    assert 400 <= hidden.status_code < 500
    assert client.post(f"{T}cluster-templates/", {"cluster": "nope", "name": "n"},
                       format="json").status_code == 404

    url = f"{T}cluster-templates/{body['id']}/"
    assert client.get(f"{T}cluster-templates/").json()["results"][0]["name"] == "small"
    assert client.patch(url, {"name": "tiny"}, format="json").json()["name"] == "tiny"
    assert client.patch(url, {}, format="json").status_code == 400
    assert client.delete(url).status_code == 204
    assert not ClusterTemplate.objects.exists()

    ClusterTemplate.objects.bulk_create([ClusterTemplate(tenant=tenant, name=f"t{i}", spec={})
                                         for i in range(50)])
    full = client.post(f"{T}cluster-templates/", {"cluster": "prod-eu", "name": "one more"},
                       format="json")
    assert full.status_code == 422


def test_a_cluster_is_created_from_a_template_with_an_expiry(member, api, tenant, platform):
    make_cluster(tenant)
    client = api(member)
    template = client.post(f"{T}cluster-templates/", {"cluster": "prod-eu", "name": "small"},
                           format="json").json()
    created = client.post(f"{T}cluster-templates/{template['id']}/clusters/",
                          {"name": "feature-42", "after_hours": 72}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["name"] == "feature-42"
    cluster = Cluster.objects.get(name="feature-42")
    assert cluster.version == "v1.34"
    assert ClusterExpiry.objects.filter(cluster=cluster).exists()
    bad = client.post(f"{T}cluster-templates/{template['id']}/clusters/",
                      {"name": "Bad Name!"}, format="json")
    assert 400 <= bad.status_code < 500 and "name" in fields(bad)


def test_clusters_created_through_the_api_take_an_expiry(member, api, tenant, platform):
    body = {"name": "web", "version": "v1.34", "after_hours": 24,
            "node_groups": [{"name": "md0", "instance_type": "u1.medium", "min_replicas": 1,
                             "max_replicas": 2}]}
    assert api(member).post(f"{T}clusters/", body, format="json").status_code == 201
    assert ClusterExpiry.objects.filter(cluster__name="web").exists()
    ExpiryPolicy.objects.create(tenant=tenant, max_hours=12)
    refused = api(member).post(f"{T}clusters/", {**body, "name": "web2"}, format="json")
    assert refused.status_code == 422 and "expires_at" in fields(refused)
    assert not Cluster.objects.filter(name="web2").exists()


def test_deleted_clusters_are_listed_and_read_with_why(viewer, member, api, tenant):
    gone = make_cluster(tenant, "gone")
    operation = make_operation(gone, kind=Operation.Kind.DELETE)
    ClusterEvent.objects.create(tenant=tenant, cluster=gone, operation=operation,
                                source="portal", reason="operation.delete",
                                message="Deletion requested.", actor_label="a@example.com")
    Cluster.objects.filter(pk=gone.pk).update(deleted_at=timezone.now(),
                                              phase=Cluster.Phase.DELETED)
    old = make_cluster(tenant, "old")
    Cluster.objects.filter(pk=old.pk).update(deleted_at=timezone.now() - timedelta(days=91))
    make_cluster(tenant, "alive")
    client = api(viewer)

    listed = client.get(f"{T}deleted-clusters/").json()["results"]
    assert [c["name"] for c in listed] == ["gone"]
    assert listed[0]["reason"] == "person" and listed[0]["deleted_by"] == "a@example.com"
    detail = client.get(f"{T}deleted-clusters/{gone.pk}/").json()
    assert detail["last_month_cost"] == "0.00" and detail["currency"] == "CHF"
    assert detail["events"][0]["message"] == "Deletion requested."
    assert client.get(f"{T}deleted-clusters/{old.pk}/").status_code == 404
    # A deleted cluster is no cluster to the rest of the API: no kubeconfig, no change.
    assert client.get(f"{T}clusters/gone/").status_code == 404
    assert api(member).post(f"{T}clusters/gone/kubeconfig/", {"kind": "admin"},
                            format="json").status_code == 404
    assert api(member).get(f"{T}clusters/gone/sso-kubeconfig/").status_code == 404
    assert api(viewer).get(f"{T}clusters/gone/expiry/").status_code == 404


def test_other_tenants_get_not_found(outsider, api, tenant):
    cluster = make_cluster(tenant)
    template = ClusterTemplate.objects.create(tenant=tenant, name="t", spec={})
    Cluster.objects.filter(pk=cluster.pk).update(deleted_at=timezone.now())
    live = make_cluster(tenant, "live")
    client = api(outsider)
    for path in (f"{T}clusters/{live.name}/expiry/", f"{T}cluster-templates/",
                 f"{T}cluster-templates/{template.pk}/", f"{T}deleted-clusters/",
                 f"{T}deleted-clusters/{cluster.pk}/", f"{T}expiry-policy/"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"{T}cluster-templates/{template.pk}/clusters/", {"name": "x"},
                       format="json").status_code == 404
    assert client.delete(f"{T}cluster-templates/{template.pk}/").status_code == 404
    assert ClusterTemplate.objects.filter(pk=template.pk).exists()


def test_the_deleted_list_reads_the_same_number_of_queries_whatever_its_length(viewer, api,
                                                                                tenant):
    def deletions(count: int, start: int) -> None:
        for index in range(start, start + count):
            cluster = make_cluster(tenant, f"c{index}")
            make_operation(cluster, kind=Operation.Kind.DELETE)
            Cluster.objects.filter(pk=cluster.pk).update(deleted_at=timezone.now())

    client = api(viewer)
    deletions(2, 0)
    client.get(f"{T}deleted-clusters/")
    with CaptureQueriesContext(connection) as few:
        assert len(client.get(f"{T}deleted-clusters/").json()["results"]) == 2
    deletions(6, 2)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(f"{T}deleted-clusters/").json()["results"]) == 8
    assert len(many.captured_queries) == len(few.captured_queries)
