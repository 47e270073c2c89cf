"""The create page: defaults that make a working cluster, validation beside each field as you
type, the manifest preview, quota and cost before submitting, node-group rows in place."""

from __future__ import annotations

import re

import pytest

from clusters.models import Cluster, Operation
from portal.models import AuditEntry
from tests.clusters.ui import field_errors, offline_platform, text_of, url, visible_text

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]


def form_data(**overrides) -> dict:
    """What the create page posts when only the name is filled in (its defaults)."""
    data = {
        "name": "demo", "version": "v1.35", "control_plane_replicas": "2",
        "control_plane_preset": "large", "storage_class": "replicated", "host": "",
        "groups": ["0"], "ng-0-name": "md0", "ng-0-instance_type": "u1.medium",
        "ng-0-min_replicas": "1", "ng-0-max_replicas": "3", "ng-0-disk_gib": "50",
        "ng-0-ingress": "on", "ng-0-gpu_model": "", "ng-0-gpu_count": "1",
        "addon-ingressNginx_expose_method": "Proxied",
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def check(client, tenant, **overrides):
    return client.post(url("create_check", tenant), form_data(**overrides),
                       headers={"HX-Request": "true"})


def test_the_create_page_starts_from_a_small_working_cluster(client_for, member, tenant):
    page = client_for(member).get(url("create", tenant))

    assert page.status_code == 200
    html = page.content.decode()
    assert 'name="ng-0-name" value="md0"' in html
    assert '<option value="u1.medium" data-vcpu="1" data-mem="4" selected>' in html
    assert 'name="ng-0-min_replicas" value="1"' in html
    assert 'name="ng-0-max_replicas" value="3"' in html
    # Offline, pages show the newest release: v1.6's node disk of 20 GiB holds the OS too.
    assert 'name="ng-0-disk_gib" value="20"' in html
    assert 'name="ng-0-ingress"' in html and "checked" in html
    manifest = text_of(html, "manifest-preview")
    assert "kind: Kubernetes" in manifest and "instanceType: u1.medium" in manifest
    assert "ingress-nginx" in manifest
    assert "vCPU" in text_of(html, "quota-panel")
    assert "Create cluster" in text_of(html, "submit-area")


def test_name_and_submit_create_the_cluster_with_the_defaults(client_for, member, tenant):
    response = client_for(member).post(url("create", tenant), form_data(name="web"))

    assert response.status_code == 302
    assert response["Location"] == url("detail", tenant, cluster_name="web")
    cluster = Cluster.objects.get(tenant=tenant, name="web")
    assert cluster.version == "v1.35" and cluster.phase == Cluster.Phase.CREATING
    (group,) = cluster.live_node_groups()
    assert (group.name, group.instance_type, group.min_replicas, group.max_replicas,
            group.disk_gib, group.roles) == ("md0", "u1.medium", 1, 3, 50, ["ingress-nginx"])
    assert cluster.operations.get().kind == Operation.Kind.CREATE
    assert AuditEntry.objects.get(verb="cluster.create").actor == member


def test_a_bad_name_is_refused_beside_the_name_field_and_nothing_is_created(
        client_for, member, tenant):
    response = client_for(member).post(url("create", tenant), form_data(name="Web_1"))

    assert response.status_code == 422
    assert field_errors(response, "name") == [
        "Use only lowercase letters, digits and hyphens in the cluster name, starting with a "
        "letter and ending with a letter or digit (for example “prod-eu”)."]
    assert not Cluster.objects.exists()


def test_checking_as_you_type_flags_min_above_max_beside_the_field(client_for, member, tenant):
    response = check(client_for(member), tenant, **{"ng-0-min_replicas": "5",
                                                    "ng-0-max_replicas": "2"})

    assert response.status_code == 200
    assert field_errors(response, "ng-0-min_replicas") == [
        "The minimum number of nodes (5) cannot be more than the maximum (2)."]
    # Every other field's error container is sent too (empty), so stale errors disappear.
    assert 'id="errors-name" class="field-errors" hx-swap-oob="true"' in response.content.decode()


def test_checking_does_not_flag_a_name_nobody_has_typed_yet(client_for, member, tenant):
    client = client_for(member)
    quiet = check(client, tenant, name="", _field="ng-0-max_replicas")
    asked = check(client, tenant, name="", _field="name")

    assert field_errors(quiet, "name") == []
    assert field_errors(asked, "name") == ["Enter a name for the cluster."]


def test_the_preview_and_the_submit_button_follow_what_is_typed(client_for, member, tenant):
    response = check(client_for(member), tenant, name="shop",
                     **{"ng-0-instance_type": "s1.large", "ng-0-max_replicas": "6"})

    html = response.content.decode()
    assert "name: shop" in text_of(html, "manifest-preview")
    assert "instanceType: s1.large" in text_of(html, "manifest-preview")
    assert "maxReplicas: 6" in text_of(html, "manifest-preview")
    assert "Create “shop”: Kubernetes v1.35, 1 to 6 nodes in 1 group" in text_of(
        html, "submit-area")
    quota = text_of(html, "quota-panel")
    assert "+24" in quota  # 6 × s1.large (4 vCPU) counted at the maximum


@pytest.mark.parametrize(("overrides", "field", "message"), [
    ({"ng-0-instance_type": "m5.large"}, "ng-0-instance_type", "Instance type “m5.large”"),
    ({"ng-0-name": "a-very-long-node-group-name-that-is-way-too-long"}, "ng-0-name",
     "too long for this cluster"),
    ({"ng-0-instance_type": "s1.small", "ng-0-gpu_model": "nvidia.com/AD102GL_L40S"},
     "ng-0-instance_type", "at least 4 GiB of memory"),
    ({"version": "v1.20"}, "version", "not offered"),
    ({"host": "not a host"}, "host", "not valid"),
    ({"addon-ingressNginx_enabled": "on", "addon-ingressNginx_hosts": "bad_host"},
     "addon-ingressNginx_hosts", "not a valid name"),
    ({"addon-certManager_values": "cert-manager: [unclosed"}, "addon-certManager_values",
     "not valid YAML"),
    ({"addon-certManager_values": "certManager:\n  replicas: 2"}, "addon-certManager_values",
     "“cert-manager:”"),
], ids=["unknown-instance-type", "group-name-length", "gpu-memory", "version", "host",
        "ingress-host", "yaml-syntax", "yaml-wrong-root"])
def test_each_platform_rule_shows_beside_its_field(client_for, member, tenant, overrides, field,
                                                   message):
    response = check(client_for(member), tenant, **overrides)

    errors = field_errors(response, field)
    assert any(message in error for error in errors), (field, errors,
                                                       visible_text(response)[:2000])


def test_quota_is_checked_before_submitting_with_the_numbers(client_for, member, tenant):
    tenant.quota_vcpu = 8
    tenant.save()

    response = check(client_for(member), tenant, **{"ng-0-instance_type": "s1.large",
                                                    "ng-0-max_replicas": "4"})

    quota = text_of(response.content, "quota-panel")
    assert "vCPU quota exceeded: 0 in use + 16 requested = 16, above the limit of 8." in quota
    refused = client_for(member).post(url("create", tenant), form_data(
        **{"ng-0-instance_type": "s1.large", "ng-0-max_replicas": "4"}))
    assert refused.status_code == 422 and not Cluster.objects.exists()


def test_node_group_rows_are_added_and_removed_in_place(client_for, member, tenant):
    client = client_for(member)
    added = client.post(url("create_check", tenant), {**form_data(), "_action": "add_group"},
                        headers={"HX-Request": "true"})

    html = added.content.decode()
    assert html.lstrip().startswith('<div id="node-groups">')
    assert 'name="ng-1-name" value="md1"' in html
    assert "name: md1" in text_of(html, "manifest-preview") or "md1:" in text_of(
        html, "manifest-preview")

    two = form_data(groups=["0", "1"], **{"ng-1-name": "gpu", "ng-1-instance_type": "u1.2xlarge",
                                          "ng-1-min_replicas": "1", "ng-1-max_replicas": "2",
                                          "ng-1-disk_gib": "100", "ng-1-gpu_count": "1"})
    removed = client.post(url("create_check", tenant), {**two, "_remove": "0"},
                          headers={"HX-Request": "true"})
    html = removed.content.decode()
    assert 'name="ng-0-name"' not in html and 'name="ng-1-name" value="gpu"' in html


def test_without_javascript_adding_a_row_shows_the_form_again(client_for, member, tenant):
    response = client_for(member).post(url("create", tenant),
                                       {**form_data(), "_action": "add_group"})

    assert response.status_code == 200
    assert 'name="ng-1-name" value="md1"' in response.content.decode()
    assert not Cluster.objects.exists()


def test_a_hostile_name_renders_as_text(client_for, member, tenant):
    hostile = '<script>alert("x")</script>'
    response = client_for(member).post(url("create", tenant), form_data(name=hostile))

    html = response.content.decode()
    assert response.status_code == 422
    assert hostile not in html
    assert "&lt;script&gt;" in html


def test_a_viewer_cannot_open_or_post_the_create_page(client_for, viewer, tenant):
    client = client_for(viewer)
    assert client.get(url("create", tenant)).status_code == 403
    assert client.post(url("create", tenant), form_data()).status_code == 403
    assert client.post(url("create_check", tenant), form_data()).status_code == 403
    assert not Cluster.objects.exists()


def test_an_outsider_gets_not_found(client_for, outsider, tenant):
    client = client_for(outsider)
    assert client.get(url("create", tenant)).status_code == 404
    assert client.post(url("create_check", tenant), form_data()).status_code == 404


def test_billing_users_see_no_cluster_pages(client_for, billing_user, tenant):
    assert client_for(billing_user).get(url("create", tenant)).status_code == 403
    assert client_for(billing_user).get(url("list", tenant)).status_code == 403


def test_what_staff_stopped_offering_is_not_offered(client_for, member, tenant):
    from clusters.models import Offering

    # The v1.6 catalogue (the platform is offline: the newest release the portal knows).
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="s1.small", hidden=True)
    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.31", hidden=True)
    Offering.objects.create(kind=Offering.Kind.GPU_MODEL, name="nvidia.com/GH100_H100L_94GB",
                            hidden=True)

    html = client_for(member).get(url("create", tenant)).content.decode()

    # (Control-plane presets reuse names such as s1.small: only the instance types count.)
    types = select_options(html, "ng-0-instance_type")
    assert "s1.small" not in types and "s1.medium" in types
    assert '<option value="v1.31"' not in html and '<option value="v1.32"' in html
    assert 'value="nvidia.com/GH100_H100L_94GB"' not in html
    assert 'value="nvidia.com/AD102GL_L40S"' in html


