"""Conformance of each dialect with its release: every spec the portal accepts renders, once Helm
has merged it over that release's ``values.yaml``, into values its upstream schema accepts and
its chart renders without a ``fail``; every spec a chart would fail on is refused first, beside
the field, in words.

The oracle is the chart as the simulator reproduces it (the release's own schema, values.yaml
and render guards, ``cozystack.simulator``); the portal itself never imports the simulator.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest

from cozystack import catalog, dialects
from cozystack.helm import apply_defaults, coalesce, prune_nulls
from cozystack.simulator.releases import load_release
from cozystack.simulator.render import RenderContext, failure
from cozystack.simulator.schema import validate
from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
    NodeGroupSpec,
    OidcUserSpec,
)
from cozystack.validation import check_cluster_spec, validate_manifest

V13, V16 = dialects.v13(), dialects.v16()
RELEASE = {V13: "1.3.6", V16: "1.6.2"}
L40S = "nvidia.com/AD102GL_L40S"
A100 = "nvidia.com/GA100_A100_PCIE_80GB"


def chart_verdict(dialect: dialects.Dialect, rendered: dict[str, Any]) -> list[str]:
    """What Helm says of a rendered spec on the dialect's reference release: schema problems,
    else the render guard it stops at (empty: it installs)."""
    release = load_release(RELEASE[dialect])
    merged = coalesce(rendered, release.chart_values())
    problems = validate(release.schema, merged)
    if problems:
        return problems
    context = RenderContext("tenant-acme", True, True, release.instance_types)
    stopped = failure(release, merged, context)
    return [stopped] if stopped else []


def group(name: str = "md0", instance_type: str = "u1.large", lo: int = 1, hi: int = 3,
          **kw: Any) -> NodeGroupSpec:
    kw.setdefault("disk_gib", 50)
    kw.setdefault("roles", ("ingress-nginx",) if name == "md0" else ())
    return NodeGroupSpec(name, instance_type, lo, hi, **kw)


def cluster(*groups: NodeGroupSpec, **kw: Any) -> ClusterSpec:
    kw.setdefault("version", "v1.34")
    return ClusterSpec(name=kw.pop("name", "demo"), namespace="tenant-acme",
                       node_groups=groups or (group(),), **kw)


def every_addon(offer: catalog.Catalogue) -> tuple[AddonSpec, ...]:
    """Every add-on of the release on, with custom values under its own root."""
    return tuple(
        AddonSpec(a.key, True, {a.value_roots[0]: {"custom": True}} if a.value_roots else {},
                  expose_method="Proxied",
                  hosts=("app.example.com",) if a.key == catalog.INGRESS_NGINX else ())
        for a in offer.addons
    )


# --------------------------------------------------------------------------- the matrices

COMMON: dict[str, ClusterSpec] = {
    "one-group": cluster(),
    "no-roles": cluster(group(roles=())),
    "several-groups": cluster(group(), group("workers", "s1.xlarge", 2, 10, disk_gib=100),
                              group("memory", "m1.2xlarge", 0, 4, disk_gib=200)),
    "gpu-group": cluster(group(), group("gpu", "u1.2xlarge", 1, 2, disk_gib=100, gpus=(L40S,)),
                         addons=(AddonSpec("gpuOperator", True),)),
    "multi-gpu": cluster(group(), group("gpu", "u1.8xlarge", 1, 1, gpus=(A100, A100, L40S)),
                         addons=(AddonSpec("gpuOperator", True),)),
    "custom-size": cluster(group(), group("custom", "", 1, 2, cpu="6", memory="24Gi")),
    "custom-size-only": cluster(group(instance_type="", cpu="500m", memory="2Gi")),
    "no-md0": cluster(group("general", "u1.xlarge", 1, 5, roles=("ingress-nginx",))),
    "ingress-proxied": cluster(addons=(AddonSpec("ingressNginx", True,
                                                 hosts=("app.example.com",)),)),
    "ingress-loadbalancer": cluster(addons=(AddonSpec("ingressNginx", True,
                                                      expose_method="LoadBalancer"),)),
    "addons-off-with-values": cluster(addons=(
        AddonSpec("certManager", False, {"cert-manager": {"a": 1}}),
        AddonSpec("ingressNginx", False, hosts=("later.example.com",)))),
    "monitoring-and-vpa": cluster(addons=(
        AddonSpec("monitoringAgents", True, {"vmagent": {}}),
        AddonSpec("verticalPodAutoscaler", False, {"vertical-pod-autoscaler": {}}))),
    "custom-host": cluster(host="k8s.acme.example.com"),
    "control-plane": cluster(control_plane=ControlPlaneSpec(5, "c1.xlarge", "t1.small",
                                                            "t1.nano", "c1.small")),
    "control-plane-single": cluster(control_plane=ControlPlaneSpec(replicas=1)),
    "limits": cluster(group(lo=100, hi=100, disk_gib=2048)),
    "long-names": cluster(group("g" * 9), name="c" + "x" * 29),
    "zero-min": cluster(group(lo=0, hi=1), group("batch", "u1.xlarge", 0, 20)),
}
for _storage in catalog.STORAGE_CLASSES:
    COMMON[f"storage-{_storage.name}"] = cluster(storage_class=_storage.name)

V13_ONLY: dict[str, ClusterSpec] = {
    f"version-{v}": cluster(version=v) for v in V13.catalogue.version_names()
}
V13_ONLY["every-addon"] = cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)),
                                  addons=every_addon(V13.catalogue))
V13_ONLY["legacy-sized-presets"] = cluster(control_plane=ControlPlaneSpec(
    2, "c1.medium", "t1.micro", "t1.micro", "t1.micro"))

KUBELET = KubeletSpec("512Mi", "100m", "512Mi", "100m", "5%", "10%")
V16_ONLY: dict[str, ClusterSpec] = {
    f"version-{v}": cluster(version=v) for v in V16.catalogue.version_names()
}
V16_ONLY.update({
    "every-addon": cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)),
                           addons=every_addon(V16.catalogue)),
    "fractional-gpus": cluster(group(), group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)),
                               addons=(AddonSpec("gpuOperator", True), AddonSpec("hami", True))),
    "ouroboros": cluster(addons=(AddonSpec("ingressNginx", True), AddonSpec("ouroboros", True))),
    "ouroboros-gateway": cluster(addons=(
        AddonSpec("ingressNginx", True), AddonSpec("gatewayAPI", True),
        AddonSpec("ouroboros", True, {"ouroboros": {"controller": {"gatewayApi": {
            "enabled": True}}}}))),
    "fluxcd-deprecated-still-works": cluster(addons=(AddonSpec("fluxcd", True),)),
    "per-group-storage": cluster(group(storage_class="replicated-async"),
                                 group("fast", "u1.xlarge", 1, 2, storage_class="local")),
    "auto-repair-custom": cluster(auto_repair=AutoRepairSpec(True, "33%", "20m")),
    "auto-repair-count": cluster(auto_repair=AutoRepairSpec(True, "1", "1h30m")),
    "auto-repair-off": cluster(auto_repair=AutoRepairSpec(enabled=False)),
    "auto-repair-per-group": cluster(group(max_unhealthy="100%", node_startup_timeout="15m"),
                                     group("batch", "u1.xlarge", 1, 4, max_unhealthy="1")),
    "kubelet-reservations": cluster(group(kubelet=KUBELET)),
    "kubelet-absolute-eviction": cluster(group(kubelet=KubeletSpec(
        eviction_hard_memory="200Mi", eviction_soft_memory="1Gi"))),
    "kubelet-custom-size": cluster(group(instance_type="", cpu="8", memory="32Gi",
                                         kubelet=KubeletSpec(system_reserved_memory="2Gi",
                                                             kube_reserved_cpu="500m"))),
    "oidc-users": cluster(oidc_users=(OidcUserSpec("bob@example.com", "view"),
                                      OidcUserSpec("alice@example.com", "admin"))),
    "dedicated-and-hugepages": cluster(group(instance_type="d1.large"),
                                       group("huge", "m1.xlarge1gi", 1, 2),
                                       group("cx", "cx1.large", 1, 1)),
    "new-family-presets": cluster(control_plane=ControlPlaneSpec(
        3, "u1.medium", "s1.small", "m1.nano", "c1.micro")),
    "everything": cluster(
        group(storage_class="replicated", max_unhealthy="50%", node_startup_timeout="10m",
              kubelet=KUBELET),
        group("gpu", "u1.2xlarge", 1, 2, gpus=(L40S,)),
        group("custom", "", 1, 2, cpu="4", memory="16Gi"),
        host="k8s.acme.example.com", auto_repair=AutoRepairSpec(True, "40%", "12m"),
        oidc_users=(OidcUserSpec("alice@example.com", "admin"),),
        control_plane=ControlPlaneSpec(3, "c1.large", "t1.small", "t1.small", "t1.micro"),
        addons=every_addon(V16.catalogue)),
})

ACCEPTED = [(V13, name, spec) for name, spec in {**COMMON, **V13_ONLY}.items()] + \
    [(V16, name, spec) for name, spec in {**COMMON, **V16_ONLY}.items()]


def _ids(case: tuple[dialects.Dialect, str, ClusterSpec]) -> str:
    return f"{case[0].name}-{case[1]}"


@pytest.mark.parametrize("case", ACCEPTED, ids=[_ids(c) for c in ACCEPTED])
def test_every_accepted_spec_installs_on_its_release(case):
    dialect, _name, spec = case
    schema = dialect.bundled_schema()
    assert validate_manifest(spec, schema, dialect=dialect, creating=True) == []
    assert chart_verdict(dialect, dialect.render_spec(spec)) == []


@pytest.mark.parametrize("case", ACCEPTED, ids=[_ids(c) for c in ACCEPTED])
def test_what_a_get_shows_reads_back_to_the_same_spec(case):
    """GET fills the schema's defaults in (v1.6: talos, images, nodeHealthCheck, oidc...): read
    back, the spec renders exactly as the portal's did, so no default is ever persisted."""
    dialect, _name, spec = case
    rendered = dialect.render_spec(spec)
    shown = apply_defaults(dialect.bundled_schema(), prune_nulls(copy.deepcopy(rendered)))
    back = dialect.spec_from_platform({"metadata": {"name": spec.name,
                                                    "namespace": spec.namespace},
                                       "spec": shown})
    assert dialect.render_spec(back) == rendered
    if dialect is V16:
        assert "talos" in shown and "images" in shown  # what a GET carries ...
        assert "talos" not in rendered and "images" not in rendered  # ... never what we send


