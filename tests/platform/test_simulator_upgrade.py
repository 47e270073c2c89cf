"""A live platform upgrade from Cozystack v1.3.6 to v1.6.2 on a running simulator.

The objects stay (same uid, nothing re-created) and are migrated as upstream's migrations 39, 41,
46 and 47 do; the ApplicationDefinition publishes the new schema (a watcher sees it change), and
every cluster is rendered again with the new chart (`status.version`).
"""

from __future__ import annotations

import io
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import watch

from cozystack.simulator import SimulatedPlatform
from tests.platform.test_simulator import (
    NS,
    cluster_body,
    condition,
    create,
    get,
    group_spec,
    machine_deployments,
)

OPTIONS = ("core.cozystack.io", "v1alpha1")


@pytest.fixture
def simulated_platform(simulated_platform_factory) -> SimulatedPlatform:
    return simulated_platform_factory(release="1.3.6")


def control(platform: SimulatedPlatform, method: str, action: str, body: Any = None) -> Any:
    request = urllib.request.Request(
        f"{platform.url}/_sim/{action}",
        data=json.dumps(body).encode() if body is not None else None,
        method=method,
        headers={"Authorization": f"Bearer {platform.token}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def running_v13_clusters(platform: SimulatedPlatform, custom) -> dict[str, dict]:
    """Three clusters as a v1.3.6 portal made them, Ready and with their nodes."""
    legacy = group_spec(ephemeralStorage="50Gi")
    create(custom, cluster_body(
        "old", version="v1.30", nodeGroups={"md0": legacy},
        controlPlane={"apiServer": {"resourcesPreset": "xlarge"}},
    ))
    create(custom, cluster_body("general", nodeGroups={"general": group_spec()}))
    create(custom, cluster_body(
        "pinned", nodeGroups={"md0": group_spec(ephemeralStorage="40Gi", diskSize="60Gi")}
    ))
    platform.advance(3.0)
    objects = {name: get(custom, name) for name in ("old", "general", "pinned")}
    for obj in objects.values():
        assert condition(obj, "WorkloadsReady")["status"] == "True"
        assert obj["status"]["version"] == "0.31.2"
    return objects


def test_upgrade_migrates_live_objects_and_renders_them_with_the_new_chart(
    simulated_platform, custom
):
    before = running_v13_clusters(simulated_platform, custom)
    hidden_md0 = machine_deployments(custom, "general")["md0"]["metadata"]["uid"]

    report = simulated_platform.upgrade("1.6.2")
    assert report == {
        "from": "1.3.6",
        "release": "1.6.2",
        "chartVersion": "1.6.2",
        "migrated": {
            "39": [f"{NS}/general", f"{NS}/old", f"{NS}/pinned"],
            "41": [f"{NS}/general", f"{NS}/old", f"{NS}/pinned"],
            "46": [f"{NS}/old"],
            "47": [f"{NS}/general"],
        },
    }
    stored = {
        name: simulated_platform.raw_object("Kubernetes", NS, name)["spec"]
        for name in ("old", "general", "pinned")
    }
    # 39: presets renamed to the new families, the explicit one and the defaults alike
    assert stored["old"]["controlPlane"]["apiServer"]["resourcesPreset"] == "c1.large"
    assert stored["general"]["controlPlane"]["apiServer"]["resourcesPreset"] == "c1.medium"
    assert stored["old"]["controlPlane"]["scheduler"]["resourcesPreset"] == "t1.micro"
    # 41: ephemeralStorage renamed to diskSize; an explicit diskSize wins
    assert stored["old"]["nodeGroups"]["md0"]["diskSize"] == "50Gi"
    assert stored["pinned"]["nodeGroups"]["md0"]["diskSize"] == "60Gi"
    for spec in stored.values():
        for group in spec["nodeGroups"].values():
            assert "ephemeralStorage" not in group
    # 46: v1.30 is bumped to v1.31
    assert stored["old"]["version"] == "v1.31"
    assert stored["general"]["version"] == "v1.34"
    # 47: the md0 Helm used to merge in is pinned explicitly
    assert stored["general"]["nodeGroups"]["md0"] == {
        "minReplicas": 0, "maxReplicas": 10, "instanceType": "u1.medium", "diskSize": "20Gi",
        "storageClass": "", "roles": ["ingress-nginx"], "resources": {}, "gpus": [],
        "kubelet": {},
    }

    simulated_platform.advance(0.2)
    for name, obj in before.items():
        now = get(custom, name)
        assert now["metadata"]["uid"] == obj["metadata"]["uid"]
        assert now["status"]["version"] == "1.6.2"
        assert condition(now, "Ready")["reason"] == "UpgradeSucceeded", condition(now, "Ready")
    # The pinned md0 keeps its MachineDeployment: nothing was pruned or re-created.
    assert machine_deployments(custom, "general")["md0"]["metadata"]["uid"] == hidden_md0
    old_md = machine_deployments(custom, "old")["md0"]
    assert old_md["spec"]["template"]["spec"]["version"] == "v1.31.14"
    assert old_md["spec"]["template"]["spec"]["bootstrap"]["configRef"]["kind"] == (
        "TalosConfigTemplate"
    )
    simulated_platform.advance(2.0)  # every worker rolled once onto the new template
    for name in before:
        assert condition(get(custom, name), "WorkloadsReady")["status"] == "True"
    status = machine_deployments(custom, "old")["md0"]["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (1, 1, 1)


def test_the_application_definition_changes_under_a_watch(simulated_platform, custom):
    rv = custom.list_cluster_custom_object(
        "cozystack.io", "v1alpha1", "applicationdefinitions"
    )["metadata"]["resourceVersion"]
    seen: list[dict] = []
    done = threading.Event()
    stream = watch.Watch()

    def consume() -> None:
        for event in stream.stream(
            custom.list_cluster_custom_object,
            "cozystack.io", "v1alpha1", "applicationdefinitions",
            resource_version=rv, timeout_seconds=10,
        ):
            seen.append(event)
            stream.stop()
        done.set()

    thread = threading.Thread(target=consume)
    thread.start()
    simulated_platform.upgrade("1.6.2")
    assert done.wait(10)
    thread.join(5)
    assert seen[0]["type"] == "MODIFIED"
    schema = json.loads(seen[0]["object"]["spec"]["application"]["openAPISchema"])
    group = schema["properties"]["nodeGroups"]["additionalProperties"]
    assert "diskSize" in group["required"] and "ephemeralStorage" not in group["properties"]
    assert "v1.30" not in schema["properties"]["version"]["enum"]


def test_new_clusters_follow_the_new_release_after_the_upgrade(simulated_platform, custom):
    simulated_platform.upgrade("1.6.2")
    assert custom.get_namespaced_custom_object(*OPTIONS, NS, "options", "storageclass")
    create(custom, cluster_body(nodeGroups={"md0": group_spec(ephemeralStorage="30Gi")}))
    simulated_platform.advance(0.5)
    # A v1.3-style spec now fails like the issue says: its md0 has no diskSize.
    assert "- nodeGroups.md0: diskSize is required" in condition(get(custom), "Ready")["message"]


def test_the_upgrade_is_driven_over_http_and_never_goes_back(simulated_platform, custom):
    assert control(simulated_platform, "GET", "release") == {
        "release": "1.3.6", "chartVersion": "0.31.2"
    }
    answer = control(simulated_platform, "POST", "upgrade", {"release": "1.6.2"})
    assert (answer["from"], answer["release"]) == ("1.3.6", "1.6.2")
    assert control(simulated_platform, "GET", "release")["release"] == "1.6.2"
    for release in ("1.3.6", "1.6.2", "2.0.0"):
        with pytest.raises(urllib.error.HTTPError) as refused:
            control(simulated_platform, "POST", "upgrade", {"release": release})
        assert refused.value.code == 400
    assert simulated_platform.release.name == "1.6.2"


def test_the_command_upgrades_the_running_simulator(simulated_platform, custom):
    create(custom, cluster_body(version="v1.30"))
    out = io.StringIO()
    call_command(
        "simulate_platform", upgrade="1.6.2",
        kubeconfig=str(simulated_platform.kubeconfig_path), stdout=out,
    )
    assert "from Cozystack 1.3.6 to 1.6.2 (chart 1.6.2)" in out.getvalue()
    assert f"migration 46: 1 object(s) {NS}/demo" in out.getvalue()
    assert simulated_platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.31"
    with pytest.raises(CommandError, match="can only be upgraded to a newer release"):
        call_command(
            "simulate_platform", upgrade="1.6.2",
            kubeconfig=str(simulated_platform.kubeconfig_path), stdout=io.StringIO(),
        )


def test_the_command_says_when_no_simulator_answers(tmp_path):
    with pytest.raises(CommandError, match="no simulator kubeconfig"):
        call_command("simulate_platform", upgrade="1.6.2", kubeconfig=str(tmp_path / "none"))