def test_an_end_of_life_version_is_labelled_as_such_in_the_picker(client_for, member, tenant):
    import datetime

    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.VERSION, name="v1.31",
                            end_of_life_on=datetime.date(2026, 1, 31))
    html = client_for(member).get(url("create", tenant)).content.decode()
    label = re.search(r'<option value="v1.31"[^>]*>([^<]*)</option>', html).group(1)
    assert label.endswith(", end of life since 2026-01-31")
    other = re.search(r'<option value="v1.32"[^>]*>([^<]*)</option>', html).group(1)
    assert "end of life" not in other


def select_options(html: str, name: str) -> dict[str, bool]:
    """The options of the select named ``name``: value → selected."""
    select = re.search(rf'<select name="{re.escape(name)}"[^>]*>(.*?)</select>', html, re.S)
    assert select, f"no select named {name}"
    return {value: " selected" in attrs for value, attrs in re.findall(
        r'<option value="([^"]*)"([^>]*)>', select.group(1))}


def test_a_hidden_instance_type_is_not_in_the_picker_of_any_new_group(client_for, member,
                                                                      tenant):
    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    client = client_for(member)

    page = client.get(url("create", tenant)).content.decode()
    added = check(client, tenant, _action="add_group").content.decode()

    first = select_options(page, "ng-0-instance_type")
    assert "u1.large" not in first and "u1.xlarge" in first and first["u1.medium"]
    second = select_options(added, "ng-1-instance_type")
    assert "u1.large" not in second and second["u1.medium"]


def test_when_the_default_instance_type_is_hidden_the_next_offered_one_is_preselected(
        client_for, member, tenant):
    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.medium", hidden=True)

    html = client_for(member).get(url("create", tenant)).content.decode()

    options = select_options(html, "ng-0-instance_type")
    assert "u1.medium" not in options
    assert [value for value, selected in options.items() if selected] == ["u1.large"]
    assert "instanceType: u1.large" in text_of(html, "manifest-preview")


def test_a_hidden_instance_type_posted_anyway_is_refused_beside_its_field(client_for, member,
                                                                          tenant):
    from clusters.models import Offering

    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)

    response = client_for(member).post(url("create", tenant),
                                       form_data(**{"ng-0-instance_type": "u1.large"}))

    assert response.status_code == 422
    assert field_errors(response, "ng-0-instance_type") == [
        "The instance type u1.large is no longer offered; choose another one."]
    # The form shows what was posted, so the person sees which choice was refused.
    assert select_options(response.content.decode(), "ng-0-instance_type")["u1.large"]
    assert not Cluster.objects.exists()
