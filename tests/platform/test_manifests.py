"""Conformance of rendered manifests with the upstream schema, and the portal's own rules.

Every spec the portal can produce must validate against ``kubernetes.values.schema.json``
after Helm's merge of chart defaults; every broken spec must be refused with an error that
points at a form field and says what to do. No database, no network.
"""

from __future__ import annotations

import copy
import itertools
from dataclasses import replace
from decimal import Decimal

import pytest
import yaml
from jsonschema import Draft7Validator

from cozystack import catalog, dialects
from cozystack.manifests import (
    AddonSpec,
    ClusterSpec,
    ControlPlaneSpec,
    NodeGroupSpec,
    chart_defaults,
    cluster_changes,
    merge_with_defaults,
    parse_quantity,
    quantity_to_gib,
    render_kubernetes,
    render_spec,
    requires_node_replacement,
    spec_from_platform,
    to_yaml,
)
from cozystack.validation import (
    FieldError,
    allowed_versions_from_schema,
    check_cluster_spec,
    schema_from_application_definition,
    validate_against_schema,
    validate_manifest,
)

# The v1.3 contract (v1.3.6 schema and values.yaml); the v1.6 one is in test_conformance.py.
V13 = dialects.v13()
SCHEMA = catalog.bundled_kubernetes_schema()
L40S = "nvidia.com/AD102GL_L40S"
A100 = "nvidia.com/GA100_A100_PCIE_80GB"
H100 = "nvidia.com/H100_94GB"


def group(name: str = "md0", instance_type: str = "u1.large", lo: int = 1, hi: int = 3, **kw):
    kw.setdefault("disk_gib", 50)
    kw.setdefault("roles", ("ingress-nginx",) if name == "md0" else ())
    return NodeGroupSpec(name, instance_type, lo, hi, **kw)


def cluster(*groups: NodeGroupSpec, **kw) -> ClusterSpec:
    kw.setdefault("version", "v1.34")
    return ClusterSpec(
        name=kw.pop("name", "demo"),
        namespace=kw.pop("namespace", "tenant-acme"),
        node_groups=groups or (group(),),
        **kw,
    )


def schema_errors(spec_dict: dict) -> list[str]:
    """Raw jsonschema result, independent of the portal's error wording."""
    merged = merge_with_defaults(spec_dict, chart_defaults(SCHEMA))
    return [e.message for e in Draft7Validator(SCHEMA).iter_errors(merged)]


def fields(errors: list[FieldError]) -> list[str]:
    return [e.field for e in errors]


# --------------------------------------------------------------------------- the matrix

ALL_ADDONS_ON = (
    AddonSpec("certManager", True, {"cert-manager": {"replicaCount": 2}}),
    AddonSpec("cilium", True, {"cilium": {"hubble": {"enabled": True}}}),
    AddonSpec("coredns", True, {"coredns": {"replicaCount": 3}}),
    AddonSpec("fluxcd", True, {"flux-instance": {"instance": {"cluster": {"size": "large"}}}}),
    AddonSpec("gatewayAPI", True),
    AddonSpec("gpuOperator", True, {"gpu-operator": {"driver": {"version": "550"}}}),
    AddonSpec(
        "ingressNginx",
        True,
        {"ingress-nginx": {"controller": {"replicaCount": 2}}},
        expose_method="Proxied",
        hosts=("app.example.com", "*.apps.example.com"),
    ),
    AddonSpec(
        "monitoringAgents",
        True,
        {
            "vmagent": {"remoteWrite": {"url": "http://vm:8428"}},
            "fluent-bit": {"resources": {}},
            "kube-state-metrics": {"replicas": 1},
        },
    ),
    AddonSpec("velero", True, {"velero": {"snapshotsEnabled": False}}),
    AddonSpec("verticalPodAutoscaler", True, {"vertical-pod-autoscaler": {"recommender": {}}}),
)

MATRIX: dict[str, ClusterSpec] = {
    "one-group": cluster(),
    "one-group-no-roles": cluster(group(roles=())),
    "several-groups": cluster(
        group(),
        group("workers", "s1.xlarge", 2, 10, disk_gib=100),
        group("memory", "m1.2xlarge", 0, 4, disk_gib=200),
    ),
    "gpu-group": cluster(
        group(),
        group("gpu", "u1.2xlarge", 1, 2, disk_gib=100, gpus=(L40S,)),
        addons=(AddonSpec("gpuOperator", True),),
    ),
    "multi-gpu-group": cluster(
        group(),
        group("gpu", "u1.8xlarge", 1, 1, disk_gib=500, gpus=(H100, H100, H100, H100)),
        group("mixed", "m1.4xlarge", 2, 3, gpus=(A100, L40S)),
        addons=(AddonSpec("gpuOperator", True),),
    ),
    "zero-min-groups": cluster(group(lo=0, hi=1), group("batch", "u1.xlarge", 0, 20)),
    "custom-sizing": cluster(
        group(),
        group("custom", "", 1, 2, cpu="6", memory="24Gi"),
        group("custom-gpu", "", 1, 1, cpu="16", memory="64Gi", gpus=(L40S,)),
        addons=(AddonSpec("gpuOperator", True),),
    ),
    "custom-sizing-only": cluster(group(instance_type="", cpu="500m", memory="2Gi")),
    "every-addon": cluster(
        group(),
        group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)),
        addons=ALL_ADDONS_ON,
    ),
    "ingress-loadbalancer": cluster(
        addons=(AddonSpec("ingressNginx", True, expose_method="LoadBalancer"),),
    ),
    "addons-off-with-values": cluster(
        addons=(
            AddonSpec("certManager", False, {"cert-manager": {"a": 1}}),
            AddonSpec("ingressNginx", False, hosts=("later.example.com",)),
        ),
    ),
    "custom-host": cluster(host="k8s.acme.example.com"),
    "control-plane-tuned": cluster(
        control_plane=ControlPlaneSpec(5, "2xlarge", "small", "nano", "medium"),
    ),
    "control-plane-single": cluster(control_plane=ControlPlaneSpec(replicas=1)),
    "md0-absent": cluster(group("general", "u1.xlarge", 1, 5, roles=("ingress-nginx",))),
    "md0-absent-many": cluster(
        group("a", roles=("ingress-nginx",)), group("b", "s1.small", 0, 2, disk_gib=10)
    ),
    "long-names": cluster(group("g" * 9), name="c" + "x" * 29, addons=(AddonSpec("velero", True),)),
    "max-name-length": cluster(group("w"), name="a" * 38),
    "limits": cluster(group(lo=100, hi=100, disk_gib=2048)),
}
for _version, _storage in itertools.product(V13.catalogue.version_names(), catalog.STORAGE_CLASSES):
    MATRIX[f"{_version}-{_storage.name}"] = cluster(version=_version, storage_class=_storage.name)


