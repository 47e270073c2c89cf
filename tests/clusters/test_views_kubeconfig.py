"""Kubeconfig download: fetched from the (simulated) platform on demand, never stored, audited,
served as a named attachment by POST only, admin or super-admin by role, and only after a
recent sign-in."""

from __future__ import annotations

import time

import pytest
from django.utils import timezone

from clusters.models import Cluster
from clusters.platform_release import current_dialect
from cozystack.manifests import render_kubernetes
from portal import reauthentication
from portal.models import AuditEntry
from tests.clusters.ui import make_cluster, signed_in, url


@pytest.fixture
def ready_cluster(platform, gateway, tenant):
    cluster = make_cluster(tenant)
    gateway.create_cluster(render_kubernetes(cluster.to_spec(), current_dialect()))
    platform.advance(60)
    assert gateway.kubeconfig_exists(tenant.namespace, "demo")
    return cluster


def download(client, tenant, kind="admin", **extra):
    return client.post(url("kubeconfig", tenant, cluster_name="demo"), {"kind": kind}, **extra)


def test_a_member_downloads_the_admin_kubeconfig_as_a_named_file(member, tenant, gateway,
                                                                 ready_cluster):
    response = download(signed_in(member), tenant)

    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="acme-demo-kubeconfig.yaml"'
    assert response.content == gateway.read_kubeconfig("tenant-acme", "demo", "admin.conf")
    assert b"apiVersion: v1" in response.content and b"kind: Config" in response.content
    assert "no-store" in response["Cache-Control"]
    assert response["Pragma"] == "no-cache"
    entry = AuditEntry.objects.get(verb="cluster.kubeconfig.admin")
    assert entry.actor == member and entry.tenant == tenant and entry.object_repr == "acme/demo"


def test_the_portal_keeps_no_copy_of_the_kubeconfig(member, tenant, gateway, ready_cluster):
    from django.db import connection

    content = download(signed_in(member), tenant).content.decode()
    token_line = next(line for line in content.splitlines() if "token" in line or "data" in line)
    secret = token_line.split(":", 1)[1].strip()[:40]
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM portal_auditentry WHERE changes::text LIKE %s",
                       [f"%{secret}%"])
        assert cursor.fetchone()[0] == 0


def test_a_member_cannot_have_the_super_admin_kubeconfig(member, tenant, ready_cluster):
    response = download(signed_in(member), tenant, kind="super-admin")
    assert response.status_code == 403
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


@pytest.mark.parametrize("persona", ["owner", "tenant_admin"])
def test_owners_and_admins_can_have_the_break_glass_super_admin_kubeconfig(
        persona, request, tenant, gateway, ready_cluster):
    response = download(signed_in(request.getfixturevalue(persona)), tenant, kind="super-admin")

    assert response.status_code == 200
    assert response["Content-Disposition"] == (
        'attachment; filename="acme-demo-super-admin-kubeconfig.yaml"')
    assert response.content == gateway.read_kubeconfig("tenant-acme", "demo",
                                                       "super-admin.conf")
    assert AuditEntry.objects.filter(verb="cluster.kubeconfig.super-admin").exists()


def test_a_viewer_cannot_download_any_kubeconfig(viewer, tenant, ready_cluster):
    assert download(signed_in(viewer), tenant).status_code == 403


def test_an_outsider_gets_not_found(outsider, tenant, ready_cluster):
    assert download(signed_in(outsider), tenant).status_code == 404


def test_a_deleted_cluster_has_no_kubeconfig_even_while_the_platform_still_has_it(
        member, tenant, gateway, ready_cluster):
    Cluster.objects.filter(pk=ready_cluster.pk).update(phase=Cluster.Phase.DELETED,
                                                       deleted_at=timezone.now())
    assert gateway.kubeconfig_exists(tenant.namespace, "demo")

    assert download(signed_in(member), tenant).status_code == 404
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_the_kubeconfig_is_never_served_by_get(member, tenant, ready_cluster):
    response = signed_in(member).get(url("kubeconfig", tenant, cluster_name="demo"))
    assert response.status_code == 405


def test_a_sign_in_older_than_15_minutes_asks_for_the_password_first(member, tenant,
                                                                     ready_cluster, settings):
    from tests.factories import PASSWORD

    client = signed_in(member)
    session = client.session
    signed_in_at = session[reauthentication.SESSION_KEY]
    signed_in_at["at"] = time.time() - 16 * 60
    session[reauthentication.SESSION_KEY] = signed_in_at
    session.save()

    asked = download(client, tenant)
    assert asked.status_code == 302
    assert asked["Location"].startswith("/accounts/reauthenticate/")
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()

    answered = client.post(asked["Location"], {"password": PASSWORD})
    # allauth replays the suspended POST: the file comes back straight away.
    assert answered.status_code == 200
    assert answered["Content-Disposition"] == 'attachment; filename="acme-demo-kubeconfig.yaml"'


def test_before_the_platform_issues_it_the_page_says_so(member, tenant, platform):
    make_cluster(tenant, kubeconfig_ready=False)
    response = download(signed_in(member), tenant, follow=True)

    assert response.redirect_chain[-1][0] == url("detail", tenant, cluster_name="demo")
    assert "has not issued the kubeconfig yet" in response.content.decode()
    assert not AuditEntry.objects.filter(verb__startswith="cluster.kubeconfig").exists()


def test_the_page_shows_a_command_to_use_the_downloaded_file(client_for, member, tenant,
                                                            ready_cluster):
    page = client_for(member).get(url("detail", tenant, cluster_name="demo")).content.decode()
    assert 'value="kubectl --kubeconfig ~/Downloads/acme-demo-kubeconfig.yaml get nodes"' in page
