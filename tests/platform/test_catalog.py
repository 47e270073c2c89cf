"""The v1.3 catalogue agrees with the platform contract (PLATFORM.md) and its v1.3.6 schema.

(The v1.6 catalogue is checked against its own files in ``test_dialects.py``.)"""

from __future__ import annotations

from decimal import Decimal

import pytest

from cozystack import catalog, dialects

V13 = dialects.v13().catalogue
SCHEMA = catalog.bundled_kubernetes_schema()
SCHEMA_ADDONS = SCHEMA["properties"]["addons"]["properties"]


# --------------------------------------------------------------------------- instance types


@pytest.mark.parametrize(
    ("name", "series", "series_label", "vcpu", "memory_gib", "documented"),
    [
        ("s1.small", "s1", "Standard", 1, Decimal("2"), True),
        ("s1.3large", "s1", "Standard", 12, Decimal("24"), True),
        ("s1.8xlarge", "s1", "Standard", 64, Decimal("128"), True),
        ("u1.medium", "u1", "Universal", 1, Decimal("4"), True),
        ("u1.2xlarge", "u1", "Universal", 8, Decimal("32"), True),
        ("u1.8xlarge", "u1", "Universal", 32, Decimal("128"), True),
        ("m1.large", "m1", "Memory optimized", 2, Decimal("16"), True),
        ("m1.8xlarge", "m1", "Memory optimized", 32, Decimal("256"), True),
        ("u1.nano", "u1", "Universal", 1, Decimal("0.5"), False),
        ("u1.2xmedium", "u1", "Universal", 2, Decimal("4"), False),
    ],
)
def test_instance_type_sizes_match_the_platform_table(
    name, series, series_label, vcpu, memory_gib, documented
):
    item = V13.get_instance_type(name)
    assert item is not None
    assert (item.series, item.series_label, item.vcpu, item.memory_gib, item.documented) == (
        series,
        series_label,
        vcpu,
        memory_gib,
        documented,
    )
    assert isinstance(item.memory_gib, Decimal)


@pytest.mark.parametrize("name", ["m5.large", "", "u1.LARGE", "s1", "nvidia.com/H100_94GB"])
def test_unknown_instance_types_are_not_found(name):
    assert V13.get_instance_type(name) is None


def test_documented_instance_types_come_before_upstream_only_ones():
    flags = [item.documented for item in V13.instance_types]
    assert flags == sorted(flags, reverse=True)
    assert flags.count(False) == 4
    assert len(flags) == 24


def test_instance_type_names_are_unique():
    names = [item.name for item in V13.instance_types]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("name", "label", "memory_bytes"),
    [
        ("u1.large", "u1.large · 2 vCPU · 8 GiB", 8 * 2**30),
        ("u1.nano", "u1.nano · 1 vCPU · 0.5 GiB", 2**29),
    ],
)
def test_instance_type_label_and_memory(name, label, memory_bytes):
    item = V13.get_instance_type(name)
    assert item.label == label
    assert item.memory_bytes == memory_bytes


# --------------------------------------------------------------------------- GPUs


@pytest.mark.parametrize(
    ("name", "model", "memory_gb", "architecture"),
    [
        ("nvidia.com/AD102GL_L40S", "NVIDIA L40S", 48, "Ada Lovelace"),
        ("nvidia.com/GA100_A100_PCIE_80GB", "NVIDIA A100 80GB PCIe", 80, "Ampere"),
        ("nvidia.com/H100_94GB", "NVIDIA H100", 80, "Hopper"),
    ],
)
def test_gpu_models(name, model, memory_gb, architecture):
    gpu = V13.get_gpu_model(name)
    assert (gpu.model, gpu.memory_gb, gpu.architecture) == (model, memory_gb, architecture)
    assert gpu.typical_use


@pytest.mark.parametrize("name", ["L40S", "nvidia.com/l40s", ""])
def test_unknown_gpu_models_are_not_found(name):
    assert V13.get_gpu_model(name) is None


def test_three_gpu_models_are_offered():
    assert len(V13.gpu_models) == 3


# --------------------------------------------------------------------------- versions