@pytest.mark.parametrize("spec", MATRIX.values(), ids=MATRIX.keys())
def test_every_portal_spec_validates_against_the_upstream_schema(spec):
    rendered = render_spec(spec, V13)
    assert schema_errors(rendered) == []
    assert validate_against_schema(rendered, SCHEMA, spec=spec, dialect=V13) == []
    assert check_cluster_spec(spec, creating=True, dialect=V13) == []
    assert validate_manifest(spec, SCHEMA, creating=True, dialect=V13) == []


@pytest.mark.parametrize("spec", MATRIX.values(), ids=MATRIX.keys())
def test_rendered_spec_is_complete_on_its_own(spec):
    """Like PLATFORM.md (h) "Complete spec": valid even without chart defaults."""
    rendered = render_spec(spec, V13)
    groups = rendered["nodeGroups"]
    assert list(groups)[0] == "md0"
    if groups["md0"] is None:
        del groups["md0"]
    assert [e.message for e in Draft7Validator(SCHEMA).iter_errors(rendered)] == []
    for name, item in groups.items():
        assert "resources" in item, name
        assert set(item) == {
            "minReplicas",
            "maxReplicas",
            "instanceType",
            "ephemeralStorage",
            "resources",
            "roles",
            "gpus",
        }
        assert item["ephemeralStorage"].endswith("Gi")
    for component in ("apiServer", "controllerManager", "scheduler"):
        assert rendered["controlPlane"][component]["resources"] == {}
    assert rendered["controlPlane"]["konnectivity"]["server"]["resources"] == {}
    assert list(rendered["addons"]) == [a.key for a in V13.catalogue.addons]


@pytest.mark.parametrize("spec", MATRIX.values(), ids=MATRIX.keys())
def test_platform_round_trip(spec):
    obj = render_kubernetes(spec, V13)
    back = spec_from_platform(obj, V13)
    assert (back.name, back.namespace) == (spec.name, spec.namespace)
    assert render_spec(back, V13) == render_spec(spec, V13)
    assert sorted(back.node_groups, key=lambda g: g.name) == sorted(
        spec.node_groups, key=lambda g: g.name
    )


@pytest.mark.parametrize("spec", MATRIX.values(), ids=MATRIX.keys())
def test_round_trip_from_a_defaulted_get(spec):
    """GET returns schema defaults filled in and may carry quantities as ints or strings."""
    got = merge_with_defaults(render_spec(spec, V13), chart_defaults(SCHEMA))
    for item in got["nodeGroups"].values():
        item["ephemeralStorage"] = int(parse_quantity(item["ephemeralStorage"]))
        item["minReplicas"] = str(item["minReplicas"])
    back = spec_from_platform(
        {"metadata": {"name": spec.name, "namespace": "ns"}, "spec": got}, V13)
    assert render_spec(back, V13) == render_spec(spec, V13)


def test_round_trip_is_exact_when_every_addon_is_given():
    spec = MATRIX["every-addon"]
    addons = tuple(
        replace(spec.addon(a.key), enabled=a.always_installed or spec.addon(a.key).enabled)
        if a.has_enabled or a.always_installed
        else replace(spec.addon(a.key), enabled=False)  # tuning-only VPA has no switch
        for a in V13.catalogue.addons
    )
    spec = replace(spec, addons=addons)
    back = spec_from_platform(render_kubernetes(spec, V13), V13)
    assert replace(back, node_groups=spec.node_groups) == spec


# --------------------------------------------------------------------------- rendering details


def test_gpus_are_repeated_per_gpu_and_resources_always_present():
    spec = MATRIX["multi-gpu-group"]
    groups = render_spec(spec, V13)["nodeGroups"]
    assert groups["gpu"]["gpus"] == [{"name": H100}] * 4
    assert groups["mixed"]["gpus"] == [{"name": L40S}, {"name": A100}]  # sorted
    assert groups["gpu"]["resources"] == {}


def test_custom_sizing_sends_an_empty_instance_type_with_cpu_and_memory():
    rendered = render_spec(MATRIX["custom-sizing"], V13)["nodeGroups"]["custom"]
    assert rendered["instanceType"] == ""
    assert rendered["resources"] == {"cpu": "6", "memory": "24Gi"}


def test_version_is_major_minor_and_disk_a_quantity():
    rendered = render_spec(cluster(group(disk_gib=75), version="v1.33"), V13)
    assert rendered["version"] == "v1.33"
    assert rendered["nodeGroups"]["md0"]["ephemeralStorage"] == "75Gi"


def test_values_override_is_passed_through_untouched_but_copied():
    override = {"ingress-nginx": {"controller": {"config": {"use-forwarded-headers": "true"}}}}
    spec = cluster(addons=(AddonSpec("ingressNginx", True, override),))
    rendered = render_spec(spec, V13)
    assert rendered["addons"]["ingressNginx"]["valuesOverride"] == override
    rendered["addons"]["ingressNginx"]["valuesOverride"]["x"] = 1
    assert "x" not in override


def test_always_on_addons_have_no_enabled_key_and_gateway_api_no_values():
    addons = render_spec(cluster(), V13)["addons"]
    for key in ("cilium", "coredns", "verticalPodAutoscaler"):
        assert addons[key] == {"valuesOverride": {}}
    assert addons["gatewayAPI"] == {"enabled": False}
    assert addons["ingressNginx"] == {
        "enabled": False,
        "exposeMethod": "Proxied",
        "hosts": [],
        "valuesOverride": {},
    }


