"""The pages against a Cozystack 1.6.2 platform offer what it gives tenants: the node's disk,
a storage class and auto-repair per group, auto-repair, the v1.6 control-plane sizes, access
through single sign-on chosen from the members; a 1.3.6 platform offers none of them."""

from __future__ import annotations

import re

import pytest

from portal.permissions import Role
from tests.clusters.ui import make_cluster, text_of, url
from tests.factories import MembershipFactory

pytestmark = pytest.mark.django_db
V16 = pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)
V13 = pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)


def page(client_for, user, tenant, name="create", **kwargs) -> str:
    response = client_for(user).get(url(name, tenant, **kwargs))
    assert response.status_code == 200
    return response.content.decode()


@V16
def test_the_create_page_offers_what_v16_gives_tenants(client_for, owner, tenant, platform):
    html = page(client_for, owner, tenant)
    assert 'name="ng-0-disk_gib" value="20"' in html
    assert "persistent disk: it holds the operating system" in html
    assert 'data-testid="auto-repair"' in html
    repair = html[html.index('data-testid="auto-repair"'):html.index('data-testid="access"')]
    assert "50% never repairs a one-node group" in repair
    advanced = html[html.index('data-testid="group-advanced"'):]
    assert 'name="ng-0-storage_class"' in advanced and 'name="ng-0-max_unhealthy"' in advanced
    # Control-plane sizes by family, with CPU and memory, the v1.6 default chosen.
    assert '<optgroup label="Compute (1 GiB per CPU)">' in html
    assert '<option value="c1.medium" selected>c1.medium · 2 CPU · 2Gi RAM</option>' in html
    assert "preset u1.medium is 2 CPU and 8 GiB" in html


@V16
def test_owners_choose_access_from_the_member_list_with_the_roles_each_may_have(
        client_for, owner, tenant, platform):
    viewer = MembershipFactory(tenant=tenant, role=Role.VIEWER).user
    accountant = MembershipFactory(tenant=tenant, role=Role.BILLING).user
    html = page(client_for, owner, tenant)
    access = html[html.index('data-testid="access"'):html.index('aria-labelledby="sec-addons"')]
    assert f'data-member="{owner.email}"' in access
    viewer_row = access[access.index(f'data-member="{viewer.email}"'):]
    viewer_select = viewer_row[:viewer_row.index("</select>")]
    assert 'value="view"' in viewer_select and 'value="admin"' not in viewer_select
    assert accountant.email not in access


@V16
def test_members_who_may_not_manage_members_choose_no_access(client_for, member, tenant,
                                                             platform):
    assert 'data-testid="access"' not in page(client_for, member, tenant)


@V16
def test_a_bad_auto_repair_value_is_shown_beside_its_field_as_you_type(
        client_for, owner, tenant, platform):
    data = {"name": "demo", "groups": ["0"], "ng-0-name": "md0", "auto_repair": "on",
            "repair_max_unhealthy": "lots", "repair_node_startup_timeout": "5s",
            "ng-0-max_unhealthy": "150%"}
    response = client_for(owner).post(url("create_check", tenant), data,
                                      headers={"HX-Request": "true"})
    html = response.content.decode()
    assert "“lots”" in text_of(html, "errors-repair_max_unhealthy") or \
        "Enter a number of nodes" in text_of(html, "errors-repair_max_unhealthy")
    assert text_of(html, "errors-repair_node_startup_timeout")
    assert "100%" in text_of(html, "errors-ng-0-max_unhealthy")


@V16
def test_the_detail_page_offers_auto_repair_access_and_the_sso_kubeconfig(
        client_for, owner, tenant, platform):
    make_cluster(tenant)
    html = page(client_for, owner, tenant, "detail", cluster_name="demo")
    assert 'id="act-repair"' in html and 'id="act-access"' in html
    assert 'data-testid="sso-kubeconfig"' in html
    assert "Nobody has access through single sign-on yet" in html
    assert "cannot be rotated: the platform does not offer it" in html


@V16
def test_people_who_change_clusters_but_not_members_see_no_access_action(
        client_for, member, tenant, platform):
    make_cluster(tenant)
    html = page(client_for, member, tenant, "detail", cluster_name="demo")
    assert 'id="act-repair"' in html and 'id="act-access"' not in html


@V16
def test_the_sso_section_explains_the_oidc_login_plugin_to_whoever_has_access(
        client_for, member, tenant, platform):
    cluster = make_cluster(tenant)
    cluster.oidc_users = [{"email": member.email, "role": "admin"}]
    cluster.save(update_fields=["oidc_users"])
    html = page(client_for, member, tenant, "detail", cluster_name="demo")
    section = html[html.index('data-testid="sso-kubeconfig"'):]
    assert "You have admin access" in section
    assert "kubectl krew install oidc-login" in section
    assert "acme-demo-sso-kubeconfig.yaml" in section


