"""Each release the simulator runs, through the real `kubernetes` client over HTTP.

v1.3.6 and v1.6.2 publish their own upstream schema, default specs from their own values.yaml,
fail the specs their chart fails (PLATFORM-v1.6.md: the render guards), and behave as their
release does: machines start from minReplicas and no md0 is merged in v1.6, Ready comes before the
workloads, a tenant without etcd gets the awaiting-etcd beacon, OIDC access gets its kubeconfig
Secret (placeholder, then filled), and the Option API serves the dropdown sources.
"""

from __future__ import annotations

import base64
import json
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import yaml
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from cozystack.simulator import RELEASES, SimulatedPlatform
from tests.fixtures.simulator import release_schema
from tests.platform.test_simulator import (
    NS,
    TENANT_SECRETS,
    condition,
    create,
    get,
    group_spec,
    machine_deployments,
    patch,
    status_of,
)

OPTIONS = ("core.cozystack.io", "v1alpha1")


def v16_group(**overrides: Any) -> dict[str, Any]:
    group = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "instanceType": "u1.large",
        "diskSize": "30Gi",
        "roles": ["ingress-nginx"],
    }
    group.update(overrides)
    return group


def body(name: str = "demo", **spec: Any) -> dict[str, Any]:
    full = {"version": "v1.34", "nodeGroups": {"md0": v16_group()}}
    full.update(spec)
    return {
        "apiVersion": "apps.cozystack.io/v1alpha1",
        "kind": "Kubernetes",
        "metadata": {"name": name, "namespace": NS},
        "spec": full,
    }


@pytest.fixture
def client_for() -> Iterator[Callable[[SimulatedPlatform], client.ApiClient]]:
    """An API client for a platform made by the factory (closed at teardown)."""
    opened: list[client.ApiClient] = []

    def make(platform: SimulatedPlatform) -> client.ApiClient:
        opened.append(config.new_client_from_config(config_file=str(platform.kubeconfig_path)))
        return opened[-1]

    yield make
    for api_client in opened:
        api_client.close()


@pytest.fixture
def v16(simulated_platform_factory) -> SimulatedPlatform:
    return simulated_platform_factory(release="1.6.2")


@pytest.fixture
def custom16(v16, client_for) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(client_for(v16))


@pytest.fixture
def core16(v16, client_for) -> client.CoreV1Api:
    return client.CoreV1Api(client_for(v16))


def helm_failure(platform: SimulatedPlatform, custom: client.CustomObjectsApi, name: str) -> str:
    """Let the install run, then the Ready=False message (Helm's failure)."""
    platform.advance(0.5)
    ready = condition(get(custom, name), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InstallFailed"), ready
    return ready["message"]


# --- both releases -----------------------------------------------------------------------------


@pytest.mark.parametrize("simulated_platform", RELEASES, indirect=True)
def test_each_release_publishes_its_own_schema_and_chart_revision(simulated_platform, custom):
    release = simulated_platform.release.name
    appdef = custom.get_cluster_custom_object(
        "cozystack.io", "v1alpha1", "applicationdefinitions", "kubernetes"
    )
    published = json.loads(appdef["spec"]["application"]["openAPISchema"])
    assert published == json.loads(release_schema(release).read_text())
    secrets = appdef["spec"]["secrets"]["include"][0]["resourceNames"]
    if release == "1.6.2":
        assert secrets == [
            "kubernetes-{{ .name }}-admin-kubeconfig",
            "kubernetes-{{ .name }}-oidc-kubeconfig",
        ]
        assert appdef["metadata"]["annotations"]["release.cozystack.io/helm-install-timeout"]
    else:
        assert secrets == ["kubernetes-{{ .name }}-admin-kubeconfig"]
    create(custom, body())
    assert get(custom)["status"]["version"] == {"1.3.6": "0.31.2", "1.6.2": "1.6.2"}[release]


@pytest.mark.parametrize("simulated_platform", RELEASES, indirect=True)
def test_get_defaults_come_from_the_release_schema(simulated_platform, custom):
    create(custom, body(nodeGroups={"md0": {"minReplicas": 1}}))
    spec = get(custom)["spec"]
    group = spec["nodeGroups"]["md0"]
    if simulated_platform.release.name == "1.6.2":
        assert spec["controlPlane"]["apiServer"]["resourcesPreset"] == "c1.medium"
        assert spec["controlPlane"]["scheduler"]["resourcesPreset"] == "t1.micro"
        assert spec["addons"]["hami"] == {"enabled": False, "valuesOverride": {}}
        assert spec["nodeHealthCheck"] == {"maxUnhealthy": "50%", "nodeStartupTimeout": "10m"}
        assert group["diskSize"] == "20Gi" and "ephemeralStorage" not in group
        assert spec["talos"]["version"] == "v1.13.6"
    else:
        assert spec["controlPlane"]["apiServer"]["resourcesPreset"] == "large"
        assert group["ephemeralStorage"] == "20Gi" and "diskSize" not in group
        assert "hami" not in spec["addons"] and "talos" not in spec


@pytest.mark.parametrize("simulated_platform", RELEASES, indirect=True)
def test_an_empty_node_group_map_gets_the_default_md0(simulated_platform, custom):
    create(custom, body(nodeGroups={}))
    simulated_platform.advance(0.1)
    md = machine_deployments(custom)
    assert set(md) == {"md0"}
    annotations = md["md0"]["metadata"]["annotations"]
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] == "0"