def test_render_kubernetes_envelope():
    obj = render_kubernetes(cluster(), V13, labels={"portal/tenant": "acme"}, resource_version="42")
    assert obj["apiVersion"] == "apps.cozystack.io/v1alpha1"
    assert obj["kind"] == "Kubernetes"
    assert obj["metadata"] == {
        "name": "demo",
        "namespace": "tenant-acme",
        "labels": {"portal/tenant": "acme"},
        "resourceVersion": "42",
    }
    assert "labels" not in render_kubernetes(cluster(), V13)["metadata"]
    assert list(obj["spec"]) == [
        "version",
        "host",
        "storageClass",
        "nodeGroups",
        "controlPlane",
        "addons",
    ]


# --------------------------------------------------------------------------- md0 semantics


def test_absent_md0_is_sent_as_null_first():
    groups = render_spec(MATRIX["md0-absent"], V13)["nodeGroups"]
    assert list(groups.items())[0] == ("md0", None)


def test_null_md0_drops_the_chart_default_group():
    merged = merge_with_defaults(render_spec(MATRIX["md0-absent"], V13), chart_defaults(SCHEMA))
    assert list(merged["nodeGroups"]) == ["general"]


def test_without_the_null_the_hidden_md0_comes_back():
    """Gotcha 1: Helm merges maps, so an unsent md0 reappears with the chart defaults."""
    rendered = render_spec(MATRIX["md0-absent"], V13)
    del rendered["nodeGroups"]["md0"]
    merged = merge_with_defaults(rendered, chart_defaults(SCHEMA))
    assert sorted(merged["nodeGroups"]) == ["general", "md0"]
    assert merged["nodeGroups"]["md0"]["instanceType"] == "u1.medium"
    assert merged["nodeGroups"]["md0"]["roles"] == ["ingress-nginx"]


def test_null_is_re_sent_after_reading_back_a_spec_without_md0():
    got = merge_with_defaults(render_spec(MATRIX["md0-absent"], V13), chart_defaults(SCHEMA))
    back = spec_from_platform({"metadata": {"name": "demo"}, "spec": got}, V13)
    assert render_spec(back, V13)["nodeGroups"]["md0"] is None


def test_md0_null_in_a_get_is_skipped():
    back = spec_from_platform({"spec": {"nodeGroups": {"md0": None, "a": {"minReplicas": 1}}}}, V13)
    assert [g.name for g in back.node_groups] == ["a"]


def test_md0_without_roles_does_not_inherit_the_default_role():
    merged = merge_with_defaults(render_spec(cluster(group(roles=())), V13), chart_defaults(SCHEMA))
    assert merged["nodeGroups"]["md0"]["roles"] == []


def test_chart_defaults_match_values_yaml():
    defaults = chart_defaults(SCHEMA)
    assert defaults["nodeGroups"] == {
        "md0": {
            "ephemeralStorage": "20Gi",
            "gpus": [],
            "instanceType": "u1.medium",
            "maxReplicas": 10,
            "minReplicas": 0,
            "resources": {},
            "roles": ["ingress-nginx"],
        }
    }
    assert defaults["version"] == "v1.35"
    assert defaults["controlPlane"]["replicas"] == 2
    assert defaults["controlPlane"]["apiServer"] == {"resources": {}, "resourcesPreset": "large"}
    assert defaults["controlPlane"]["konnectivity"]["server"]["resourcesPreset"] == "micro"
    assert defaults["addons"]["ingressNginx"] == {
        "enabled": False,
        "exposeMethod": "Proxied",
        "hosts": [],
        "valuesOverride": {},
    }
    assert defaults["addons"]["gatewayAPI"] == {"enabled": False}


def test_chart_defaults_fall_back_to_the_hidden_md0_without_a_schema_default():
    schema = copy.deepcopy(SCHEMA)
    del schema["properties"]["nodeGroups"]["default"]
    assert chart_defaults(schema)["nodeGroups"]["md0"]["instanceType"] == "u1.medium"


@pytest.mark.parametrize(
    ("values", "defaults", "merged"),
    [
        ({"a": 1}, {"a": 2, "b": 3}, {"a": 1, "b": 3}),
        ({"m": {"x": 1}}, {"m": {"x": 0, "y": 2}}, {"m": {"x": 1, "y": 2}}),
        ({"m": {"x": None}}, {"m": {"x": 0, "y": 2}}, {"m": {"y": 2}}),
        ({"m": None}, {"m": {"x": 0}}, {}),
        ({"l": [1]}, {"l": [2, 3]}, {"l": [1]}),
        ({"l": []}, {"l": [2, 3]}, {"l": []}),
        ({"m": "scalar"}, {"m": {"x": 0}}, {"m": "scalar"}),
        ({"new": {"k": None}}, {}, {"new": {"k": None}}),
        ({"gone": None}, {}, {}),
    ],
)
def test_merge_with_defaults_follows_helm(values, defaults, merged):
    assert merge_with_defaults(values, defaults) == merged


# --------------------------------------------------------------------------- PLATFORM.md (h)

COMPLETE_EXAMPLE = """
apiVersion: apps.cozystack.io/v1alpha1
kind: Kubernetes
metadata:
  name: demo
  namespace: tenant-acme
spec:
  version: v1.34
  host: ""
  storageClass: replicated
  nodeGroups:
    md0:
      minReplicas: 1
      maxReplicas: 4
      instanceType: s1.large
      ephemeralStorage: 50Gi
      resources: {}
      roles: [ingress-nginx]
      gpus: []
  controlPlane:
    replicas: 2
    apiServer: {resources: {}, resourcesPreset: large}
    controllerManager: {resources: {}, resourcesPreset: micro}
    scheduler: {resources: {}, resourcesPreset: micro}
    konnectivity:
      server: {resources: {}, resourcesPreset: micro}
  addons:
    certManager: {enabled: true, valuesOverride: {}}
    cilium: {valuesOverride: {}}
    coredns: {valuesOverride: {}}
    fluxcd: {enabled: false, valuesOverride: {}}
    gatewayAPI: {enabled: false}
    gpuOperator: {enabled: false, valuesOverride: {}}
    ingressNginx: {enabled: true, exposeMethod: Proxied, hosts: [app.example.com], valuesOverride: {}}
    monitoringAgents: {enabled: false, valuesOverride: {}}
    velero: {enabled: false, valuesOverride: {}}
    verticalPodAutoscaler: {valuesOverride: {}}
"""  # noqa: E501