def _paths(schema: dict[str, Any], prefix: str = "") -> set[str]:
    paths = set()
    for key, sub in (schema.get("properties") or {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if sub.get("x-kubernetes-preserve-unknown-fields"):
            continue
        paths |= _paths(sub, f"{path}.")
        extra = sub.get("additionalProperties")
        if isinstance(extra, dict):
            paths |= _paths(extra, f"{path}.*.")
        if isinstance(sub.get("items"), dict):
            paths |= _paths(sub["items"], f"{path}[].")
    return paths


def _rendered_paths(value: Any, prefix: str = "", *, maps: tuple[str, ...] = ("nodeGroups",)
                    ) -> set[str]:
    paths: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            if item is None:
                continue
            name = "*" if prefix.rstrip(".") in maps else key
            path = f"{prefix}{name}"
            paths.add(path)
            if key != "valuesOverride":
                paths |= _rendered_paths(item, f"{path}.", maps=maps)
    elif isinstance(value, list):
        for item in value:
            paths |= _rendered_paths(item, f"{prefix.rstrip('.')}[].", maps=maps)
    return paths


# What the portal deliberately never sends (PLATFORM-v1.6.md rows 1, 11, 14, 20, 28).
NEVER_SENT = {
    "talos", "images",  # operator-level: sending them would pin a Talos release (rows 1, 14, 18)
    "controlPlane.apiServer.extraArgs", "controlPlane.apiServer.extraVolumes",
    "controlPlane.apiServer.extraVolumeMounts",  # operator-only passthrough (row 11)
    "oidc.customConfig",  # the portal offers System mode only (row 20)
}
PORTAL_SENDS_EMPTY = {
    # control-plane resources: presets only (explicit CPU/memory are not offered)
    "controlPlane.apiServer.resources", "controlPlane.controllerManager.resources",
    "controlPlane.scheduler.resources", "controlPlane.konnectivity.server.resources",
}


@pytest.mark.parametrize("dialect", [V13, V16], ids=["v1.3", "v1.6"])
def test_the_matrix_covers_every_field_and_addon_of_the_schema(dialect):
    matrix = {**COMMON, **(V13_ONLY if dialect is V13 else V16_ONLY)}
    rendered: set[str] = set()
    for spec in matrix.values():
        rendered |= _rendered_paths(dialect.render_spec(spec))
    wanted = {p for p in _paths(dialect.bundled_schema())
              if not any(p == skip or p.startswith(skip + ".")
                         for skip in NEVER_SENT | PORTAL_SENDS_EMPTY)}
    assert sorted(wanted - rendered) == []
    enabled = {a.key for spec in matrix.values() for a in spec.addons if a.enabled}
    switchable = {a.key for a in dialect.catalogue.addons if a.has_enabled}
    assert switchable <= enabled


# --------------------------------------------------------------------------- refusals


@dataclasses.dataclass(frozen=True)
class Refusal:
    spec: ClusterSpec
    field: str
    code: str
    words: str
    chart_fails: bool  # the release's chart stops on it too (the guard it mirrors)


def _eviction(hard: str, soft: str) -> ClusterSpec:
    return cluster(group(kubelet=KubeletSpec(eviction_hard_memory=hard,
                                             eviction_soft_memory=soft)))


V16_REFUSALS: dict[str, Refusal] = {
    "cpu-without-memory": Refusal(
        cluster(group(cpu="4")), "node_groups[0].cpu", "size_conflict", "cannot be combined",
        True),
    "memory-without-cpu": Refusal(
        cluster(group(memory="8Gi")), "node_groups[0].memory", "size_conflict",
        "cannot be combined", True),
    "custom-cpu-only": Refusal(
        cluster(group(instance_type="", cpu="4")), "node_groups[0].memory", "required",
        "both CPU and memory", False),
    "hard-equals-soft": Refusal(
        _eviction("10%", "10%"), "node_groups[0].kubelet.eviction_hard_memory",
        "eviction_order", "must be below the soft one", True),
    "hard-above-soft": Refusal(
        _eviction("2Gi", "1Gi"), "node_groups[0].kubelet.eviction_hard_memory",
        "eviction_order", "must be below the soft one", True),
    "mixed-eviction-units": Refusal(
        _eviction("500Mi", "10%"), "node_groups[0].kubelet.eviction_hard_memory",
        "eviction_units", "both be percentages", True),
    "eviction-over-100": Refusal(
        _eviction("7%", "150%"), "node_groups[0].kubelet.eviction_soft_memory",
        "invalid_quantity", "at most 100%", True),
    "eviction-not-an-amount": Refusal(
        _eviction("lots", "10%"), "node_groups[0].kubelet.eviction_hard_memory",
        "invalid_quantity", "percentage", True),
    "reserved-memory-fills-the-node": Refusal(
        cluster(group(instance_type="u1.medium", kubelet=KubeletSpec(
            system_reserved_memory="2Gi", kube_reserved_memory="2Gi")), ),
        "node_groups[0].kubelet.system_reserved_memory", "kubelet_exceeds_node",
        "must leave room on the node (4 GiB)", True),
    "reserved-cpu-fills-the-node": Refusal(
        cluster(group(instance_type="u1.medium", kubelet=KubeletSpec(
            system_reserved_cpu="600m", kube_reserved_cpu="500m"))),
        "node_groups[0].kubelet.system_reserved_cpu", "kubelet_exceeds_node",
        "must leave room on the node (1 CPU)", True),
    "reserved-memory-not-a-quantity": Refusal(
        cluster(group(kubelet=KubeletSpec(system_reserved_memory="1 GB"))),
        "node_groups[0].kubelet.system_reserved_memory", "invalid_quantity", "512Mi", True),
    "reserved-cpu-zero": Refusal(
        cluster(group(kubelet=KubeletSpec(kube_reserved_cpu="0"))),
        "node_groups[0].kubelet.kube_reserved_cpu", "invalid_quantity", "positive", True),
    "cluster-max-unhealthy-words": Refusal(
        cluster(auto_repair=AutoRepairSpec(True, "half", "10m")),
        "auto_repair.max_unhealthy", "invalid", "percentage", True),
    "group-max-unhealthy-fraction": Refusal(
        cluster(group(max_unhealthy="5.5%")), "node_groups[0].max_unhealthy", "invalid",
        "whole number", True),
    "max-unhealthy-over-100": Refusal(
        cluster(group(max_unhealthy="150%")), "node_groups[0].max_unhealthy", "invalid",
        "0% to 100%", False),
    "startup-timeout-words": Refusal(
        cluster(auto_repair=AutoRepairSpec(True, "50%", "ten minutes")),
        "auto_repair.node_startup_timeout", "invalid", "duration", False),
    "hami-without-gpu-operator": Refusal(
        cluster(addons=(AddonSpec("hami", True),)), "addons.hami.enabled", "addon_requires",
        "needs NVIDIA GPU operator", True),
    "ouroboros-without-ingress": Refusal(
        cluster(addons=(AddonSpec("ouroboros", True),)), "addons.ouroboros.enabled",
        "addon_requires", "needs Ingress NGINX", True),
    "ouroboros-gateway-without-gateway-api": Refusal(
        cluster(addons=(AddonSpec("ingressNginx", True), AddonSpec("ouroboros", True, {
            "ouroboros": {"controller": {"gatewayApi": {"enabled": True}}}}))),
        "addons.ouroboros.values_override", "ouroboros_needs_gateway_api", "Gateway API", True),
    "version-retired-in-v1.6": Refusal(
        cluster(version="v1.30"), "version", "invalid_choice", "v1.35, v1.34", True),
    "unknown-instance-type": Refusal(
        cluster(group(instance_type="x9.large")), "node_groups[0].instance_type",
        "invalid_choice", "does not exist", True),
    "unknown-storage-class-per-group": Refusal(
        cluster(group(storage_class="gold")), "node_groups[0].storage_class", "invalid_choice",
        "does not exist", False),
    "oidc-not-an-email": Refusal(
        cluster(oidc_users=(OidcUserSpec("bob", "view"),)), "oidc_users[0].email", "invalid",
        "not an email", False),
    "oidc-unknown-role": Refusal(
        cluster(oidc_users=(OidcUserSpec("bob@example.com", "owner"),)), "oidc_users[0].role",
        "invalid_choice", "admin or view", True),
    "oidc-twice": Refusal(
        cluster(oidc_users=(OidcUserSpec("bob@example.com", "view"),
                            OidcUserSpec("Bob@example.com", "admin"))),
        "oidc_users[1].email", "duplicate", "listed twice", False),
    "unknown-preset": Refusal(
        cluster(control_plane=ControlPlaneSpec(api_server_preset="z1.huge")),
        "control_plane.api_server_preset", "invalid_choice", "does not exist", True),
}

V13_REFUSALS: dict[str, Refusal] = {
    "per-group-storage": Refusal(
        cluster(group(storage_class="local")), "node_groups[0].storage_class", "not_supported",
        "newer platform release", False),
    "per-group-max-unhealthy": Refusal(
        cluster(group(max_unhealthy="1")), "node_groups[0].max_unhealthy", "not_supported",
        "newer platform release", False),
    "per-group-startup": Refusal(
        cluster(group(node_startup_timeout="20m")), "node_groups[0].node_startup_timeout",
        "not_supported", "newer platform release", False),
    "kubelet": Refusal(
        cluster(group(kubelet=KUBELET)), "node_groups[0].kubelet", "not_supported",
        "newer platform release", False),
    "auto-repair": Refusal(
        cluster(auto_repair=AutoRepairSpec()), "auto_repair", "not_supported",
        "newer platform release", False),
    "oidc": Refusal(
        cluster(oidc_users=(OidcUserSpec("bob@example.com"),)), "oidc_users", "not_supported",
        "newer platform release", False),
    "hami": Refusal(
        cluster(addons=(AddonSpec("gpuOperator", True), AddonSpec("hami", True))),
        "addons.hami.enabled", "not_supported", "not offered by this platform release", False),
    "ouroboros": Refusal(
        cluster(addons=(AddonSpec("ingressNginx", True), AddonSpec("ouroboros", True))),
        "addons.ouroboros.enabled", "not_supported", "not offered", False),
    "preset-without-an-old-name": Refusal(
        cluster(control_plane=ControlPlaneSpec(api_server_preset="u1.medium")),
        "control_plane.api_server_preset", "invalid_choice", "not offered by this platform",
        False),
    "cpu-without-memory": Refusal(
        cluster(group(cpu="4")), "node_groups[0].cpu", "size_conflict", "cannot be combined",
        False),
    "unknown-instance-type": Refusal(
        cluster(group(instance_type="x9.large")), "node_groups[0].instance_type",
        "invalid_choice", "does not exist", True),
}

REFUSED = [(V16, name, r) for name, r in V16_REFUSALS.items()] + \
    [(V13, name, r) for name, r in V13_REFUSALS.items()]


@pytest.mark.parametrize("case", REFUSED, ids=[_ids(c) for c in REFUSED])
def test_what_the_chart_would_fail_is_refused_beside_its_field(case):
    dialect, _name, refusal = case
    errors = validate_manifest(refusal.spec, dialect.bundled_schema(), dialect=dialect,
                               creating=True)
    matching = [e for e in errors if (e.field, e.code) == (refusal.field, refusal.code)]
    assert matching, errors
    assert refusal.words in matching[0].message
    if refusal.chart_fails:
        assert chart_verdict(dialect, dialect.render_spec(refusal.spec)) != []


def test_a_deprecated_addon_says_why_and_stays_usable():
    flux = V16.catalogue.get_addon("fluxcd")
    assert "Removed from the platform after v1.6.2" in flux.deprecated
    assert V13.catalogue.get_addon("fluxcd").deprecated == ""
    assert check_cluster_spec(V16_ONLY["fluxcd-deprecated-still-works"], creating=True,
                              dialect=V16) == []


def test_an_addon_the_release_lacks_may_be_listed_off():
    spec = cluster(addons=(AddonSpec("hami", False), AddonSpec("ouroboros", False)))
    assert check_cluster_spec(spec, creating=True, dialect=V13) == []
    assert "hami" not in V13.render_spec(spec)["addons"]


# --------------------------------------------------------------------------- rendering details


def test_v16_sends_the_desired_state_only():
    rendered = V16.render_spec(cluster(group(), group("custom", "", 1, 1, cpu="2",
                                                      memory="4Gi")))
    assert set(rendered) == {"version", "host", "storageClass", "nodeGroups", "controlPlane",
                             "addons"}
    assert rendered["addons"] == {}  # every add-on at the chart's default
    md0, custom = rendered["nodeGroups"]["md0"], rendered["nodeGroups"]["custom"]
    assert "resources" not in md0 and md0["diskSize"] == "50Gi" and "ephemeralStorage" not in md0
    assert custom["resources"] == {"cpu": "2", "memory": "4Gi"} and custom["instanceType"] == ""
    assert rendered["controlPlane"]["apiServer"] == {"resourcesPreset": "c1.medium"}


def test_v16_has_no_md0_quirk_and_v13_keeps_it():
    spec = cluster(group("general", roles=("ingress-nginx",)))
    assert list(V16.render_spec(spec)["nodeGroups"]) == ["general"]
    assert V13.render_spec(spec)["nodeGroups"]["md0"] is None
    v16_values = coalesce(V16.render_spec(spec), load_release("1.6.2").chart_values())
    assert list(load_release("1.6.2").node_groups(v16_values)) == ["general"]


def test_presets_go_out_under_each_releases_names():
    spec = cluster(control_plane=ControlPlaneSpec(2, "c1.medium", "t1.micro", "t1.small",
                                                  "c1.xlarge"))
    v13 = V13.render_spec(spec)["controlPlane"]
    v16 = V16.render_spec(spec)["controlPlane"]
    assert [v13["apiServer"]["resourcesPreset"], v13["scheduler"]["resourcesPreset"],
            v13["konnectivity"]["server"]["resourcesPreset"]] == ["large", "small", "2xlarge"]
    assert v16["apiServer"]["resourcesPreset"] == "c1.medium"
    # An object still carrying an old name reads back under the portal's name.
    back = V16.spec_from_platform({"spec": {"controlPlane": {"apiServer": {
        "resourcesPreset": "xlarge"}}}})
    assert back.control_plane.api_server_preset == "c1.large"


def test_auto_repair_off_never_repairs_and_oidc_is_system_mode():
    spec = cluster(auto_repair=AutoRepairSpec(enabled=False, node_startup_timeout="15m"),
                   oidc_users=(OidcUserSpec("b@example.com", "view"),
                               OidcUserSpec("a@example.com", "admin")))
    rendered = V16.render_spec(spec)
    assert rendered["nodeHealthCheck"] == {"maxUnhealthy": "0%", "nodeStartupTimeout": "15m"}
    assert rendered["oidc"] == {"mode": "System", "users": [
        {"email": "a@example.com", "role": "admin"}, {"email": "b@example.com", "role": "view"}]}


@pytest.mark.parametrize(("dialect", "first"), [(V13, 2), (V16, 1)], ids=["v1.3", "v1.6"])
def test_a_new_group_is_described_as_the_release_starts_it(dialect, first):
    from cozystack.changes import cluster_changes

    before = cluster()
    after = dataclasses.replace(before, node_groups=(*before.node_groups,
                                                     group("more", lo=1, hi=4)))
    (change,) = cluster_changes(before, after, dialect=dialect)
    assert f"starts it with {first} node" in change.message