# --- v1.6.2: the schema after merging values.yaml, and the render guards ------------------------


def test_v16_requires_disk_size_after_merging_values_yaml(v16, custom16):
    group = v16_group()
    del group["diskSize"]
    create(custom16, body(nodeGroups={"md0": group}))
    # GET shows the schema default, but Helm validates the values merged with values.yaml,
    # whose nodeGroups is empty: nothing fills the group's diskSize.
    assert get(custom16)["spec"]["nodeGroups"]["md0"]["diskSize"] == "20Gi"
    message = helm_failure(v16, custom16, "demo")
    assert "with chart kubernetes@1.6.2: values don't meet the specifications" in message
    assert "- nodeGroups.md0: diskSize is required" in message


def test_v16_refuses_ephemeral_storage(v16, custom16):
    create(custom16, body(nodeGroups={"md0": v16_group(ephemeralStorage="50Gi")}))
    message = helm_failure(v16, custom16, "demo")
    assert "execution error at (kubernetes/templates/cluster.yaml:106:15): " in message
    assert 'nodeGroup "md0": ephemeralStorage is no longer supported' in message


def test_v13_requires_ephemeral_storage_and_resources(simulated_platform_factory, client_for):
    platform = simulated_platform_factory(release="1.3.6")
    custom = client.CustomObjectsApi(client_for(platform))
    create(custom, body(nodeGroups={"general": v16_group()}))
    platform.advance(0.5)
    message = condition(get(custom), "Ready")["message"]
    assert "- nodeGroups.general: ephemeralStorage is required" in message
    assert "- nodeGroups.general: resources is required" in message


def test_v16_resources_are_optional_but_cpu_and_memory_go_together(v16, custom16):
    sized = v16_group(resources={"cpu": 4, "memory": "8Gi"})
    create(custom16, body("sized", nodeGroups={"md0": sized}))
    create(custom16, body("half", nodeGroups={"md0": v16_group(resources={"cpu": 2})}))
    create(custom16, body("plain"))
    v16.advance(0.5)
    assert condition(get(custom16, "sized"), "Ready")["status"] == "True"
    assert condition(get(custom16, "plain"), "Ready")["status"] == "True"
    message = condition(get(custom16, "half"), "Ready")["message"]
    assert message.endswith(
        "execution error at (kubernetes/templates/cluster.yaml:525:7): "
        "nodeGroup md0: set both resources.cpu and resources.memory, or neither"
    )