SMALLEST_EXAMPLE = """
spec:
  version: v1.34
  nodeGroups:
    md0: {minReplicas: 1, maxReplicas: 3, instanceType: u1.large, ephemeralStorage: 30Gi, resources: {}, roles: [ingress-nginx]}
    gpu: {minReplicas: 1, maxReplicas: 2, instanceType: u1.2xlarge, ephemeralStorage: 100Gi, resources: {}, gpus: [{name: nvidia.com/AD102GL_L40S}]}
  addons:
    gpuOperator: {enabled: true}
"""  # noqa: E501


def test_complete_example_validates_on_its_own():
    example = yaml.safe_load(COMPLETE_EXAMPLE)
    assert list(Draft7Validator(SCHEMA).iter_errors(example["spec"])) == []


def test_complete_example_is_exactly_what_the_portal_renders():
    example = yaml.safe_load(COMPLETE_EXAMPLE)
    spec = spec_from_platform(example, V13)
    rendered = render_kubernetes(spec, V13)
    assert rendered == example
    assert to_yaml(rendered) == to_yaml(example)  # same key order too
    assert validate_manifest(spec, SCHEMA, creating=True, dialect=V13) == []


def test_smallest_example_needs_the_chart_defaults():
    example = yaml.safe_load(SMALLEST_EXAMPLE)["spec"]
    assert list(Draft7Validator(SCHEMA).iter_errors(example)) != []
    assert schema_errors(example) == []
    assert validate_against_schema(example, SCHEMA, dialect=V13) == []


def test_smallest_example_read_back_renders_a_valid_complete_spec():
    example = yaml.safe_load(SMALLEST_EXAMPLE)
    spec = spec_from_platform(
        {"metadata": {"name": "demo", "namespace": "tenant-acme"}, **example}, V13)
    assert spec.group("gpu").gpus == (L40S,)
    assert spec.group("gpu").roles == ()
    assert spec.addon("gpuOperator").enabled is True
    assert validate_manifest(spec, SCHEMA, creating=True, dialect=V13) == []
    assert list(Draft7Validator(SCHEMA).iter_errors(render_spec(spec, V13))) == []


# --------------------------------------------------------------------------- determinism


def test_output_is_deterministic():
    spec = MATRIX["every-addon"]
    assert to_yaml(render_kubernetes(spec, V13)) == to_yaml(render_kubernetes(spec, V13))


def test_group_order_and_role_order_do_not_change_the_output():
    a, b, c = group(), group("zeta", "u1.large", 1, 2), group("alpha", "u1.large", 1, 2)
    one = render_spec(cluster(a, b, c), V13)
    two = render_spec(cluster(c, b, a), V13)
    assert to_yaml(one) == to_yaml(two)
    assert list(one["nodeGroups"]) == ["md0", "alpha", "zeta"]
    gpus = group("g", gpus=[L40S, A100])
    assert gpus == group("g", gpus=(A100, L40S))


def test_to_yaml_is_block_style_without_aliases_or_sorting():
    shared = {"k": "v"}
    text = to_yaml({"z": shared, "a": shared, "n": Decimal("1.5"), "s": "line1\nline2"})
    assert "&" not in text and "*" not in text
    assert text.index("z:") < text.index("a:")
    assert "{" not in text
    assert yaml.safe_load(text) == {"z": shared, "a": shared, "n": "1.5", "s": "line1\nline2"}


def test_preview_of_a_full_object_reads_back_identically():
    obj = render_kubernetes(MATRIX["every-addon"], V13)
    assert yaml.safe_load(to_yaml(obj)) == obj


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("50Gi", Decimal(50 * 2**30)),
        ("500m", Decimal("0.5")),
        ("4", Decimal(4)),
        (4, Decimal(4)),
        ("1.5Gi", Decimal("1.5") * 2**30),
        ("20G", Decimal(20 * 10**9)),
        ("1e3", Decimal(1000)),
        ("128Mi", Decimal(128 * 2**20)),
        ("abc", None),
        ("50 Gi", None),
        ("50GB", None),
        ("", None),
        (True, None),
        (None, None),
        (1.5, None),
    ],
)
def test_parse_quantity(value, parsed):
    assert parse_quantity(value) == parsed


@pytest.mark.parametrize(
    ("value", "gib"),
    [("50Gi", 50), (53687091200, 50), ("20G", 19), ("1Ti", 1024), ("bad", None)],
)
def test_quantity_to_gib(value, gib):
    assert quantity_to_gib(value) == gib


# --------------------------------------------------------------------------- portal rules

BASE = cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)), addons=ALL_ADDONS_ON)


def with_group(index: int, **changes) -> ClusterSpec:
    groups = list(BASE.node_groups)
    groups[index] = replace(groups[index], **changes)
    return replace(BASE, node_groups=tuple(groups))


def with_addon(key: str, **changes) -> ClusterSpec:
    addons = tuple(replace(a, **changes) if a.key == key else a for a in BASE.addons)
    return replace(BASE, addons=addons)


