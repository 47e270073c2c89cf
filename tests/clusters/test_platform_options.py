"""The pickers and the rules follow what the platform offers each tenant (its Option API,
Cozystack v1.6, PLATFORM-v1.6.md rows 16 and 22), read over HTTP from the simulated platform and
cached briefly per tenant; the bundled catalogues stand in on v1.3.6, when the endpoint fails,
and when the platform cannot be reached. Staff offerings still narrow what tenants see."""

from __future__ import annotations

import re
import time

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.test import APIClient

from clusters import actions, offerings, options, watcher
from clusters.models import Cluster, Offering
from cozystack.gateway import get_gateway
from cozystack.simulator import Fault
from portal.models import Membership
from portal.tenancy import TenantContext
from tests.api.factories import make_token
from tests.clusters.conftest import NS, cluster_spec, group
from tests.clusters.ui import make_cluster, text_of, url
from tests.factories import TenantFactory

pytestmark = pytest.mark.django_db
V16 = pytest.mark.parametrize("simulated_platform", ["1.6.2"], indirect=True)
V13 = pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)

OFFERED_TYPES = ["s1.large", "u1.large", "u1.medium", "u1.2xlarge"]
FAST = {"value": "fast-rwx", "label": "Fast (NVMe, RWX)",
        "description": "Replicated NVMe volumes, readable and writable from every node."}


def restrict(platform, **sources) -> None:
    """What the platform offers the tenant acme from now on, per source."""
    for source, items in sources.items():
        platform.set_options(NS, source, items)
    options.forget(NS)


def option_reads(platform) -> list[str]:
    return [r.path for r in platform.requests("GET", "/options/")]


def create_page(client_for, user, tenant) -> str:
    response = client_for(user).get(url("create", tenant))
    assert response.status_code == 200
    return response.content.decode()


def picker(html: str, name: str = "ng-0-instance_type") -> str:
    start = html.index(f'name="{name}"')
    return html[start:html.index("</select>", start)]


def offered_values(select: str) -> list[str]:
    return [v for v in re.findall(r'<option value="([^"]*)"', select) if v]


@pytest.fixture
def api_client_for():
    def make(user) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
        return client

    return make


def ctx_for(tenant, user) -> TenantContext:
    membership = Membership.objects.get(tenant=tenant, user=user)
    return TenantContext(tenant, membership.role, membership)


# --- the pickers ---------------------------------------------------------------------------------


@V16
def test_the_instance_type_picker_offers_what_the_platform_offers_this_tenant(
        client_for, owner, tenant, outsider, other_tenant, platform):
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    select = picker(create_page(client_for, owner, tenant))
    assert sorted(offered_values(select)) == sorted(OFFERED_TYPES)
    assert 'data-dedicated' not in select  # d1.* are not offered to this tenant
    # Another tenant is offered what the platform offers it: the whole list here.
    others = offered_values(picker(create_page(client_for, outsider, other_tenant)))
    assert "d1.large" in others and len(others) > len(OFFERED_TYPES)


@V16
def test_gpus_show_how_many_the_platform_has_available(client_for, owner, tenant, platform):
    html = create_page(client_for, owner, tenant)
    gpus = picker(html, "ng-0-gpu_model")
    assert "NVIDIA L40S (48 GB) — 8 available on gpu-node-1, gpu-node-2" in gpus
    assert "— 8 available on gpu-node-3" in gpus  # the H100, from the platform's own list
    restrict(platform, gpu=[{"value": "nvidia.com/GH100_H200_SXM_141GB",
                             "description": "not currently available on any node"}])
    gpus = picker(create_page(client_for, owner, tenant), "ng-0-gpu_model")
    assert offered_values(gpus) == ["nvidia.com/GH100_H200_SXM_141GB"]
    assert "NVIDIA GH100 H200 SXM (141 GB) — none available right now" in gpus


@V16
def test_gpu_stock_is_said_in_the_page_language(client_for, owner, tenant, platform):
    client = client_for(owner)
    client.post(reverse("set_language"), {"language": "fr", "next": "/"})
    html = client.get(url("create", tenant)).content.decode()
    assert "8 disponibles sur gpu-node-1, gpu-node-2" in picker(html, "ng-0-gpu_model")