def test_v16_instance_types_are_looked_up_unless_the_group_is_sized_by_resources(v16, custom16):
    create(custom16, body("bogus", nodeGroups={"md0": v16_group(instanceType="x1.huge")}))
    sized = v16_group(instanceType="x1.huge", resources={"cpu": "2", "memory": "4Gi"})
    create(custom16, body("sized", nodeGroups={"md0": sized}))
    create(custom16, body("dedicated", nodeGroups={"md0": v16_group(instanceType="d1.large")}))
    v16.advance(0.5)
    assert condition(get(custom16, "bogus"), "Ready")["message"].endswith(
        'nodeGroup md0: specified instanceType "x1.huge" not found in cluster'
    )
    assert condition(get(custom16, "sized"), "Ready")["status"] == "True"
    assert condition(get(custom16, "dedicated"), "Ready")["status"] == "True"


@pytest.mark.parametrize(
    ("addons", "expected"),
    [
        ({"hami": {"enabled": True}}, "addons.hami requires addons.gpuOperator to be enabled"),
        (
            {"ouroboros": {"enabled": True}},
            "addons.ouroboros.enabled requires addons.ingressNginx.enabled",
        ),
        (
            {
                "ingressNginx": {"enabled": True},
                "ouroboros": {
                    "enabled": True,
                    "valuesOverride": {
                        "ouroboros": {"controller": {"gatewayApi": {"enabled": "on"}}}
                    },
                },
            },
            "requires addons.gatewayAPI.enabled=true on the same tenant",
        ),
    ],
)
def test_v16_add_on_dependencies_fail_the_render(v16, custom16, addons, expected):
    create(custom16, body(addons=addons))
    assert expected in helm_failure(v16, custom16, "demo")


def test_v16_add_ons_with_their_dependencies_install(v16, custom16):
    create(custom16, body(addons={
        "gpuOperator": {"enabled": True},
        "hami": {"enabled": True},
        "ingressNginx": {"enabled": True},
        "ouroboros": {"enabled": True},
    }))
    v16.advance(0.5)
    assert condition(get(custom16), "Ready")["reason"] == "InstallSucceeded"


def test_v16_refuses_kubernetes_1_30(v16, custom16):
    create(custom16, body(version="v1.30"))
    message = helm_failure(v16, custom16, "demo")
    assert "- version: version must be one of the following: " in message
    assert '"v1.30"' not in message.split("one of the following: ")[1]


@pytest.mark.parametrize(
    ("kubelet", "expected"),
    [
        (
            {"evictionHardMemory": "10%", "evictionSoftMemory": "5%"},
            "nodeGroup md0: evictionHardMemory (10%) must be strictly less than "
            "evictionSoftMemory (5%)",
        ),
        (
            {"evictionHardMemory": "500Mi", "evictionSoftMemory": "10%"},
            "must use the same unit type (both percentage or both absolute)",
        ),
        (
            {"systemReservedMemory": "4Gi", "kubeReservedMemory": "4Gi"},
            "nodeGroup md0: total reserved memory (systemReservedMemory=4Gi + "
            "kubeReservedMemory=4Gi + evictionHardMemory=7%) must be less than effective node "
            "memory (8Gi)",
        ),
        (
            {"systemReservedCpu": "1", "kubeReservedCpu": "1"},
            "nodeGroup md0: total reserved CPU (systemReservedCpu=1 + kubeReservedCpu=1) must be "
            "less than effective node CPU (2 cores)",
        ),
        ({"systemReservedCpu": "lots"}, 'nodeGroup md0: invalid systemReservedCpu value "lots"'),
    ],
)
def test_v16_kubelet_reservations_are_checked_against_the_node(v16, custom16, kubelet, expected):
    create(custom16, body(nodeGroups={"md0": v16_group(kubelet=kubelet)}))  # u1.large: 2/8Gi
    assert expected in helm_failure(v16, custom16, "demo")


def test_v16_kubelet_reservations_that_fit_install(v16, custom16):
    kubelet = {"evictionHardMemory": "500Mi", "evictionSoftMemory": "1Gi",
               "systemReservedCpu": "200m", "kubeReservedMemory": "512Mi"}
    create(custom16, body(nodeGroups={"md0": v16_group(kubelet=kubelet)}))
    v16.advance(0.5)
    assert condition(get(custom16), "Ready")["reason"] == "InstallSucceeded"