NEGATIVE: dict[str, tuple[ClusterSpec, str, str, str]] = {
    # id: (spec, field, code, words the message must contain)
    "name-empty": (replace(BASE, name=""), "name", "required", "Enter a name"),
    "name-uppercase": (replace(BASE, name="Demo"), "name", "invalid", "lowercase"),
    "name-starts-digit": (replace(BASE, name="1demo"), "name", "invalid", "starting with a letter"),
    "name-ends-hyphen": (replace(BASE, name="demo-"), "name", "invalid", "ending with a letter"),
    "name-underscore": (replace(BASE, name="de_mo"), "name", "invalid", "hyphens"),
    "name-too-long": (
        cluster(group("a"), name="a" * 43),
        "name",
        "max_length",
        "at most 42 characters",
    ),
    "group-name-invalid": (
        with_group(1, name="GPU_1"),
        "node_groups[1].name",
        "invalid",
        "lowercase",
    ),
    "group-name-empty": (with_group(1, name=""), "node_groups[1].name", "required", "Enter a name"),
    "group-name-duplicate": (
        with_group(1, name="md0"),
        "node_groups[1].name",
        "duplicate",
        "already a node group named",
    ),
    "group-name-budget": (
        cluster(group("abcdefghij"), name="c" * 30),
        "node_groups[0].name",
        "max_length",
        "at most 39 characters",
    ),
    "min-negative": (
        with_group(0, min_replicas=-1),
        "node_groups[0].min_replicas",
        "invalid",
        "0 or more",
    ),
    "min-gt-max": (
        with_group(0, min_replicas=4, max_replicas=3),
        "node_groups[0].min_replicas",
        "min_gt_max",
        "cannot be more than the maximum",
    ),
    "max-zero": (
        with_group(0, min_replicas=0, max_replicas=0),
        "node_groups[0].max_replicas",
        "out_of_range",
        "from 1 to 100",
    ),
    "max-huge": (
        with_group(0, max_replicas=101),
        "node_groups[0].max_replicas",
        "out_of_range",
        "from 1 to 100",
    ),
    "min-not-int": (
        with_group(0, min_replicas="2"),
        "node_groups[0].min_replicas",
        "invalid",
        "whole number",
    ),
    "instance-type-unknown": (
        with_group(0, instance_type="m5.large"),
        "node_groups[0].instance_type",
        "invalid_choice",
        "does not exist",
    ),
    "custom-size-without-memory": (
        with_group(0, instance_type="", cpu="4"),
        "node_groups[0].memory",
        "required",
        "both CPU and memory",
    ),
    "custom-size-without-cpu": (
        with_group(0, instance_type="", memory="8Gi"),
        "node_groups[0].cpu",
        "required",
        "both CPU and memory",
    ),
    "custom-size-bad-cpu": (
        with_group(0, instance_type="", cpu="four", memory="8Gi"),
        "node_groups[0].cpu",
        "invalid_quantity",
        "such as 4 or 500m",
    ),
    "custom-size-bad-memory": (
        with_group(0, instance_type="", cpu="4", memory="8 GB"),
        "node_groups[0].memory",
        "invalid_quantity",
        "16Gi",
    ),
    "size-conflict": (
        with_group(0, cpu="4", memory="8Gi"),
        "node_groups[0].cpu",
        "size_conflict",
        "cannot be combined with an instance type",
    ),
    "gpu-unknown": (
        with_group(1, gpus=("nvidia.com/RTX4090",)),
        "node_groups[1].gpus",
        "invalid_choice",
        "Unknown GPU model",
    ),
    "gpu-too-many": (
        with_group(1, gpus=(L40S,) * 9),
        "node_groups[1].gpus",
        "too_many",
        "at most 8 GPUs",
    ),
    "gpu-small-instance": (
        with_group(1, instance_type="s1.small"),
        "node_groups[1].instance_type",
        "gpu_memory",
        "at least 4 GiB",
    ),
    "gpu-small-custom": (
        with_group(1, instance_type="", cpu="2", memory="2Gi"),
        "node_groups[1].memory",
        "gpu_memory",
        "at least 4 GiB",
    ),
    "gpu-min-zero": (
        with_group(1, min_replicas=0),
        "node_groups[1].min_replicas",
        "gpu_min_zero",
        "at least 1 node",
    ),
    "disk-small": (
        with_group(0, disk_gib=5),
        "node_groups[0].disk_gib",
        "out_of_range",
        "from 10 to 2048",
    ),
    "disk-huge": (
        with_group(0, disk_gib=4096),
        "node_groups[0].disk_gib",
        "out_of_range",
        "from 10 to 2048",
    ),
    "role-unknown": (
        with_group(1, roles=("worker",)),
        "node_groups[1].roles",
        "invalid_choice",
        "the only role is ingress-nginx",
    ),
    "role-duplicate": (
        with_group(0, roles=("ingress-nginx", "ingress-nginx")),
        "node_groups[0].roles",
        "duplicate",
        "only once",
    ),
    "no-groups": (replace(BASE, node_groups=()), "node_groups", "required", "at least one"),
    "version-patch": (replace(BASE, version="v1.30.0"), "version", "invalid_choice", "major.minor"),
    "version-no-v": (replace(BASE, version="1.30.3"), "version", "invalid_choice", "v1.35"),
    "version-unknown": (replace(BASE, version="v1.29"), "version", "invalid_choice", "not offered"),
    "cp-replicas-zero": (
        replace(BASE, control_plane=ControlPlaneSpec(replicas=0)),
        "control_plane.replicas",
        "out_of_range",
        "from 1 to 5",
    ),
    "cp-replicas-six": (
        replace(BASE, control_plane=ControlPlaneSpec(replicas=6)),
        "control_plane.replicas",
        "out_of_range",
        "from 1 to 5",
    ),
    "cp-preset-unknown": (
        replace(BASE, control_plane=ControlPlaneSpec(scheduler_preset="huge")),
        "control_plane.scheduler_preset",
        "invalid_choice",
        "t1.nano, t1.micro",
    ),
    "storage-class-unknown": (
        replace(BASE, storage_class="ssd"),
        "storage_class",
        "invalid_choice",
        "replicated, replicated-async, local",
    ),
    "host-invalid": (replace(BASE, host="not a host"), "host", "invalid_host", "DNS name"),
    "host-single-label": (replace(BASE, host="localhost"), "host", "invalid_host", "DNS name"),
    "host-wildcard": (replace(BASE, host="*.example.com"), "host", "invalid_host", "DNS name"),
    "addon-unknown": (
        replace(BASE, addons=(*BASE.addons, AddonSpec("istio", True))),
        "addons.istio",
        "invalid_choice",
        "Unknown add-on",
    ),
    "addon-duplicate": (
        replace(BASE, addons=(*BASE.addons, AddonSpec("velero", False))),
        "addons.velero",
        "duplicate",
        "listed twice",
    ),
    "expose-method-unknown": (
        with_addon("ingressNginx", expose_method="NodePort"),
        "addons.ingressNginx.expose_method",
        "invalid_choice",
        "Proxied or LoadBalancer",
    ),
    "ingress-host-invalid": (
        with_addon("ingressNginx", hosts=("ok.example.com", "Bad_Host")),
        "addons.ingressNginx.hosts[1]",
        "invalid_host",
        "DNS name",
    ),
    "ingress-host-duplicate": (
        with_addon("ingressNginx", hosts=("a.example.com", "a.example.com")),
        "addons.ingressNginx.hosts[1]",
        "duplicate",
        "listed twice",
    ),
    "ingress-hosts-with-loadbalancer": (
        with_addon("ingressNginx", expose_method="LoadBalancer"),
        "addons.ingressNginx.hosts",
        "hosts_need_proxied",
        "only used with the Proxied",
    ),
    "ingress-without-ingress-nodes": (
        with_group(0, roles=()),
        "addons.ingressNginx.enabled",
        "ingress_needs_nodes",
        "ingress-nginx role",
    ),
    "gpu-without-operator": (
        with_addon("gpuOperator", enabled=False),
        "addons.gpuOperator.enabled",
        "gpu_operator_required",
        "GPU operator must be enabled",
    ),
    "values-camelcase-root": (
        with_addon("ingressNginx", values_override={"ingressNginx": {"controller": {}}}),
        "addons.ingressNginx.values_override",
        "camelcase_values_root",
        "silently ignores “ingressNginx:”",
    ),
    "values-camelcase-fluentbit": (
        with_addon("monitoringAgents", values_override={"fluentbit": {}}),
        "addons.monitoringAgents.values_override",
        "camelcase_values_root",
        "“fluent-bit:”",
    ),
    "values-missing-root": (
        with_addon("certManager", values_override={"replicaCount": 2}),
        "addons.certManager.values_override",
        "unknown_values_root",
        "nest custom values under “cert-manager:”",
    ),
    "values-wrong-addon-root": (
        with_addon("velero", values_override={"cert-manager": {}}),
        "addons.velero.values_override",
        "unknown_values_root",
        "“velero:”",
    ),
    "values-not-mapping": (
        with_addon("velero", values_override=["velero"]),
        "addons.velero.values_override",
        "invalid_values_override",
        "must be a mapping",
    ),
    "values-root-not-mapping": (
        with_addon("velero", values_override={"velero": "on"}),
        "addons.velero.values_override",
        "invalid_values_override",
        "must hold a mapping",
    ),
    "values-not-json": (
        with_addon("velero", values_override={"velero": {"when": object()}}),
        "addons.velero.values_override",
        "invalid_values_override",
        "text, numbers",
    ),
    "values-on-gateway-api": (
        with_addon("gatewayAPI", values_override={"gateway": {}}),
        "addons.gatewayAPI.values_override",
        "not_supported",
        "takes no custom values",
    ),
    "vpa-values-without-monitoring": (
        with_addon("monitoringAgents", enabled=False),
        "addons.verticalPodAutoscaler.values_override",
        "vpa_without_monitoring",
        "only installed with monitoring agents",
    ),
}