def test_versions_are_newest_first_with_pinned_patches():
    assert [(v.name, v.patch) for v in V13.versions] == [
        ("v1.35", "v1.35.1"),
        ("v1.34", "v1.34.4"),
        ("v1.33", "v1.33.8"),
        ("v1.32", "v1.32.12"),
        ("v1.31", "v1.31.14"),
        ("v1.30", "v1.30.14"),
    ]


def test_version_list_matches_the_schema_enum_and_default():
    schema_version = SCHEMA["properties"]["version"]
    assert set(V13.version_names()) == set(schema_version["enum"])
    assert V13.default_version().name == schema_version["default"] == "v1.35"
    assert [v.name for v in V13.versions if v.is_default] == ["v1.35"]


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("v1.30", "v1.31"),
        ("v1.33", "v1.34"),
        ("v1.34", "v1.35"),
        ("v1.35", None),  # newest: nothing to move to
        ("v1.29", "v1.30"),  # retired version can still step into the list
        ("v1.28", None),
        ("1.33", None),
        ("v1.33.8", None),
        ("", None),
    ],
)
def test_next_minor(version, expected):
    assert V13.next_minor(version) == expected
    assert V13.upgrade_targets(version) == ([expected] if expected else [])


def test_next_minor_respects_a_given_allowed_list():
    assert V13.next_minor("v1.35", ["v1.36", "v1.35"]) == "v1.36"
    assert V13.next_minor("v1.34", ["v1.34", "v1.33"]) is None


@pytest.mark.parametrize(
    ("old", "new", "allowed"),
    [
        ("v1.33", "v1.33", True),
        ("v1.33", "v1.34", True),
        ("v1.34", "v1.35", True),
        ("v1.32", "v1.34", False),  # Kamaji rejects jumps of more than one minor
        ("v1.34", "v1.33", False),  # and downgrades
        ("v1.30", "v1.35", False),
        ("v1.35", "v1.36", False),  # not offered
    ],
)
def test_is_allowed_upgrade(old, new, allowed):
    assert V13.is_allowed_upgrade(old, new) is allowed


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("v1.34", (1, 34)), ("v2.0", (2, 0)), ("1.34", None), ("v1.34.4", None), ("latest", None)],
)
def test_parse_version(text, parsed):
    assert catalog.parse_version(text) == parsed


# --------------------------------------------------------------------------- control plane


@pytest.mark.parametrize(
    ("name", "cpu", "memory", "millicores", "mib"),
    [
        ("nano", "250m", "128Mi", 250, 128),
        ("micro", "500m", "256Mi", 500, 256),
        ("small", "1", "512Mi", 1000, 512),
        ("medium", "1", "1Gi", 1000, 1024),
        ("large", "2", "2Gi", 2000, 2048),
        ("xlarge", "4", "4Gi", 4000, 4096),
        ("2xlarge", "8", "8Gi", 8000, 8192),
    ],
)
def test_control_plane_presets_have_their_real_sizes(name, cpu, memory, millicores, mib):
    # The portal names presets with the v1.6 families; the v1.3 name is the same size.
    preset = V13.get_control_plane_preset(catalog.neutral_preset(name))
    assert (preset.cpu, preset.memory, preset.cpu_millicores, preset.memory_mib) == (
        cpu,
        memory,
        millicores,
        mib,
    )


def test_preset_names_match_the_schema_enum():
    enum = SCHEMA["properties"]["controlPlane"]["properties"]["apiServer"]["properties"][
        "resourcesPreset"
    ]["enum"]
    assert [catalog.LEGACY_PRESET_NAMES[p.name] for p in V13.presets] == enum
    assert catalog.get_control_plane_preset("huge") is None
    assert V13.get_control_plane_preset("u1.medium") is None  # no v1.3 equivalent


@pytest.mark.parametrize(
    ("key", "spec_field", "default_preset"),
    [
        ("apiServer", "api_server_preset", "large"),
        ("controllerManager", "controller_manager_preset", "micro"),
        ("scheduler", "scheduler_preset", "micro"),
        ("konnectivity", "konnectivity_preset", "micro"),
    ],
)
def test_control_plane_component_defaults(key, spec_field, default_preset):
    component = next(c for c in catalog.control_plane_components() if c.key == key)
    assert component.spec_field == spec_field
    assert catalog.LEGACY_PRESET_NAMES[component.default_preset] == default_preset