@V13
def test_a_v13_platform_offers_none_of_it(client_for, owner, tenant, platform):
    html = page(client_for, owner, tenant)
    assert 'data-testid="auto-repair"' not in html and 'data-testid="access"' not in html
    assert 'data-testid="group-advanced"' not in html
    assert 'name="ng-0-disk_gib" value="50"' in html
    # The seven sizes a v1.3 platform takes, under the portal's names.
    assert '<option value="c1.medium" selected>c1.medium · 2 CPU · 2Gi RAM</option>' in html
    assert 'value="u1.medium"' not in html[html.index('name="control_plane_preset"'):
                                           html.index("</select>",
                                                      html.index('name="control_plane_preset"'))]
    make_cluster(tenant)
    detail = page(client_for, owner, tenant, "detail", cluster_name="demo")
    assert 'id="act-repair"' not in detail and 'data-testid="sso-kubeconfig"' not in detail
    assert "cannot be rotated" in detail


@V16
def test_an_owner_gives_a_colleague_access_from_the_cluster_page(
        client_for, owner, tenant, platform):
    from clusters.models import Operation

    colleague = MembershipFactory(tenant=tenant, role=Role.MEMBER).user
    cluster = make_cluster(tenant)
    membership = colleague.memberships.get(tenant=tenant)
    client = client_for(owner)
    data = {f"access-m{membership.pk}": "admin"}
    review = client.post(url("access", tenant, cluster_name="demo"), data)
    assert review.status_code == 200
    html = review.content.decode()
    assert f"{colleague.email} (admin) added" in html
    assert not cluster.operations.exists()
    done = client.post(url("access", tenant, cluster_name="demo"),
                       {**data, "access-confirm": "True"})
    assert done.status_code == 302
    operation = cluster.operations.get()
    assert operation.kind == Operation.Kind.ACCESS
    cluster.refresh_from_db()
    assert cluster.oidc_users == [{"email": colleague.email, "role": "admin"}]


@V16
def test_a_bad_auto_repair_value_on_the_cluster_page_stays_beside_its_field(
        client_for, owner, tenant, platform):
    make_cluster(tenant)
    response = client_for(owner).post(url("auto_repair", tenant, cluster_name="demo"), {
        "repair-auto_repair": "on", "repair-repair_max_unhealthy": "half",
        "repair-repair_node_startup_timeout": "10m", "repair-md0__max_unhealthy": "x"})
    assert response.status_code == 422
    html = response.content.decode()
    assert text_of(html, "errors-repair-repair_max_unhealthy")
    assert text_of(html, "errors-repair-md0__max_unhealthy")


@V16
def test_the_add_ons_of_v16_are_offered_with_their_dependency_and_fluxcd_deprecated(
        client_for, owner, tenant, platform, settings):
    settings.PLATFORM_PROXY_PROTOCOL = False
    html = page(client_for, owner, tenant)
    assert 'data-addon="hami"' in html and 'data-addon="ouroboros"' not in html
    fluxcd = html[html.index('data-addon="fluxcd"'):]
    assert 'data-testid="addon-deprecated"' in fluxcd[:fluxcd.index('data-addon=', 20)]
    settings.PLATFORM_PROXY_PROTOCOL = True
    assert 'data-addon="ouroboros"' in page(client_for, owner, tenant)
    response = client_for(owner).post(url("create_check", tenant), {
        "name": "demo", "groups": ["0"], "ng-0-name": "md0", "addon-hami_enabled": "on"},
        headers={"HX-Request": "true"})
    assert "GPU operator" in text_of(response.content.decode(), "errors-addon-hami_enabled")


@V13
def test_a_v13_platform_offers_neither_fractional_gpus_nor_ouroboros(
        client_for, owner, tenant, platform, settings):
    settings.PLATFORM_PROXY_PROTOCOL = True
    html = page(client_for, owner, tenant)
    assert 'data-addon="hami"' not in html and 'data-addon="ouroboros"' not in html


@V16
def test_the_picker_filters_dedicated_vcpu_and_hugepage_types(client_for, owner, tenant,
                                                              platform):
    html = page(client_for, owner, tenant)
    assert 'data-filter="dedicated"' in html and 'data-filter="hugepages"' in html
    assert re.search(r'<option value="d1\.large" [^>]*data-dedicated[^>]*>d1\.large · 2 vCPU · '
                     r'8 GiB · dedicated vCPU</option>', html)
    assert re.search(r'<option value="m1\.large1gi" [^>]*data-hugepages="1Gi"', html)
    assert not re.search(r'<option value="u1\.medium" [^>]*data-dedicated', html)


@V13
def test_a_v13_picker_has_no_dedicated_or_hugepage_filter(client_for, owner, tenant, platform):
    html = page(client_for, owner, tenant)
    assert 'data-filter="dedicated"' not in html and 'value="d1.large"' not in html
