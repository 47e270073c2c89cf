"""Clusters over the API: the same actions, rules and permissions as the browser."""

from __future__ import annotations

import pytest

from clusters.models import Cluster, Operation
from portal.models import AuditEntry
from tests.api.factories import make_cluster, make_operation

pytestmark = pytest.mark.django_db

BASE = "/api/v1/tenants/acme/clusters/"


def spec(name: str = "web", **changes) -> dict:
    body = {
        "name": name, "version": "v1.34",
        "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                         "max_replicas": 3, "roles": ["ingress-nginx"]}],
        "addons": {"cert_manager": {"enabled": True}},
    }
    body.update(changes)
    return body


def errors_by_field(response) -> dict:
    return {e["field"]: e for e in response.json()["errors"]}


def test_create_answers_201_with_the_cluster_and_the_operation_to_poll(owner, api, tenant):
    response = api(owner).post(BASE, spec(), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert response["Location"] == body["url"] and body["url"].endswith(f"{BASE}web/")
    assert body["name"] == "web" and body["version"] == "v1.34" and body["phase"] == "creating"
    assert body["node_groups"][0]["name"] == "md0"
    assert body["node_groups"][0]["roles"] == ["ingress-nginx"]
    assert body["addons"]["cert_manager"]["enabled"] is True
    assert body["addons"]["ingress_nginx"]["enabled"] is False
    operation = body["current_operation"]
    assert operation["kind"] == "create" and operation["state"] == "queued"
    polled = api(owner).get(operation["url"]).json()
    assert polled["id"] == operation["id"] and polled["cluster"] == "web"
    assert [s["key"] for s in polled["steps"]][:2] == ["validate", "submit"]
    assert Cluster.objects.get(name="web").created_by == owner
    assert AuditEntry.objects.filter(verb="cluster.create", via="api").exists()


def test_a_member_may_create_a_viewer_and_billing_may_not(member, viewer, billing_user, api,
                                                          tenant):
    assert api(member).post(BASE, spec(), format="json").status_code == 201
    for user in (viewer, billing_user):
        response = api(user).post(BASE, spec("other"), format="json")
        assert response.status_code == 403, response.content
    assert Cluster.objects.count() == 1


def test_malformed_input_is_a_400_with_a_pointer_per_field(owner, api, tenant):
    body = spec(node_groups=[{"name": "md0", "instance_type": "s1.large",
                              "min_replicas": "many", "max_replicas": 3}])
    body["nodeGroups"] = []
    response = api(owner).post(BASE, body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
    errors = errors_by_field(response)
    assert errors["nodeGroups"]["code"] == "unknown_field"
    assert errors["nodeGroups"]["pointer"] == "#/nodeGroups"
    assert errors["node_groups[0].min_replicas"]["pointer"] == "#/node_groups/0/min_replicas"


def test_not_json_is_a_400(owner, api, tenant):
    response = api(owner).post(BASE, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "invalid_request"


def test_other_media_types_are_a_415(owner, api, tenant):
    response = api(owner).post(BASE, "name=x", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 415


def test_rule_violations_are_a_422_pointing_at_the_fields(owner, api, tenant):
    body = spec(node_groups=[{"name": "md0", "instance_type": "m5.large", "min_replicas": 3,
                              "max_replicas": 1}],
                addons={"ingress_nginx": {"enabled": True,
                                          "values_override": {"ingressNginx": {"x": 1}}}})
    response = api(owner).post(BASE, body, format="json")
    assert response.status_code == 422, response.content
    problem = response.json()
    assert problem["type"] == "urn:kube-portal:problem:validation-failed"
    errors = errors_by_field(response)
    assert errors["node_groups[0].instance_type"]["pointer"] == "#/node_groups/0/instance_type"
    assert any(f.startswith("node_groups[0].m") for f in errors)
    assert "addons.ingress_nginx.values_override" in errors
    assert not Cluster.objects.exists()


def test_a_quota_refusal_is_a_422_of_its_own_type(owner, api, tenant):
    tenant.quota_clusters = 0
    tenant.save()
    response = api(owner).post(BASE, spec(), format="json")
    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("quota-exceeded")
    assert problem["errors"][0]["field"] == "quota" and problem["errors"][0]["pointer"] is None


def test_a_taken_name_is_a_409(owner, api, tenant):
    make_cluster(tenant, "web")
    response = api(owner).post(BASE, spec(), format="json")
    assert response.status_code == 409
    assert response.json()["code"] == "already_exists"


def test_list_filters_and_shapes(owner, api, tenant):
    make_cluster(tenant, "alpha")
    make_cluster(tenant, "beta", phase=Cluster.Phase.FAILED, version="v1.33")
    client = api(owner)
    names = [c["name"] for c in client.get(BASE).json()["results"]]
    assert names == ["alpha", "beta"]
    assert [c["name"] for c in client.get(BASE, {"phase": "failed"}).json()["results"]] == ["beta"]
    assert [c["name"] for c in client.get(BASE, {"version": "v1.34"}).json()["results"]] == [
        "alpha"]
    assert [c["name"] for c in client.get(BASE, {"search": "ph"}).json()["results"]] == ["alpha"]
    bad = client.get(BASE, {"phase": "sleeping"})
    assert bad.status_code == 400 and bad.json()["errors"][0]["pointer"] is None


def test_list_cost_does_not_grow_with_the_number_of_clusters(owner, api, tenant,
                                                             django_assert_max_num_queries):
    client = api(owner)
    for index in range(30):
        make_cluster(tenant, f"c{index:02d}", groups=2)
    with django_assert_max_num_queries(8):
        response = client.get(BASE, {"page_size": 30})
    assert len(response.json()["results"]) == 30


def test_another_tenants_cluster_is_not_found(owner, outsider, api, cluster, other_tenant):
    make_cluster(other_tenant, "secret")
    assert api(owner).get("/api/v1/tenants/globex/clusters/secret/").status_code == 404
    assert api(outsider).get(f"{BASE}prod-eu/").status_code == 404
    assert api(owner).get(f"{BASE}missing/").status_code == 404


def test_patch_of_addons_merges_them_and_answers_202_with_the_operation(owner, api, cluster):
    response = api(owner).patch(f"{BASE}prod-eu/", {"addons": {"ingress_nginx": {
        "enabled": True, "hosts": ["app.example.com"]}}}, format="json")
    assert response.status_code == 202, response.content
    operation = response.json()
    assert response["Location"] == operation["url"]
    assert operation["kind"] == "addons" and operation["state"] == "queued"
    cluster.refresh_from_db()
    assert cluster.addons["ingressNginx"]["hosts"] == ["app.example.com"]


def test_a_second_change_while_one_is_in_flight_is_a_409_busy(owner, api, cluster):
    client = api(owner)
    first = client.patch(f"{BASE}prod-eu/", {"addons": {"velero": {"enabled": True}}},
                         format="json")
    assert first.status_code == 202
    second = client.patch(f"{BASE}prod-eu/", {"addons": {"fluxcd": {"enabled": True}}},
                          format="json")
    assert second.status_code == 409 and second.json()["code"] == "busy"


def test_nothing_to_change_is_a_409_no_change(owner, api, cluster):
    response = api(owner).patch(f"{BASE}prod-eu/", {"version": "v1.34"}, format="json")
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "no_change"


def test_asking_for_the_version_the_cluster_runs_is_a_409_no_change_in_words(owner, api,
                                                                             cluster):
    client = api(owner)
    for response in (client.patch(f"{BASE}prod-eu/", {"version": "v1.34"}, format="json"),
                     client.post(f"{BASE}prod-eu/upgrade/", {"version": "v1.34"}, format="json")):
        assert response.status_code == 409, response.content
        assert response.json()["code"] == "no_change"
        assert response.json()["errors"] == [{"field": "version", "pointer": "#/version",
                                              "code": "no_change",
                                              "detail": "The cluster already runs v1.34."}]


def test_put_replaces_the_configuration(owner, api, cluster):
    body = {"version": "v1.34", "node_groups": [
        {"name": "md0", "instance_type": "s1.xlarge", "min_replicas": 1, "max_replicas": 3,
         "roles": ["ingress-nginx"]}]}
    response = api(owner).put(f"{BASE}prod-eu/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "update"
    assert cluster.node_groups.get(removed_at__isnull=True).instance_type == "s1.xlarge"


def test_upgrade_goes_to_the_next_minor(owner, api, cluster):
    response = api(owner).post(f"{BASE}prod-eu/upgrade/", {}, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "upgrade" and response.json()["target_version"] == "v1.35"


def test_an_upgrade_that_skips_a_minor_is_a_422(owner, api, tenant):
    make_cluster(tenant, "old", version="v1.32")
    response = api(owner).post(f"{BASE}old/upgrade/", {"version": "v1.34"}, format="json")
    assert response.status_code == 422
    assert errors_by_field(response)["version"]["pointer"] == "#/version"


def test_node_groups_can_be_added_scaled_changed_and_removed(owner, api, cluster):
    client = api(owner)
    groups = f"{BASE}prod-eu/node-groups/"
    added = client.post(groups, {"name": "batch", "instance_type": "u1.large",
                                 "min_replicas": 0, "max_replicas": 5}, format="json")
    assert added.status_code == 202, added.content
    assert added.json()["kind"] == "add_node_group" and added.json()["node_group"] == "batch"
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    listed = client.get(groups).json()["results"]
    assert [g["name"] for g in listed] == ["md0", "batch"]

    scaled = client.patch(f"{groups}batch/", {"max_replicas": 8}, format="json")
    assert scaled.status_code == 202 and scaled.json()["kind"] == "scale"
    assert client.get(f"{groups}batch/").json()["max_replicas"] == 8
    Operation.objects.update(state=Operation.State.SUCCEEDED)

    changed = client.patch(f"{groups}batch/", {"instance_type": "u1.xlarge"}, format="json")
    assert changed.status_code == 202 and changed.json()["kind"] == "update"
    Operation.objects.update(state=Operation.State.SUCCEEDED)

    removed = client.delete(f"{groups}batch/")
    assert removed.status_code == 202 and removed.json()["kind"] == "remove_node_group"
    assert client.get(f"{groups}batch/").status_code == 404


def test_node_group_errors_point_into_the_group_body(owner, api, cluster):
    response = api(owner).patch(f"{BASE}prod-eu/node-groups/md0/",
                                {"min_replicas": 5, "max_replicas": 2}, format="json")
    assert response.status_code == 422, response.content
    fields = errors_by_field(response)
    assert any(e["pointer"] in ("#/min_replicas", "#/max_replicas") for e in fields.values())


def test_a_node_group_cannot_be_renamed_or_duplicated(owner, api, cluster):
    client = api(owner)
    renamed = client.patch(f"{BASE}prod-eu/node-groups/md0/", {"name": "md9"}, format="json")
    assert renamed.status_code == 422 and errors_by_field(renamed)["name"]["code"] == "immutable"
    duplicate = client.post(f"{BASE}prod-eu/node-groups/", {
        "name": "md0", "instance_type": "u1.large", "min_replicas": 0, "max_replicas": 1},
        format="json")
    assert duplicate.status_code == 409


def test_the_last_node_group_cannot_be_removed(owner, api, cluster):
    response = api(owner).delete(f"{BASE}prod-eu/node-groups/md0/")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "node_group"


def test_gpu_groups_are_described_by_model_and_count(owner, api, tenant):
    make_cluster(tenant, addons={"gpuOperator": {"enabled": True}})
    response = api(owner).post(f"{BASE}prod-eu/node-groups/", {
        "name": "gpu", "instance_type": "u1.2xlarge", "min_replicas": 1, "max_replicas": 2,
        "gpu_model": "nvidia.com/AD102GL_L40S", "gpus_per_node": 2}, format="json")
    assert response.status_code == 202, response.content
    group = api(owner).get(f"{BASE}prod-eu/node-groups/gpu/").json()
    assert group["gpu_model"] == "nvidia.com/AD102GL_L40S" and group["gpus_per_node"] == 2
    Operation.objects.update(state=Operation.State.SUCCEEDED)
    bad = api(owner).patch(f"{BASE}prod-eu/node-groups/md0/", {"gpus_per_node": 1},
                           format="json")
    assert bad.status_code == 422 and "gpu_model" in errors_by_field(bad)


def test_delete_needs_the_delete_permission(owner, member, api, cluster):
    assert api(member).delete(f"{BASE}prod-eu/").status_code == 403
    response = api(owner).delete(f"{BASE}prod-eu/")
    assert response.status_code == 202 and response.json()["kind"] == "delete"
    assert api(owner).get(f"{BASE}prod-eu/").json()["phase"] == "deleting"


def test_operations_list_retry_and_cancel(owner, api, cluster):
    client = api(owner)
    failed = make_operation(cluster, kind=Operation.Kind.SCALE, state=Operation.State.FAILED,
                            error_class=Operation.ErrorClass.INVALID_SPEC,
                            error_message="Specified instancetype not exists")
    failed.params = {"after": None}
    failed.save()
    detail = client.get(f"/api/v1/tenants/acme/operations/{failed.pk}/").json()
    assert detail["error"]["code"] == "invalid_spec" and detail["can_retry"] is True
    listed = client.get("/api/v1/tenants/acme/operations/", {"state": "failed"}).json()
    assert [o["id"] for o in listed["results"]] == [failed.pk]
    per_cluster = client.get(f"{BASE}prod-eu/operations/").json()["results"]
    assert {o["id"] for o in per_cluster} >= {failed.pk}

    queued = client.patch(f"{BASE}prod-eu/", {"addons": {"velero": {"enabled": True}}},
                          format="json").json()
    cancelled = client.post(f"/api/v1/tenants/acme/operations/{queued['id']}/cancel/")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["state"] == "cancelled"
    again = client.post(f"/api/v1/tenants/acme/operations/{queued['id']}/cancel/")
    assert again.status_code == 409 and again.json()["code"] == "not_cancellable"


def test_events_are_a_paginated_timeline(owner, api, cluster):
    from clusters.models import ClusterEvent

    for index in range(5):
        ClusterEvent.objects.create(tenant=cluster.tenant, cluster=cluster, source="platform",
                                    reason="Ready", message=f"event {index}")
    page = api(owner).get(f"{BASE}prod-eu/events/", {"page_size": 4}).json()
    assert len(page["results"]) == 4 and page["next"]
    rest = api(owner).get(page["next"]).json()
    assert len(rest["results"]) == 2 and rest["next"] is None and rest["previous"]


def test_the_platform_manifest_is_readable(owner, viewer, api, cluster):
    manifest = api(viewer).get(f"{BASE}prod-eu/manifest/").json()
    assert manifest["kind"] == "Kubernetes"
    assert manifest["apiVersion"] == "apps.cozystack.io/v1alpha1"
    assert manifest["metadata"]["namespace"] == "tenant-acme"
    assert manifest["spec"]["nodeGroups"]["md0"]["instanceType"] == "s1.large"


def test_a_suspended_tenant_can_be_read_but_not_changed(owner, api, cluster):
    from django.utils import timezone

    cluster.tenant.suspended_at = timezone.now()
    cluster.tenant.suspension_reason = "unpaid invoice"
    cluster.tenant.save()
    client = api(owner)
    assert client.get(f"{BASE}prod-eu/").status_code == 200
    response = client.delete(f"{BASE}prod-eu/")
    assert response.status_code == 403 and "unpaid invoice" in response.json()["detail"]


def test_unknown_api_paths_are_a_problem_404(owner, api):
    response = api(owner).get("/api/v1/nothing/here/")
    assert response.status_code == 404
    assert response["Content-Type"] == "application/problem+json"


def test_addon_states_read_like_the_platform_applies_them(owner, api, tenant):
    make_cluster(tenant, addons={"monitoringAgents": {"enabled": True},
                                 "ingressNginx": {"enabled": True, "expose_method": "LoadBalancer",
                                                  "hosts": []}})
    addons = api(owner).get(f"{BASE}prod-eu/").json()["addons"]
    assert addons["monitoring_agents"]["enabled"] is True
    assert addons["vertical_pod_autoscaler"]["enabled"] is True  # installed with monitoring
    assert addons["cilium"]["enabled"] is True and addons["velero"]["enabled"] is False
    assert addons["ingress_nginx"]["expose_method"] == "LoadBalancer"
    assert "values_override" not in addons["gateway_api"]


def test_a_body_over_the_upload_limit_is_a_400_not_a_500(owner, api, tenant, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = spec(addons={"cert_manager": {"enabled": True,
                                         "values_override": {"cert-manager": {"x": "y" * 2000}}}})
    response = api(owner).post(BASE, body, format="json")
    assert response.status_code == 400
    assert response["Content-Type"] == "application/problem+json"
