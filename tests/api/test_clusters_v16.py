"""What Cozystack v1.6 gives tenants, over the API: the node's disk under its new name (the old
one still read and written), a storage class and auto-repair per group, auto-repair, access
through single sign-on and its kubeconfig, dedicated-vCPU and hugepage instance types, the v1.6
control-plane sizes."""

from __future__ import annotations

import pytest

from clusters.models import Cluster
from portal.permissions import Role
from tests.api.factories import make_cluster, make_operation
from tests.clusters.conftest import gateway, platform
from tests.factories import MembershipFactory

__all__ = ["gateway", "platform"]  # the simulated platform, wired as the portal's

pytestmark = pytest.mark.django_db
V16 = pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)

BASE = "/api/v1/tenants/acme/clusters/"


def errors_by_field(response) -> dict:
    return {e["field"]: e for e in response.json()["errors"]}


def spec(name: str = "web", **group) -> dict:
    return {"name": name, "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                             "max_replicas": 3, "roles": ["ingress-nginx"], **group}]}


def test_a_cluster_shows_its_v16_settings(owner, api, tenant):
    cluster = make_cluster(tenant, auto_repair={"enabled": True, "max_unhealthy": "1",
                                                "node_startup_timeout": "15m"},
                           oidc_users=[{"email": owner.email, "role": "admin"}])
    cluster.node_groups.update(storage_class="replicated-async", max_unhealthy="2")
    body = api(owner).get(f"{BASE}prod-eu/").json()
    assert body["auto_repair"] == {"enabled": True, "max_unhealthy": "1",
                                   "node_startup_timeout": "15m"}
    assert body["oidc_users"] == [{"email": owner.email, "role": "admin"}]
    group = body["node_groups"][0]
    assert group["disk_gib"] == group["ephemeral_storage_gib"] == 50
    assert (group["storage_class"], group["max_unhealthy"], group["node_startup_timeout"]) == (
        "replicated-async", "2", "")
    plain = make_cluster(tenant, "plain")
    assert api(owner).get(f"{BASE}plain/").json()["auto_repair"] is None
    assert plain.oidc_users == []


def test_the_disk_is_disk_gib_and_its_former_name_still_works(owner, api, tenant):
    client = api(owner)
    assert client.post(BASE, spec("new", disk_gib=40), format="json").status_code == 201
    assert client.post(BASE, spec("old", ephemeral_storage_gib=60), format="json"
                       ).status_code == 201
    assert {g.cluster.name: g.disk_gib for g in
            Cluster.objects.get(name="new").node_groups.all()
            | Cluster.objects.get(name="old").node_groups.all()} == {"new": 40, "old": 60}


def test_disk_errors_name_the_field_the_client_sent(owner, api, tenant):
    client = api(owner)
    new = client.post(BASE, spec(disk_gib=5), format="json")
    assert new.status_code == 400 and "node_groups[0].disk_gib" in errors_by_field(new)
    old = client.post(BASE, spec(ephemeral_storage_gib=5), format="json")
    assert old.status_code == 400
    assert "node_groups[0].ephemeral_storage_gib" in errors_by_field(old)
    both = client.post(BASE, spec(disk_gib=40, ephemeral_storage_gib=60), format="json")
    assert both.status_code == 422
    assert errors_by_field(both)["node_groups[0].disk_gib"]["code"] == "conflicting"


def test_only_owners_and_admins_change_who_has_access(member, api, tenant):
    cluster = make_cluster(tenant)
    make_operation(cluster)
    response = api(member).patch(f"{BASE}prod-eu/", {"oidc_users": [
        {"email": member.email, "role": "admin"}]}, format="json")
    assert response.status_code == 403
    assert "Only owners and admins" in response.json()["detail"]


@pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)
def test_v16_settings_on_a_v13_platform_are_refused_in_words(owner, api, tenant, platform):
    response = api(owner).post(BASE, {**spec(storage_class="replicated"),
                                      "auto_repair": {"max_unhealthy": "1"},
                                      "oidc_users": [{"email": owner.email, "role": "view"}]},
                               format="json")
    assert response.status_code == 422
    errors = errors_by_field(response)
    assert {"auto_repair", "node_groups[0].storage_class", "oidc_users"} <= set(errors)


@V16
def test_bad_auto_repair_values_and_strangers_are_refused_beside_their_fields(
        owner, api, tenant, platform):
    response = api(owner).post(BASE, {**spec(max_unhealthy="lots"),
                                      "auto_repair": {"node_startup_timeout": "5s"},
                                      "oidc_users": [{"email": "stranger@example.net",
                                                      "role": "view"}]}, format="json")
    assert response.status_code == 422
    errors = errors_by_field(response)
    assert "at least 30 seconds" in errors["auto_repair.node_startup_timeout"]["detail"]
    assert errors["node_groups[0].max_unhealthy"]["pointer"] == \
        "#/node_groups/0/max_unhealthy"
    assert errors["oidc_users[0].email"]["code"] == "not_a_member"
    assert not Cluster.objects.exists()