@pytest.mark.parametrize(("spec", "field", "code", "words"), NEGATIVE.values(), ids=NEGATIVE)
def test_portal_rules_refuse_with_a_readable_field_error(spec, field, code, words):
    errors = check_cluster_spec(spec, creating=True, dialect=V13)
    matching = [e for e in errors if e.field == field and e.code == code]
    assert matching, errors
    message = matching[0].message
    assert words in message
    assert message[0].isupper() and message.endswith(".")


def test_the_base_of_the_negative_cases_is_valid():
    assert validate_manifest(BASE, SCHEMA, creating=True, dialect=V13) == []


@pytest.mark.parametrize(
    ("spec", "field", "code", "words"),
    [NEGATIVE[k] for k in ("name-uppercase", "min-gt-max", "version-patch", "gpu-min-zero")],
)
def test_validate_manifest_reports_portal_rules_too(spec, field, code, words):
    assert (field, code) in [
        (e.field, e.code) for e in validate_manifest(spec, SCHEMA, creating=True, dialect=V13)
    ]


def test_monitoring_agents_need_a_monitoring_stack_when_known():
    errors = check_cluster_spec(BASE, creating=True, dialect=V13, monitoring_available=False)
    assert fields(errors) == ["addons.monitoringAgents.enabled"]
    assert "monitoring stack" in errors[0].message
    assert check_cluster_spec(BASE, creating=True, dialect=V13, monitoring_available=True) == []


def test_injected_catalogues_replace_the_bundled_ones():
    errors = check_cluster_spec(
        BASE, creating=True, dialect=V13, instance_types=["u1.large"], versions=["v1.35"]
    )
    assert sorted(fields(errors)) == ["node_groups[1].instance_type", "version"]


# --------------------------------------------------------------------------- edits

PREVIOUS = replace(BASE, version="v1.33", host="k8s.example.com")


@pytest.mark.parametrize(
    ("changes", "field", "code", "words"),
    [
        ({"name": "other"}, "name", "immutable", "cannot be renamed"),
        ({"storage_class": "local"}, "storage_class", "immutable", "cannot change"),
        ({"host": ""}, "host", "immutable", "cannot change"),
        ({"version": "v1.32"}, "version", "version_downgrade", "cannot be downgraded"),
        ({"version": "v1.35"}, "version", "version_skip", "next version is v1.34"),
    ],
)
def test_edits_refuse_immutable_and_unsafe_changes(changes, field, code, words):
    errors = check_cluster_spec(replace(PREVIOUS, **changes), dialect=V13, creating=False,
                                previous=PREVIOUS)
    assert [(e.field, e.code) for e in errors] == [(field, code)]
    assert words in errors[0].message