@V16
def test_storage_classes_come_from_the_platform_with_their_words(client_for, owner, tenant,
                                                                 platform):
    restrict(platform, storageclass=[{"value": "replicated"}, FAST])
    html = create_page(client_for, owner, tenant)
    classes = picker(html, "storage_class")
    assert offered_values(classes) == ["replicated", "fast-rwx"]
    assert '<option value="replicated" selected>' in classes
    assert "Fast (NVMe, RWX)" in html and "readable and writable from every node" in html
    group_classes = picker(html, "ng-0-storage_class")
    assert offered_values(group_classes) == ["replicated", "fast-rwx"]


@V16
def test_without_the_charts_default_class_a_new_cluster_gets_the_platforms(
        client_for, owner, tenant, platform):
    restrict(platform, storageclass=[{"value": "local"},
                                     {"value": "fast-rwx", "default": True}])
    classes = picker(create_page(client_for, owner, tenant), "storage_class")
    assert '<option value="fast-rwx" selected>' in classes
    assert offerings.default_storage_class(NS) == "fast-rwx"


@V16
def test_staff_offerings_still_narrow_what_the_platform_offers(client_for, owner, tenant,
                                                               platform):
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    Offering.objects.create(kind=Offering.Kind.INSTANCE_TYPE, name="u1.large", hidden=True)
    Offering.objects.create(kind=Offering.Kind.GPU_MODEL, name="nvidia.com/AD102GL_L40S",
                            hidden=True)
    html = create_page(client_for, owner, tenant)
    assert sorted(offered_values(picker(html))) == ["s1.large", "u1.2xlarge", "u1.medium"]
    assert "nvidia.com/AD102GL_L40S" not in picker(html, "ng-0-gpu_model")


@V16
def test_a_group_keeps_showing_the_type_it_runs_once_the_platform_stops_offering_it(
        client_for, owner, tenant, platform):
    make_cluster(tenant, groups=[{"name": "md0", "instance_type": "m1.large"}])
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    html = client_for(owner).get(url("detail", tenant, cluster_name="demo")).content.decode()
    edit = picker(html, "edit-md0-instance_type")
    assert '<option value="m1.large"' in edit and " selected" in edit.split("m1.large")[1][:80]
    add = offered_values(picker(html, "add-instance_type"))
    assert "m1.large" not in add and "u1.large" in add


# --- the rules: a value the platform does not offer is refused -------------------------------


@V16
def test_the_create_form_refuses_what_the_platform_does_not_offer_beside_the_field(
        client_for, owner, tenant, platform):
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES],
             storageclass=[{"value": "replicated"}, FAST])
    data = {"name": "demo", "version": "v1.34", "storage_class": "replicated-async",
            "control_plane_replicas": "2", "control_plane_preset": "c1.medium",
            "groups": ["0"], "ng-0-name": "md0", "ng-0-instance_type": "m1.large",
            "ng-0-min_replicas": "1", "ng-0-max_replicas": "3", "ng-0-disk_gib": "30",
            "ng-0-gpu_model": "nvidia.com/H100_94GB", "ng-0-gpu_count": "1",
            "ng-0-ingress": "on"}
    response = client_for(owner).post(url("create", tenant), data)
    assert response.status_code == 422
    html = response.content.decode()
    assert ("The platform does not offer the instance type m1.large to this tenant"
            in text_of(html, "errors-ng-0-instance_type"))
    # Hikube's name of the H100 (v1.3): the v1.6 platform passes its GPUs through by its own.
    assert "GPU model nvidia.com/H100_94GB" in text_of(html, "errors-ng-0-gpu_model")
    storage = text_of(html, "errors-storage_class")
    assert "storage class replicated-async" in storage and "fast-rwx, replicated" in storage
    assert not Cluster.objects.exists()