def test_control_plane_defaults_to_two_replicas():
    assert catalog.DEFAULT_CONTROL_PLANE_REPLICAS == 2
    cp = SCHEMA["properties"]["controlPlane"]["properties"]
    assert cp["replicas"]["default"] == 2


# --------------------------------------------------------------------------- storage classes


@pytest.mark.parametrize(
    ("name", "is_default"),
    [("replicated", True), ("replicated-async", False), ("local", False)],
)
def test_storage_classes(name, is_default):
    item = catalog.get_storage_class(name)
    assert item.is_default is is_default
    assert item.description.endswith(".")


def test_default_storage_class_matches_schema():
    assert catalog.DEFAULT_STORAGE_CLASS == SCHEMA["properties"]["storageClass"]["default"]
    assert catalog.get_storage_class("standard") is None


# --------------------------------------------------------------------------- add-ons


def test_addon_keys_are_exactly_the_schema_addons():
    assert [a.key for a in V13.addons] == sorted(SCHEMA_ADDONS, key=str.lower)
    assert {a.key for a in V13.addons} == set(SCHEMA["properties"]["addons"]["required"])


@pytest.mark.parametrize("addon", V13.addons, ids=lambda a: a.key)
def test_addon_flags_match_the_schema(addon):
    props = SCHEMA_ADDONS[addon.key]["properties"]
    assert addon.has_enabled is ("enabled" in props)
    assert addon.has_values_override is ("valuesOverride" in props)
    for key in addon.extra_keys:
        assert key in props


@pytest.mark.parametrize(
    ("key", "roots", "has_enabled"),
    [
        ("certManager", ("cert-manager",), True),
        ("cilium", ("cilium",), False),
        ("coredns", ("coredns",), False),
        ("fluxcd", ("flux-instance",), True),
        ("gatewayAPI", (), True),
        ("gpuOperator", ("gpu-operator",), True),
        ("ingressNginx", ("ingress-nginx",), True),
        ("monitoringAgents", ("vmagent", "fluent-bit", "kube-state-metrics"), True),
        ("velero", ("velero",), True),
        ("verticalPodAutoscaler", ("vertical-pod-autoscaler",), False),
    ],
)
def test_addon_values_roots(key, roots, has_enabled):
    addon = catalog.get_addon(key)
    assert addon.value_roots == roots
    assert addon.has_enabled is has_enabled
    assert addon.label and addon.description


@pytest.mark.parametrize(
    ("key", "needle"),
    [
        ("monitoringAgents", "Vertical Pod Autoscaler"),
        ("monitoringAgents", "monitoring stack"),
        ("gpuOperator", "GPUs"),
        ("ingressNginx", "ingress-nginx role"),
        ("ingressNginx", "public IP"),
    ],
)
def test_addon_notes_explain_dependencies(key, needle):
    assert any(needle in note for note in catalog.get_addon(key).notes)


def test_always_installed_addons():
    assert [a.key for a in V13.addons if a.always_installed] == ["cilium", "coredns"]
    assert catalog.get_addon("ingress-nginx") is None


def test_expose_methods_match_the_schema_enum():
    enum = SCHEMA_ADDONS["ingressNginx"]["properties"]["exposeMethod"]["enum"]
    assert [m.name for m in catalog.expose_methods()] == enum
    assert catalog.DEFAULT_EXPOSE_METHOD == "Proxied"


# --------------------------------------------------------------------------- node roles


def test_only_ingress_nginx_role_is_offered():
    assert [r.name for r in catalog.node_roles()] == ["ingress-nginx"]
    role = catalog.get_node_role("ingress-nginx")
    assert "Ingress NGINX" in role.description
    assert catalog.get_node_role("worker") is None


def test_bundled_schemas_are_fresh_copies():
    first = catalog.bundled_kubernetes_schema()
    first["properties"].clear()
    assert catalog.bundled_kubernetes_schema()["properties"]
    assert catalog.bundled_tenant_schema()["type"] == "object"