def test_v16_max_unhealthy_must_be_a_count_or_a_percentage(v16, custom16):
    create(custom16, body("bad", nodeGroups={"md0": v16_group(maxUnhealthy="half")}))
    create(custom16, body("good", nodeGroups={"md0": v16_group(maxUnhealthy="1",
                                                              nodeStartupTimeout="20m")}))
    v16.advance(0.5)
    assert condition(get(custom16, "bad"), "Ready")["message"].endswith(
        'nodeGroups.md0.maxUnhealthy must be a bare integer (e.g. 0, 1) or an integer '
        'percentage (e.g. 50%), got "half"'
    )
    assert condition(get(custom16, "good"), "Ready")["status"] == "True"


def test_v16_custom_oidc_needs_exactly_one_configuration(v16, custom16):
    create(custom16, body(oidc={"mode": "CustomConfig"}))
    assert "spec.oidc.mode: CustomConfig requires either" in helm_failure(v16, custom16, "demo")
    patch(custom16, {"spec": {"oidc": {"customConfig": {"secretRef": {"name": "authn"}}}}})
    v16.advance(0.5)
    assert condition(get(custom16), "Ready")["reason"] == "InstallSucceeded"


def test_v16_system_oidc_needs_the_platform_oidc_feature(simulated_platform_factory, client_for):
    platform = simulated_platform_factory(release="1.6.2", oidc_enabled=False)
    custom = client.CustomObjectsApi(client_for(platform))
    create(custom, body(oidc={"mode": "System"}))
    assert "requires the platform-level OIDC feature" in helm_failure(platform, custom, "demo")


def test_v16_api_server_passthrough_is_checked(v16, custom16):
    api_server = {"extraVolumes": [{"name": "host", "hostPath": {"path": "/"}}]}
    create(custom16, body("volume", controlPlane={"apiServer": api_server}))
    create(custom16, body("flags", oidc={"mode": "System"},
                          controlPlane={"apiServer": {"extraArgs": ["--oidc-issuer-url=x"]}}))
    v16.advance(0.5)
    assert 'volume "host" uses a "hostPath" source, which is not permitted' in condition(
        get(custom16, "volume"), "Ready")["message"]
    assert 'extraArgs contains "--oidc-issuer-url=x" while spec.oidc.mode is "System"' in (
        condition(get(custom16, "flags"), "Ready")["message"])


# --- v1.6.2: behaviour -------------------------------------------------------------------------


def test_v16_machine_deployments_start_from_min_replicas(v16, custom16):
    groups = {"md0": v16_group(minReplicas=1), "gpu": v16_group(minReplicas=0), "big": v16_group(
        minReplicas=3, maxReplicas=5)}
    create(custom16, body(nodeGroups=groups))
    md = machine_deployments(custom16)
    assert {name: md[name]["spec"]["replicas"] for name in md} == {"md0": 1, "gpu": 0, "big": 3}
    template = md["md0"]["spec"]["template"]["spec"]
    assert template["bootstrap"]["configRef"]["kind"] == "TalosConfigTemplate"
    assert template["version"] == "v1.34.9"


def test_v16_merges_no_hidden_md0(v16, custom16):
    create(custom16, body(nodeGroups={"general": v16_group()}))
    v16.advance(0.5)
    assert set(machine_deployments(custom16)) == {"general"}
    assert condition(get(custom16), "Ready")["status"] == "True"


def test_v16_ready_comes_when_manifests_are_applied_before_the_workloads(v16, custom16, core16):
    create(custom16, body())
    assert condition(get(custom16), "Ready")["reason"] == "Progressing"
    v16.advance(0.2)  # apply_after: the manifests are applied, nothing was waited for
    obj = get(custom16)
    assert condition(obj, "Ready")["reason"] == "InstallSucceeded"
    assert condition(obj, "WorkloadsReady")["status"] == "False"
    with pytest.raises(ApiException) as missing:
        core16.read_namespaced_secret("kubernetes-demo-admin-kubeconfig", NS)
    assert missing.value.status == 404

    v16.advance(0.8)  # ready_after: the control plane answers, Kamaji writes the kubeconfig
    assert core16.read_namespaced_secret("kubernetes-demo-admin-kubeconfig", NS).data
    assert condition(get(custom16), "WorkloadsReady")["status"] == "False"  # nodes booting
    v16.advance(0.5)
    assert condition(get(custom16), "WorkloadsReady")["status"] == "True"
    assert machine_deployments(custom16)["md0"]["status"]["readyReplicas"] == 1