@V16
def test_a_platform_only_storage_class_is_accepted_and_sent(engine, platform):
    restrict(platform, storageclass=[{"value": "replicated"}, FAST])
    spec = cluster_spec(groups=(group(),))
    spec = spec.__class__(**{**spec.__dict__, "storage_class": "fast-rwx"})
    cluster = engine.create(spec)
    operation = engine.settle(cluster, seconds=60)
    assert operation.state == "succeeded", operation.error_message
    assert platform.raw_object("Kubernetes", NS, "demo")["spec"]["storageClass"] == "fast-rwx"


@V16
def test_adding_a_group_refuses_a_type_the_platform_does_not_offer(client_for, owner, tenant,
                                                                   platform):
    make_cluster(tenant)
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    data = {"add-name": "big", "add-instance_type": "m1.xlarge", "add-min_replicas": "1",
            "add-max_replicas": "2", "add-disk_gib": "30"}
    response = client_for(owner).post(url("group_add", tenant, cluster_name="demo"), data)
    assert response.status_code == 422
    assert "does not offer the instance type m1.xlarge" in text_of(
        response.content.decode(), "errors-add-instance_type")


@V16
def test_a_group_on_a_type_no_longer_offered_still_scales(engine, tenant, owner, platform):
    cluster = engine.create(cluster_spec(groups=(group(instance_type="m1.large"),)))
    assert engine.settle(cluster, seconds=60).state == "succeeded"
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    operation = engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1,
                           max_replicas=5)
    assert operation.kind == "scale"
    assert engine.settle(cluster, seconds=60).state == "succeeded"
    with pytest.raises(Exception) as refused:
        engine.act(actions.do_add_node_group, "demo", group("big", instance_type="m1.xlarge",
                                                              roles=()))
    assert "does not offer the instance type m1.xlarge" in str(refused.value)


@V16
def test_the_api_refuses_what_the_platform_does_not_offer_with_a_422(owner, tenant, platform,
                                                                     api_client_for):
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    body = {"name": "web", "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "m1.large", "min_replicas": 1,
                             "max_replicas": 3, "roles": ["ingress-nginx"]}]}
    response = api_client_for(owner).post("/api/v1/tenants/acme/clusters/", body,
                                          format="json")
    assert response.status_code == 422
    errors = {e["field"]: e for e in response.json()["errors"]}
    assert errors["node_groups[0].instance_type"]["code"] == "not_offered_by_platform"
    assert "does not offer the instance type m1.large" in \
        errors["node_groups[0].instance_type"]["detail"]
    body["node_groups"][0]["instance_type"] = "u1.large"
    assert api_client_for(owner).post("/api/v1/tenants/acme/clusters/", body,
                                      format="json").status_code == 201


@V16
def test_the_tenant_catalogue_over_the_api_is_the_platforms_offer(owner, viewer, tenant,
                                                                  platform, api_client_for):
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES],
             storageclass=[{"value": "replicated"}, FAST])
    client = api_client_for(viewer)
    base = "/api/v1/tenants/acme/catalog/"
    types = client.get(f"{base}instance-types/").json()["results"]
    assert sorted(t["name"] for t in types) == sorted(OFFERED_TYPES)
    gpus = {g["name"]: g for g in client.get(f"{base}gpu-models/").json()["results"]}
    assert gpus["nvidia.com/AD102GL_L40S"]["availability"] == \
        "8 available on gpu-node-1, gpu-node-2"
    classes = client.get(f"{base}storage-classes/").json()["results"]
    assert [(c["name"], c["is_default"]) for c in classes] == [("replicated", True),
                                                               ("fast-rwx", False)]
    assert classes[1]["label"] == "Fast (NVMe, RWX)"
    # The platform-wide catalogue stays the release's.
    everything = client.get("/api/v1/catalog/instance-types/", {"page_size": 200}).json()
    assert len(everything["results"]) > len(OFFERED_TYPES)


# --- the cache ---------------------------------------------------------------------------------