def test_edits_allow_the_next_minor_and_scaling():
    new = replace(PREVIOUS, version="v1.34")
    new = replace(new, node_groups=(replace(new.node_groups[0], max_replicas=9),))
    new = replace(new, addons=tuple(a for a in new.addons if a.key != "gpuOperator"))
    assert check_cluster_spec(new, dialect=V13, creating=False, previous=PREVIOUS) == []


def test_edit_of_a_retired_version_says_to_upgrade():
    old = replace(PREVIOUS, version="v1.29")
    errors = check_cluster_spec(old, dialect=V13, creating=False, previous=old)
    assert [(e.field, e.code) for e in errors] == [("version", "version_retired")]
    assert "upgrade to v1.30 first" in errors[0].message
    assert check_cluster_spec(replace(old, version="v1.30"), dialect=V13, creating=False,
                              previous=old) == []


def test_a_renamed_group_is_refused_when_the_form_reports_it():
    new = with_group(1, name="gpus")
    errors = check_cluster_spec(new, dialect=V13, creating=False, previous=BASE,
                                renamed_groups={"gpu": "gpus"})
    assert [(e.field, e.code) for e in errors] == [("node_groups[1].name", "immutable")]
    assert "add a new group and remove the old one" in errors[0].message


def test_name_rules_are_only_checked_on_create():
    legacy = replace(BASE, name="x" * 45, node_groups=(group("a"),))
    assert "name" not in fields(check_cluster_spec(legacy, dialect=V13, creating=False,
                                                   previous=legacy))


# --------------------------------------------------------------------------- schema error wording


def broken(**group_changes) -> dict:
    rendered = render_spec(MATRIX["several-groups"], V13)
    rendered["nodeGroups"]["workers"].update(group_changes)
    return rendered


@pytest.mark.parametrize(
    ("rendered", "with_spec", "field", "message"),
    [
        (
            broken(minReplicas="x"),
            True,
            "node_groups[1].min_replicas",
            "Node group workers: minimum nodes must be a whole number.",
        ),
        (
            broken(minReplicas="x"),
            False,
            "nodeGroups.workers.minReplicas",
            "Node group workers: minimum nodes must be a whole number.",
        ),
        (
            broken(ephemeralStorage="lots"),
            True,
            "node_groups[1].disk_gib",
            "Node group workers: disk size “lots” is not a valid amount; write it like 50Gi.",
        ),
        (
            broken(ephemeralStorage={"size": "50Gi"}),
            True,
            "node_groups[1].disk_gib",
            "Node group workers: disk size must be a whole number or an amount such as 50Gi.",
        ),
        (
            broken(resources={"cpu": "four"}),
            True,
            "node_groups[1].cpu",
            "Node group workers: CPU “four” is not a valid amount; write it like 4 or 500m.",
        ),
        (
            broken(gpus=[{"model": "x"}]),
            True,
            "node_groups[1].gpus",
            "Node group workers: GPU entry is missing the required setting “name”.",
        ),
    ],
)
def test_schema_errors_map_to_portal_fields_in_words(rendered, with_spec, field, message):
    spec = MATRIX["several-groups"] if with_spec else None
    errors = validate_against_schema(rendered, SCHEMA, spec=spec, dialect=V13)
    assert (field, message) in [(e.field, e.message) for e in errors], errors


def test_missing_resources_is_reported_on_the_group():
    rendered = broken()
    del rendered["nodeGroups"]["workers"]["resources"]
    spec = MATRIX["several-groups"]
    errors = validate_against_schema(rendered, SCHEMA, spec=spec, dialect=V13)
    assert [(e.field, e.code) for e in errors] == [("node_groups[1]", "schema_required")]
    assert errors[0].message == "Node group workers is missing the required setting “resources”."


@pytest.mark.parametrize(
    ("path", "value", "field", "words"),
    [
        (("version",), "v1.29", "version", "Kubernetes version “v1.29” is not allowed"),
        (("storageClass",), 5, "storage_class", "Storage class must be text"),
        (("controlPlane", "replicas"), "two", "control_plane.replicas", "whole number"),
        (
            ("controlPlane", "apiServer", "resourcesPreset"),
            "huge",
            "control_plane.api_server_preset",
            "API server: size preset “huge” is not allowed",
        ),
        (
            ("controlPlane", "konnectivity", "server", "resourcesPreset"),
            "huge",
            "control_plane.konnectivity_preset",
            "Konnectivity server",
        ),
        (
            ("addons", "ingressNginx", "exposeMethod"),
            "NodePort",
            "addons.ingressNginx.expose_method",
            "Add-on Ingress NGINX: expose method “NodePort” is not allowed",
        ),
        (
            ("addons", "ingressNginx", "hosts"),
            ["ok.example.com", 7],
            "addons.ingressNginx.hosts[1]",
            "host must be text",
        ),
        (
            ("addons", "velero", "enabled"),
            "yes",
            "addons.velero.enabled",
            "on or off",
        ),
        (
            ("addons", "certManager", "valuesOverride"),
            [],
            "addons.certManager.values_override",
            "custom values must be a mapping",
        ),
    ],
)
def test_schema_errors_outside_node_groups(path, value, field, words):
    rendered = render_spec(cluster(), V13)
    target = rendered
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    errors = validate_against_schema(rendered, SCHEMA, dialect=V13)
    assert any(e.field == field and words in e.message for e in errors), errors


def test_schema_declared_draft_is_honoured():
    schema = copy.deepcopy(SCHEMA)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    assert validate_against_schema(render_spec(cluster(), V13), schema, dialect=V13) == []
    rendered = render_spec(cluster(), V13)
    rendered["version"] = "v9.99"
    assert fields(validate_against_schema(rendered, schema, dialect=V13)) == ["version"]


def test_validate_manifest_prefers_the_portal_sentence_for_a_field():
    spec = replace(BASE, version="v1.29")
    errors = [e for e in validate_manifest(spec, SCHEMA, creating=True, dialect=V13)
              if e.field == "version"]
    assert [e.code for e in errors] == ["invalid_choice"]