def test_v16_tenant_without_etcd_gets_the_awaiting_etcd_beacon_and_still_reports_ready(
    v16, custom16, core16
):
    v16.set_tenant_etcd(NS, False)
    create(custom16, body())
    v16.advance(3.0)
    obj = get(custom16)
    assert condition(obj, "Ready")["reason"] == "InstallSucceeded"
    assert condition(obj, "WorkloadsReady") == {}
    beacon = core16.read_namespaced_config_map("kubernetes-demo-awaiting-etcd", NS)
    assert beacon.data["status"] == "awaiting-etcd"
    assert "Set spec.etcd: true" in beacon.data["message"]
    assert machine_deployments(custom16) == {}
    with pytest.raises(ApiException):
        core16.read_namespaced_secret("kubernetes-demo-admin-kubeconfig", NS)

    v16.set_tenant_etcd(NS, True)  # the next reconcile finds the DataStore
    v16.advance(3.0)
    assert condition(get(custom16), "WorkloadsReady")["status"] == "True"
    assert set(machine_deployments(custom16)) == {"md0"}
    names = [cm.metadata.name for cm in core16.list_namespaced_config_map(NS).items]
    assert "kubernetes-demo-awaiting-etcd" not in names


def test_v13_tenant_without_etcd_fails_the_install(simulated_platform_factory, client_for):
    platform = simulated_platform_factory(release="1.3.6")
    custom = client.CustomObjectsApi(client_for(platform))
    platform.set_tenant_etcd(NS, False)
    create(custom, body(nodeGroups={"md0": group_spec()}))
    assert "empty dataStoreName" in helm_failure(platform, custom, "demo")
    assert platform.objects("ConfigMap", NS) == []