@V16
def test_a_tenants_options_are_read_once_then_kept_briefly(client_for, owner, tenant, platform,
                                                           settings):
    settings.PLATFORM_OPTIONS_SECONDS = 45
    platform.request_log.clear()
    create_page(client_for, owner, tenant)
    create_page(client_for, owner, tenant)
    assert sorted(option_reads(platform)) == sorted(
        f"/apis/core.cozystack.io/v1alpha1/namespaces/{NS}/options/{source}"
        for source in ("instancetype", "gpu", "storageclass"))
    key = cache.make_key(options._key(NS))
    left = cache._expire_info[key] - time.time()  # the in-memory cache of these tests
    assert 0 < left <= 45
    # Another tenant has its own answer.
    second = TenantFactory(slug="second", name="Second")
    options.tenant_options(second.namespace)
    assert len(option_reads(platform)) == 6


# --- the fallback --------------------------------------------------------------------------------


@V13
def test_a_v13_platform_has_no_option_api_so_the_bundled_catalogue_is_offered(
        client_for, owner, tenant, platform):
    platform.request_log.clear()
    html = create_page(client_for, owner, tenant)
    assert option_reads(platform) == []  # never asked: the release has no Option API
    types = offered_values(picker(html))
    assert "u1.medium" in types and "s1.large" in types
    assert offered_values(picker(html, "storage_class")) == [
        "replicated", "replicated-async", "local"]
    gpus = picker(html, "ng-0-gpu_model")
    assert "nvidia.com/AD102GL_L40S" in gpus and "available on" not in gpus
    ctx = ctx_for(tenant, owner)
    assert actions.check_spec(ctx, cluster_spec(groups=(group(instance_type="s1.large"),),
                                                version="v1.33")) == []


@V16
def test_a_failing_option_endpoint_falls_back_to_the_bundled_catalogue(
        client_for, owner, tenant, platform, caplog):
    platform.faults.add(Fault(path=r"/options/", status=500, message="cozystack-api broke"))
    html = create_page(client_for, owner, tenant)
    types = offered_values(picker(html))
    assert "d1.large" in types and "u1.medium" in types  # the v1.6.2 catalogue
    assert "available on" not in picker(html, "ng-0-gpu_model")
    assert "cluster.options.unreadable" in caplog.text
    ctx = ctx_for(tenant, owner)
    assert actions.check_spec(ctx, cluster_spec(groups=(group(instance_type="m1.large"),))) == []
    # Once the platform answers again (and the short fallback time is over), its offer is back.
    platform.faults.clear()
    restrict(platform, instancetype=[{"value": name} for name in OFFERED_TYPES])
    assert sorted(offered_values(picker(create_page(client_for, owner, tenant)))) == sorted(
        OFFERED_TYPES)


@V16
def test_an_unreachable_platform_falls_back_and_is_retried_soon(client_for, owner, tenant,
                                                                platform, settings):
    settings.PLATFORM_OPTIONS_SECONDS = 60
    platform.set_down(True)
    offered = offerings.offered_instance_types(namespace=NS)
    assert "d1.large" in {t.name for t in offered}
    reads = {r.path.rsplit("/", 1)[-1] for r in platform.requests() if "/options/" in r.path}
    assert reads == {"instancetype"}  # one failed read: the other sources were not tried
    left = cache._expire_info[cache.make_key(options._key(NS))] - time.time()
    assert 0 < left <= 15  # a failed read is kept for a quarter of the time
    platform.set_down(False)
    options.forget(NS)
    assert options.tenant_options(NS).of(options.INSTANCE_TYPES).from_platform


@V13
def test_after_a_live_platform_upgrade_the_pickers_read_the_new_option_api(engine, platform):
    before = options.tenant_options(NS)
    assert not before.of(options.GPUS).from_platform
    assert before.of(options.GPUS).fallback == options.NO_OPTION_API
    platform.upgrade("1.6.2")
    watcher.sync_all(get_gateway())  # the watcher sees the new schema and chooses again
    after = options.tenant_options(NS)
    assert after.of(options.GPUS).from_platform
    assert "nvidia.com/GH100_H100L_94GB" in after.of(options.GPUS).names


def test_without_a_tenant_the_catalogue_is_the_bundled_one(db):
    assert options.source_options(None, options.GPUS) == options.BUNDLED
    assert not any(g.availability for g in offerings.offered_gpu_models())