@V16
def test_a_viewer_of_the_tenant_may_be_given_view_access_only(owner, api, tenant, platform):
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    response = api(owner).post(BASE, {**spec(), "oidc_users": [
        {"email": viewer.email.upper(), "role": "admin"}]}, format="json")
    assert errors_by_field(response)["oidc_users[0].role"]["code"] == "role_not_allowed"


@V16
def test_the_catalogue_lists_the_v16_control_plane_sizes_by_family(owner, api, platform):
    items = api(owner).get("/api/v1/catalog/control-plane-presets/?page_size=100").json()["results"]
    by_name = {i["name"]: i for i in items}
    assert by_name["c1.medium"] == {"name": "c1.medium", "family": "c1", "cpu": "2",
                                    "memory": "2Gi"}
    assert by_name["u1.medium"]["memory"] == "8Gi"  # not the u1.medium node's 4 GiB
    assert "large" not in by_name


def test_instance_types_filter_on_dedicated_vcpu_and_hugepages(owner, api):
    client = api(owner)
    everything = client.get("/api/v1/catalog/instance-types/?page_size=100").json()["results"]
    dedicated = client.get("/api/v1/catalog/instance-types/?page_size=100&dedicated_cpu=true"
                           ).json()["results"]
    shared = client.get("/api/v1/catalog/instance-types/?page_size=100&dedicated_cpu=false"
                        ).json()["results"]
    assert all(i["dedicated_cpu"] for i in dedicated)
    assert not any(i["dedicated_cpu"] for i in shared)
    assert len(dedicated) + len(shared) == len(everything) > 0
    hugepages = client.get("/api/v1/catalog/instance-types/?page_size=100&hugepages=true"
                           ).json()["results"]
    assert all(i["hugepages"] in ("2Mi", "1Gi") for i in hugepages)
    assert client.get("/api/v1/catalog/instance-types/?dedicated_cpu=maybe").status_code == 400


# --- the single sign-on kubeconfig ---------------------------------------------------------------


def v16_manifest(users: list[dict[str, str]]) -> dict:
    return {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
            "metadata": {"name": "prod-eu", "namespace": "tenant-acme",
                         "labels": {"app.kubernetes.io/managed-by": "kube-portal"}},
            "spec": {"version": "v1.34",
                     "nodeGroups": {"md0": {"minReplicas": 1, "maxReplicas": 3,
                                            "instanceType": "u1.medium", "diskSize": "20Gi",
                                            "roles": ["ingress-nginx"]}},
                     "oidc": {"mode": "System", "users": users}}}


@V16
def test_the_sso_kubeconfig_is_being_prepared_then_served_to_a_read_token(
        viewer, api, tenant, platform, gateway):
    users = [{"email": viewer.email, "role": "view"}]
    make_cluster(tenant, oidc_users=users)
    gateway.create_cluster(v16_manifest(users))
    client = api(viewer, scope="read")
    url = f"{BASE}prod-eu/sso-kubeconfig/"
    platform.advance(0.5)
    preparing = client.get(url)
    assert preparing.status_code == 409
    assert preparing.json()["code"] == "sso_kubeconfig_preparing"
    assert preparing["Retry-After"] == "30"
    platform.advance(5)
    ready = client.get(url, HTTP_ACCEPT="application/yaml")
    assert ready.status_code == 200, ready.content
    assert b"oidc-login" in ready.content


def test_a_cluster_granting_nobody_access_has_no_sso_kubeconfig(owner, api, tenant):
    make_cluster(tenant)
    response = api(owner).get(f"{BASE}prod-eu/sso-kubeconfig/")
    assert response.status_code == 409 and response.json()["code"] == "sso_not_enabled"


@V16
def test_a_put_that_leaves_access_out_takes_it_away_and_needs_an_owner(
        owner, member, api, tenant, platform):
    cluster = make_cluster(tenant, oidc_users=[{"email": owner.email, "role": "admin"}])
    make_operation(cluster)
    body = {"version": "v1.34", "node_groups": [
        {"name": "md0", "instance_type": "s1.large", "min_replicas": 1, "max_replicas": 3,
         "disk_gib": 50, "roles": ["ingress-nginx"]}]}
    assert api(member).put(f"{BASE}prod-eu/", body, format="json").status_code == 403
    response = api(owner).put(f"{BASE}prod-eu/", body, format="json")
    assert response.status_code == 202, response.content
    assert response.json()["kind"] == "update"
    cluster.refresh_from_db()
    assert cluster.oidc_users == []


def test_the_document_names_the_access_roles_apart_from_the_tenant_roles():
    from django.test import Client

    document = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    schemas = document["components"]["schemas"]
    assert schemas["RoleEnum"]["enum"] == ["owner", "admin", "member", "viewer", "billing"]
    assert schemas["OidcUserRoleEnum"]["enum"] == ["admin", "view"]
    assert "TenantRoleEnum" not in schemas
