"""The single sign-on kubeconfig, against a Cozystack 1.6.2 platform: "being prepared" while
the platform holds a placeholder, then the file; no credential in it, so no recent sign-in
and no audit entry."""

from __future__ import annotations

import pytest

from portal.models import AuditEntry
from tests.clusters.ui import make_cluster, url
from tests.portal.pages import alerts

pytestmark = [pytest.mark.django_db,
              pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)]


def v16_manifest(name: str, users: list[dict[str, str]]) -> dict:
    """The object a v1.6.2 platform holds for a cluster granting ``users`` access."""
    return {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
            "metadata": {"name": name, "namespace": "tenant-acme",
                         "labels": {"app.kubernetes.io/managed-by": "kube-portal"}},
            "spec": {"version": "v1.34",
                     "nodeGroups": {"md0": {"minReplicas": 1, "maxReplicas": 3,
                                            "instanceType": "u1.medium", "diskSize": "20Gi",
                                            "roles": ["ingress-nginx"]}},
                     "oidc": {"mode": "System", "users": users}}}


@pytest.fixture
def granted(platform, gateway, tenant, viewer):
    users = [{"email": viewer.email, "role": "view"}]
    cluster = make_cluster(tenant)
    cluster.oidc_users = users
    cluster.save(update_fields=["oidc_users"])
    gateway.create_cluster(v16_manifest("demo", users))
    return cluster


def get(client_for, user, tenant):
    return client_for(user).get(url("oidc_kubeconfig", tenant, cluster_name="demo"),
                                )


def test_being_prepared_then_downloaded_by_anyone_who_sees_the_cluster(
        client_for, viewer, tenant, platform, gateway, granted):
    response = get(client_for, viewer, tenant)  # the platform has not even the placeholder
    assert alerts(response)[0].startswith("The platform is still preparing the single sign-on")

    platform.advance(0.5)  # manifests applied: the placeholder is there
    placeholder = gateway.read_oidc_kubeconfig("tenant-acme", "demo")
    assert placeholder.startswith(b"# awaiting")
    response = get(client_for, viewer, tenant)
    assert alerts(response)[0].startswith("The platform is still preparing the single sign-on")

    platform.advance(5)  # the bootstrap Job wrote the real file
    response = client_for(viewer).get(url("oidc_kubeconfig", tenant, cluster_name="demo"))
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-demo-sso-kubeconfig.yaml"'
    assert b"oidc-login" in response.content and b"kind: Config" in response.content
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_a_cluster_granting_nobody_access_has_no_sso_kubeconfig(client_for, owner, tenant,
                                                                 platform):
    make_cluster(tenant)
    response = get(client_for, owner, tenant)
    assert alerts(response)[0] == "Nobody has access to this cluster through single sign-on yet."
    assert platform.requests(path_contains="oidc-kubeconfig") == []


def test_billing_people_see_no_cluster_and_no_kubeconfig(client_for, billing_user, tenant,
                                                          granted):
    response = client_for(billing_user).get(url("oidc_kubeconfig", tenant, cluster_name="demo"))
    assert response.status_code == 403
