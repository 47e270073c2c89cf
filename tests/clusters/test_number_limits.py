"""Every number of a cluster spec has one range (``cozystack.limits``), and the create
form, the node-group forms, the API and the platform rules all refuse the same values: a
number outside its range is an error beside its field (or a 400 from the API), never a list of
a million GPUs built before anyone looks."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.core.exceptions import ValidationError

from clusters import actions
from clusters.models import Cluster
from clusters.web.forms import ClusterForm, NodeGroupForm
from cozystack import dialects, limits
from cozystack.specs import ClusterSpec, ControlPlaneSpec, NodeGroupSpec, parse_quantity
from cozystack.validation import validate_manifest
from portal.audit import Actor
from portal.models import Membership
from portal.tenancy import TenantContext
from tests.api.factories import make_token
from tests.clusters.test_views_create import form_data
from tests.clusters.ui import field_errors, make_cluster, offline_platform, text_of, url

pytestmark = pytest.mark.usefixtures("offline_platform")
__all__ = ["offline_platform"]

L40S = "nvidia.com/AD102GL_L40S"
HTMX = {"HX-Request": "true"}
NEWEST = dialects.newest()


def _group(**changes: Any) -> NodeGroupSpec:
    base = NodeGroupSpec(name="md0", instance_type="u1.2xlarge", min_replicas=1, max_replicas=3,
                         disk_gib=50, roles=("ingress-nginx",))
    return dataclasses.replace(base, **changes)


def _spec(**changes: Any) -> ClusterSpec:
    base = ClusterSpec(name="demo", namespace="tenant-acme", version="v1.34",
                       node_groups=(_group(),))
    return dataclasses.replace(base, **changes)


@dataclass(frozen=True)
class Number:
    """One number a person or a client sends, as each entry point names it."""

    bound: limits.Range
    form_field: str  # in the create form (``ng-0-…`` for the first node-group row)
    form_extra: dict[str, str]  # what else the form needs for the number to mean something
    api_path: tuple[str | int, ...]  # in the API's create body
    api_extra: dict[str, Any]  # likewise, merged into the first node group
    rule_path: str  # the platform rules' error path
    spec: Callable[[int], ClusterSpec]
    zero_is_none: bool = False  # the spec and the API read 0 as "none" (a group without GPUs)


NUMBERS = {
    "control-plane-replicas": Number(
        limits.CONTROL_PLANE_REPLICAS, "control_plane_replicas", {}, ("control_plane", "replicas"),
        {}, "control_plane.replicas",
        lambda v: _spec(control_plane=ControlPlaneSpec(replicas=v))),
    "min-nodes": Number(
        limits.MIN_NODES, "ng-0-min_replicas", {"ng-0-max_replicas": "100"},
        ("node_groups", 0, "min_replicas"), {"max_replicas": 100}, "node_groups[0].min_replicas",
        lambda v: _spec(node_groups=(_group(min_replicas=v, max_replicas=100),))),
    "max-nodes": Number(
        limits.MAX_NODES, "ng-0-max_replicas", {"ng-0-min_replicas": "1"},
        ("node_groups", 0, "max_replicas"), {}, "node_groups[0].max_replicas",
        lambda v: _spec(node_groups=(_group(max_replicas=v),))),
    "disk": Number(
        limits.DISK_GIB, "ng-0-disk_gib", {}, ("node_groups", 0, "ephemeral_storage_gib"), {},
        "node_groups[0].disk_gib",
        lambda v: _spec(node_groups=(_group(disk_gib=v),))),
    "gpus-per-node": Number(
        limits.GPUS_PER_NODE, "ng-0-gpu_count", {"ng-0-gpu_model": L40S},
        ("node_groups", 0, "gpus_per_node"), {"gpu_model": L40S}, "node_groups[0].gpus",
        lambda v: _spec(node_groups=(_group(gpus=(L40S,) * v),)), zero_is_none=True),
}
OUTSIDE = [("below", -1), ("above", +1)]
# Below the range, for the spec and the API: except where 0 means none.
SPEC_OUTSIDE = [pytest.param(key, side, id=f"{key}-{name}") for key, number in NUMBERS.items()
                for name, side in OUTSIDE if not (side < 0 and number.zero_is_none)]


def _outside(number: Number, side: int) -> int:
    return number.bound.lo - 1 if side < 0 else number.bound.hi + 1


def _api_body(number: Number, value: int) -> dict[str, Any]:
    body: dict[str, Any] = {
        "name": "web", "version": "v1.34",
        "node_groups": [{"name": "md0", "instance_type": "u1.2xlarge", "min_replicas": 1,
                         "max_replicas": 3, **number.api_extra}],
        "addons": {"gpu_operator": {"enabled": True}}}
    target = body
    for key in number.api_path[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[number.api_path[-1]] = value
    return body


def _api(user):
    from rest_framework.test import APIClient

    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(user)}")
    return client


def _form_is_valid_for(number: Number, value: int) -> bool:
    if number.form_field.startswith("ng-0-"):
        name = number.form_field.removeprefix("ng-0-")
        form = NodeGroupForm({name: str(value)})
    else:
        name = number.form_field
        form = ClusterForm({name: str(value)}, versions=["v1.34"])
    form.is_valid()
    return name not in form.errors


# --------------------------------------------------------------------------- the same range


@pytest.mark.parametrize("side", [s for _n, s in OUTSIDE], ids=[n for n, _s in OUTSIDE])
@pytest.mark.parametrize("key", NUMBERS)
def test_the_create_form_refuses_a_number_outside_its_range_beside_the_field(
        client_for, member, tenant, key, side):
    number = NUMBERS[key]
    value = _outside(number, side)
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{**number.form_extra, number.form_field: str(value)}), headers=HTMX)

    assert response.status_code == 200
    assert field_errors(response, number.form_field), key


@pytest.mark.django_db
@pytest.mark.parametrize("key", NUMBERS)
def test_the_forms_accept_both_ends_of_each_range(key):
    number = NUMBERS[key]
    assert _form_is_valid_for(number, number.bound.lo)
    assert _form_is_valid_for(number, number.bound.hi)
    assert not _form_is_valid_for(number, number.bound.hi + 1)


@pytest.mark.django_db
@pytest.mark.parametrize(("key", "side"), SPEC_OUTSIDE)
def test_the_api_refuses_the_same_numbers_with_a_pointer(owner, tenant, key, side):
    number = NUMBERS[key]
    response = _api(owner).post("/api/v1/tenants/acme/clusters/",
                                _api_body(number, _outside(number, side)), format="json")

    assert response.status_code == 400, response.content
    pointer = "#/" + "/".join(str(p) for p in number.api_path)
    assert pointer in [e["pointer"] for e in response.json()["errors"]]
    assert not Cluster.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("end", ["lo", "hi"])
@pytest.mark.parametrize("key", NUMBERS)
def test_the_api_takes_both_ends_of_each_range(owner, tenant, key, end):
    number = NUMBERS[key]
    response = _api(owner).post("/api/v1/tenants/acme/clusters/",
                                _api_body(number, getattr(number.bound, end)), format="json")

    pointer = "#/" + "/".join(str(p) for p in number.api_path)
    assert pointer not in [e.get("pointer") for e in response.json().get("errors", [])], \
        response.content


@pytest.mark.parametrize(("key", "side"), SPEC_OUTSIDE)
def test_the_platform_rules_refuse_the_same_numbers(key, side):
    number = NUMBERS[key]
    inside = validate_manifest(number.spec(number.bound.hi), creating=True, dialect=NEWEST)
    outside = validate_manifest(number.spec(_outside(number, side)), creating=True, dialect=NEWEST)

    assert number.rule_path not in {e.field for e in inside}
    assert number.rule_path in {e.field for e in outside}


@pytest.mark.django_db
def test_the_create_action_refuses_an_out_of_range_spec_and_stores_nothing(tenant, owner):
    membership = Membership.objects.get(user=owner, tenant=tenant)
    ctx = TenantContext(tenant, membership.role, membership)
    spec = _spec(node_groups=(_group(max_replicas=10**30, gpus=(L40S,) * 9),))

    with pytest.raises(ValidationError) as refused:
        actions.do_create_cluster(Actor(user=owner), ctx, spec)

    fields = refused.value.message_dict
    assert "node_groups[0].max_replicas" in fields and "node_groups[0].gpus" in fields
    assert not Cluster.objects.exists()


# --------------------------------------------------------------------------- the GPU list


@pytest.mark.parametrize("count", ["1000000", "30000000", str(10**12), "1" + "0" * 30])
def test_a_huge_gpu_count_is_an_error_beside_it_and_builds_no_list(client_for, member, tenant,
                                                                   count):
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{"ng-0-gpu_model": L40S, "ng-0-gpu_count": count}), headers=HTMX)

    assert response.status_code == 200
    assert field_errors(response, "ng-0-gpu_count")
    manifest = text_of(response.content, "manifest-preview")
    assert manifest.count(L40S) <= limits.GPUS_PER_NODE.hi
    assert len(response.content) < 300_000


def test_a_node_group_form_never_lists_more_gpus_than_a_node_has():
    form = NodeGroupForm({"name": "gpu", "instance_type": "u1.2xlarge", "min_replicas": "1",
                          "max_replicas": "2", "disk_gib": "50", "gpu_model": L40S,
                          "gpu_count": "200000"})

    assert not form.is_valid() and "gpu_count" in form.errors
    assert len(form.to_spec().gpus) <= limits.GPUS_PER_NODE.hi


def test_adding_a_node_group_with_a_huge_gpu_count_is_refused_beside_it(client_for, owner,
                                                                        tenant):
    make_cluster(tenant)
    response = client_for(owner).post(url("group_add", tenant, cluster_name="demo"), {
        "add-name": "gpu", "add-instance_type": "u1.2xlarge", "add-min_replicas": "1",
        "add-max_replicas": "2", "add-disk_gib": "50", "add-gpu_model": L40S,
        "add-gpu_count": "200000"}, headers=HTMX)

    assert response.status_code == 422
    assert field_errors(response, "add-gpu_count")


def test_scaling_beyond_the_node_range_is_refused_beside_the_field(client_for, owner, tenant):
    make_cluster(tenant)
    response = client_for(owner).post(
        url("group_scale", tenant, cluster_name="demo", group_name="md0"),
        {"scale-md0-min_replicas": "1", "scale-md0-max_replicas": str(10**28)}, headers=HTMX)

    assert response.status_code == 422
    assert field_errors(response, "scale-md0-max_replicas")


# --------------------------------------------------------------------------- custom sizes


@pytest.mark.parametrize(("cpu", "memory", "field"), [
    ("1e9999999", "16Gi", "ng-0-cpu"), ("1e30", "16Gi", "ng-0-cpu"),
    (str(limits.CUSTOM_CPU_CORES.hi + 1), "16Gi", "ng-0-cpu"),
    ("4", "1e30Gi", "ng-0-memory"), ("4", f"{limits.CUSTOM_MEMORY_GIB.hi + 1}Gi", "ng-0-memory"),
])
def test_a_custom_size_beyond_any_node_is_refused_beside_the_field(client_for, member, tenant,
                                                                   cpu, memory, field):
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{"ng-0-instance_type": "", "ng-0-cpu": cpu, "ng-0-memory": memory}), headers=HTMX)

    assert response.status_code == 200
    assert field_errors(response, field)


@pytest.mark.parametrize("text", ["1e9999999", "9" * 19 + "e" + "9" * 19, "1e30", "8Ei",
                                  "1e" + "9" * 5000])
def test_quantities_no_node_could_have_do_not_parse(text):
    assert parse_quantity(text) is None


def test_quantities_a_node_has_parse():
    assert parse_quantity("500m") * 1000 == 500
    assert parse_quantity("16Gi") == 16 * 2**30
    assert parse_quantity(f"{limits.CUSTOM_CPU_CORES.hi}") == limits.CUSTOM_CPU_CORES.hi


# --------------------------------------------------------------------------- list lengths


def test_the_rules_refuse_more_node_groups_than_a_cluster_may_have():
    groups = tuple(_group(name=f"g{i}", roles=()) for i in range(limits.NODE_GROUPS.hi + 1))
    errors = validate_manifest(_spec(node_groups=groups), creating=True, dialect=NEWEST)

    assert "node_groups" in {e.field for e in errors}


def test_the_rules_refuse_more_ingress_hosts_than_the_platform_routes():
    from cozystack.specs import AddonSpec

    hosts = tuple(f"h{i}.example.com" for i in range(limits.INGRESS_HOSTS + 1))
    spec = _spec(addons=(AddonSpec(key="ingressNginx", enabled=True, hosts=hosts),))

    errors = validate_manifest(spec, creating=True, dialect=NEWEST)
    assert "addons.ingressNginx.hosts" in {e.field for e in errors}


# --------------------------------------------------------------------------- before pricing


def test_a_28_digit_maximum_is_refused_before_the_estimate_is_priced(client_for, member, tenant):
    response = client_for(member).post(url("create_check", tenant), form_data(
        **{"ng-0-max_replicas": "1" + "0" * 28}), headers=HTMX)

    assert response.status_code == 200
    assert field_errors(response, "ng-0-max_replicas")