def test_validate_manifest_follows_the_live_schema_version_enum():
    live = copy.deepcopy(SCHEMA)
    live["properties"]["version"]["enum"] = ["v1.36", "v1.35", "v1.34"]
    assert allowed_versions_from_schema(live, V13) == ("v1.36", "v1.35", "v1.34")
    assert validate_manifest(replace(BASE, version="v1.36"), live, creating=True, dialect=V13) == []
    errors = validate_manifest(replace(BASE, version="v1.33"), live, creating=True, dialect=V13)
    assert fields(errors) == ["version"]


def test_schema_from_application_definition():
    import json

    app_def = {"spec": {"application": {"openAPISchema": json.dumps(SCHEMA)}}}
    assert schema_from_application_definition(app_def) == SCHEMA
    with pytest.raises(ValueError, match="openAPISchema"):
        schema_from_application_definition({"spec": {}})
    not_an_object = {"spec": {"application": {"openAPISchema": "[1, 2]"}}}
    with pytest.raises(ValueError, match="not an object"):
        schema_from_application_definition(not_an_object)


# --------------------------------------------------------------------------- change wording


@pytest.mark.parametrize(
    ("changes", "replaces"),
    [
        ({"instance_type": "u1.xlarge"}, True),
        ({"disk_gib": 100}, True),
        ({"instance_type": "", "cpu": "4", "memory": "16Gi"}, True),
        ({"roles": ()}, True),
        ({"gpus": (L40S,)}, True),
        ({"min_replicas": 2}, False),
        ({"max_replicas": 9}, False),
        ({"roles": ("ingress-nginx",)}, False),
        ({}, False),
    ],
)
def test_requires_node_replacement(changes, replaces):
    old = group()
    assert requires_node_replacement(old, replace(old, **changes)) is replaces


def test_instance_type_change_replaces_all_nodes_and_bounds_the_peak():
    old = cluster(group(lo=3, hi=3))
    new = cluster(group(instance_type="u1.xlarge", lo=3, hi=3))
    changes = cluster_changes(old, new, node_counts={"md0": 3})
    assert [c.message for c in changes] == [
        "node group md0: all 3 nodes replaced (instance type u1.large → u1.xlarge); "
        "up to 6 nodes during the change"
    ]
    assert changes[0].replaces_nodes
    assert changes[0].field == "node_groups[md0]"


def test_replacement_without_counts_and_with_gpus():
    old = cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)))
    new = cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S, L40S)))
    (change,) = cluster_changes(old, new)
    assert change.message == (
        "node group gpu: all nodes replaced (GPUs 1× NVIDIA L40S → 2× NVIDIA L40S); "
        "up to 2 extra nodes during the change"
    )
    (change,) = cluster_changes(old, new, node_counts={"gpu": 1})
    assert change.message.endswith("up to 3 nodes during the change (6 GPUs)")


def test_min_max_change_is_autoscaler_only():
    old = cluster(group(lo=1, hi=3))
    new = cluster(group(lo=2, hi=5))
    changes = cluster_changes(old, new)
    assert [c.message for c in changes] == [
        "node group md0: min/max 1–3 → 2–5: autoscaler limits only, no replacement"
    ]
    assert not changes[0].replaces_nodes


def test_version_upgrade_wording():
    changes = cluster_changes(cluster(version="v1.33"), cluster(version="v1.34"))
    assert len(changes) == 1
    assert changes[0].field == "version"
    assert changes[0].message.startswith(
        "version v1.33 → v1.34: control plane upgraded first, then every node group is rolled"
    )
    assert changes[0].replaces_nodes


def test_group_added_and_removed():
    old = cluster(group(), group("old", "u1.large", 1, 2))
    new = cluster(group(), group("gpu", "u1.2xlarge", 1, 1, gpus=(H100,)))
    messages = [c.message for c in cluster_changes(old, new, node_counts={"old": 2}, dialect=V13)]
    assert messages == [
        "node group gpu added: 1–1 nodes of u1.2xlarge with 1× NVIDIA H100 per node; "
        "the platform starts it with 2 nodes, then the autoscaler applies the limits",
        "node group old removed: its 2 nodes are drained and deleted",
    ]


def test_control_plane_and_addon_wording():
    old = cluster(addons=(AddonSpec("ingressNginx", True, hosts=("a.example.com",)),))
    new = cluster(
        control_plane=ControlPlaneSpec(replicas=3, api_server_preset="xlarge"),
        addons=(
            AddonSpec("ingressNginx", True, expose_method="LoadBalancer"),
            AddonSpec("velero", True),
            AddonSpec("certManager", False, {"cert-manager": {"x": 1}}),
        ),
    )
    messages = [c.message for c in cluster_changes(old, new)]
    assert messages == [
        "control plane replicas 2 → 3: API server pods added or removed; nodes are not touched",
        "control plane API server preset c1.medium → c1.large (2 CPU/2Gi → 4 CPU/4Gi): its "
        "pods "
        "restart one at a time; nodes are not touched",
        "add-on cert-manager: custom values changed; its release is upgraded",
        "add-on Ingress NGINX: expose method Proxied → LoadBalancer: takes a public IP address",
        "add-on Ingress NGINX: hosts removed a.example.com",
        "add-on Velero enabled: installed into the cluster",
    ]


def test_disabling_monitoring_mentions_vpa():
    old = cluster(addons=(AddonSpec("monitoringAgents", True),))
    (change,) = cluster_changes(old, cluster())
    assert change.message == (
        "add-on Monitoring agents disabled: removed from the cluster "
        "(with the Vertical Pod Autoscaler)"
    )


def test_immutable_changes_are_described_as_refused():
    changes = cluster_changes(cluster(), cluster(storage_class="local"))
    assert [c.message for c in changes] == [
        "storage class replicated → local: cannot change after creation"
    ]


def test_no_change_no_words():
    assert cluster_changes(BASE, BASE) == []
    round_tripped = spec_from_platform(render_kubernetes(BASE, V13), V13)
    assert cluster_changes(BASE, round_tripped) == []