def test_v16_control_endpoint_takes_a_tenants_etcd_away(v16, custom16, core16):
    request = urllib.request.Request(
        v16.url + "/_sim/etcd",
        data=json.dumps({"namespace": NS, "etcd": False}).encode(),
        method="POST",
        headers={"Authorization": f"Bearer {v16.token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.loads(response.read()) == {"namespace": NS, "etcd": False}
    create(custom16, body())
    v16.advance(0.5)
    assert core16.read_namespaced_config_map("kubernetes-demo-awaiting-etcd", NS).data


def _oidc_view(custom: client.CustomObjectsApi) -> str:
    view = custom.get_namespaced_custom_object(
        *TENANT_SECRETS, NS, "tenantsecrets", "kubernetes-demo-oidc-kubeconfig"
    )
    return base64.b64decode(view["data"]["kubeconfig"]).decode()


def test_v16_oidc_kubeconfig_is_a_placeholder_then_an_oidc_login_kubeconfig(v16, custom16):
    users = [{"email": "ada@example.org", "role": "admin"}, {"email": "bob@example.org",
                                                           "role": "view"}]
    create(custom16, body(oidc={"mode": "System", "users": users}))
    v16.advance(0.2)  # manifests applied: the chart-owned Secret holds the placeholder
    placeholder = _oidc_view(custom16)
    assert placeholder.startswith("# awaiting OIDC bootstrap Job")
    assert v16.oidc_bindings(NS, "demo") == {}

    v16.advance(1.3)  # control plane up at 1.0, the bootstrap Job finishes 0.5 later
    config = yaml.safe_load(_oidc_view(custom16))
    cluster = config["clusters"][0]["cluster"]
    assert cluster["server"] == "https://kubernetes-demo.acme.example.org:443"
    assert cluster["certificate-authority-data"]
    user = config["users"][0]["user"]
    assert "token" not in user and "client-key-data" not in user
    args = user["exec"]["args"]
    assert args[:2] == ["oidc-login", "get-token"]
    assert "--oidc-issuer-url=https://keycloak.example.org/realms/cozy" in args
    assert "--oidc-client-id=tenant-acme-kubernetes-demo" in args
    assert v16.oidc_bindings(NS, "demo") == {
        "ada@example.org": "cluster-admin",
        "bob@example.org": "view",
    }
    listed = custom16.list_namespaced_custom_object(*TENANT_SECRETS, NS, "tenantsecrets")
    assert {item["metadata"]["name"] for item in listed["items"]} == {
        "kubernetes-demo-admin-kubeconfig",
        "kubernetes-demo-oidc-kubeconfig",
    }

    patch(custom16, {"spec": {"oidc": {"users": users[:1]}}})
    v16.advance(1.0)
    assert v16.oidc_bindings(NS, "demo") == {"ada@example.org": "cluster-admin"}
    assert "oidc-login" in _oidc_view(custom16)  # an upgrade keeps the filled kubeconfig

    patch(custom16, {"spec": {"oidc": {"mode": "None"}}})
    v16.advance(0.5)
    with pytest.raises(ApiException) as gone:
        _oidc_view(custom16)
    assert gone.value.status == 404


def test_v16_oidc_kubeconfig_stays_a_placeholder_while_the_tenant_has_no_etcd(v16, custom16):
    v16.set_tenant_etcd(NS, False)
    create(custom16, body(oidc={"mode": "System"}))
    v16.advance(5.0)
    assert _oidc_view(custom16).startswith("# awaiting")


# --- the Option API ----------------------------------------------------------------------------


def test_v16_serves_the_option_api(v16, custom16):
    def option(name: str) -> dict[str, Any]:
        return custom16.get_namespaced_custom_object(*OPTIONS, NS, "options", name)

    instancetypes = option("instancetype")
    assert instancetypes["kind"] == "Option"
    assert instancetypes["metadata"] == {"name": "instancetype", "namespace": NS,
                                         "resourceVersion": "0"}
    values = [item["value"] for item in instancetypes["spec"]["items"]]
    assert values == sorted(values)
    assert {"u1.medium", "d1.large", "cx1.medium1gi", "s1.large"} <= set(values)
    assert instancetypes["spec"]["items"][0] == {"value": values[0]}

    gpus = {item["value"]: item for item in option("gpu")["spec"]["items"]}
    assert gpus["nvidia.com/AD102GL_L40S"]["description"] == "8 available on gpu-node-1, gpu-node-2"
    assert gpus["nvidia.com/GH100_H100L_94GB"]["description"] == "8 available on gpu-node-3"
    assert gpus["nvidia.com/AD104GL_L4"]["description"] == "not currently available on any node"
    assert "nvidia.com/H100_94GB" not in gpus  # Hikube's old name is not permitted any more

    classes = option("storageclass")["spec"]["items"]
    assert classes == [
        {"value": "local", "label": "local (default)", "default": True},
        {"value": "replicated"},
        {"value": "replicated-async"},
    ]
    listed = custom16.list_namespaced_custom_object(*OPTIONS, NS, "options")
    assert [item["metadata"]["name"] for item in listed["items"]] == [
        "gpu", "instancetype", "storageclass"
    ]
    with pytest.raises(ApiException) as error:
        option("network")
    assert error.value.status == 404
    assert status_of(error)["message"] == 'options.core.cozystack.io "network" not found'


def test_v16_options_are_read_only(v16, custom16):
    with pytest.raises(ApiException) as error:
        custom16.create_namespaced_custom_object(
            *OPTIONS, NS, "options", {"metadata": {"name": "gpu"}}
        )
    assert error.value.status == 405


@pytest.mark.parametrize("simulated_platform", RELEASES, indirect=True)
def test_the_option_api_exists_only_from_v16(simulated_platform, api, custom):
    served = simulated_platform.release.name == "1.6.2"
    resources = client.CustomObjectsApi(api).get_api_resources(*OPTIONS).resources
    assert ("options" in {r.name for r in resources}) == served
    if served:
        assert custom.get_namespaced_custom_object(*OPTIONS, NS, "options", "gpu")
        return
    with pytest.raises(ApiException) as error:
        custom.get_namespaced_custom_object(*OPTIONS, NS, "options", "gpu")
    assert error.value.status == 404

