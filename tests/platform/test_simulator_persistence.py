"""The simulator keeps its state in a file: a restart changes nothing.

Stopped and started again, the platform serves the same objects with the same uids and
resourceVersions, a watcher resuming where it was sees nothing vanish, and clusters carry on from
where they were. Without a state file (the tests' default) nothing is written.
"""

from __future__ import annotations

import io
import json
import os
import time
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from kubernetes import client, config, watch

from cozystack.simulator import ManualClock, SimulatedPlatform
from cozystack.simulator.persist import StateError
from tests.fixtures.processes import free_port
from tests.platform.test_simulator import (
    APPS,
    NS,
    cluster_body,
    condition,
    create,
    get,
    group_spec,
    machine_deployments,
)


def restart(factory, state: Path, **options) -> tuple[SimulatedPlatform, client.CustomObjectsApi]:
    platform = factory(state_path=state, **options)
    api = config.new_client_from_config(config_file=str(platform.kubeconfig_path))
    return platform, client.CustomObjectsApi(api)


def listing(custom: client.CustomObjectsApi) -> dict:
    return custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses")


def test_a_restart_finds_every_cluster_as_it_was(simulated_platform_factory, tmp_path):
    state = tmp_path / "simulator.json"
    first, custom = restart(simulated_platform_factory, state, release="1.3.6")
    create(custom, cluster_body("running"))
    first.advance(3.0)
    create(custom, cluster_body("installing"))
    first.advance(0.5)  # half way through its install
    before = listing(custom)
    mds = machine_deployments(custom, "running")
    first.stop()
    assert json.loads(state.read_text())["release"] == "1.3.6"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    second, custom = restart(simulated_platform_factory, state, release="1.3.6")
    assert listing(custom) == before
    assert machine_deployments(custom, "running") == mds
    second.tick()
    assert listing(custom)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]

    # A watcher resuming from where it was sees nothing vanish.
    events = list(watch.Watch().stream(
        custom.list_namespaced_custom_object, *APPS, NS, "kuberneteses",
        resource_version=before["metadata"]["resourceVersion"], timeout_seconds=1,
    ))
    assert events == []

    assert condition(get(custom, "installing"), "Ready")["reason"] == "Progressing"
    second.advance(1.0)  # the install carries on where it stopped
    assert condition(get(custom, "installing"), "Ready")["reason"] == "InstallSucceeded"


def test_changes_are_written_while_it_runs(simulated_platform_factory, tmp_path):
    state = tmp_path / "simulator.json"
    platform, custom = restart(
        simulated_platform_factory, state, release="1.6.2", state_interval=3600
    )
    platform.save_state()
    create(custom, cluster_body(nodeGroups={"md0": group_spec(diskSize="30Gi")}))
    assert platform.save_state() is True
    assert platform.save_state() is False  # nothing changed since
    saved = json.loads(state.read_text())
    names = [key[2] for key, _ in saved["store"]["objects"] if key[0].endswith("/kuberneteses")]
    assert names == ["demo"]
    platform.set_demand(NS, "demo", "md0", 3)
    assert platform.save_state() is True  # controller-only state counts as a change


def test_the_background_writer_saves_without_being_asked(simulated_platform_factory, tmp_path):
    state = tmp_path / "simulator.json"
    platform, custom = restart(
        simulated_platform_factory, state, release="1.3.6", state_interval=0.05
    )
    create(custom, cluster_body())
    deadline = time.monotonic() + 10
    while '"demo"' not in (state.read_text() if state.exists() else ""):
        assert time.monotonic() < deadline, "the state file never showed the new cluster"
        time.sleep(0.05)


def test_tests_keep_the_platform_in_memory(simulated_platform, custom, tmp_path):
    create(custom, cluster_body())
    simulated_platform.advance(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kubeconfig"]


def test_an_upgraded_platform_stays_upgraded(simulated_platform_factory, tmp_path):
    state = tmp_path / "simulator.json"
    first, custom = restart(simulated_platform_factory, state, release="1.3.6")
    create(custom, cluster_body(version="v1.30"))
    first.upgrade("1.6.2")
    first.stop()

    second, custom = restart(simulated_platform_factory, state, release="1.3.6")
    assert second.release.name == "1.6.2"
    assert "runs Cozystack 1.6.2 (it was upgraded); it cannot go back to 1.3.6" in second.notice
    assert get(custom)["spec"]["version"] == "v1.31"


def test_a_newer_release_upgrades_the_saved_platform_at_start(simulated_platform_factory, tmp_path):
    state = tmp_path / "simulator.json"
    first, custom = restart(simulated_platform_factory, state, release="1.3.6")
    uid = create(custom, cluster_body())["metadata"]["uid"]
    first.advance(3.0)
    first.stop()

    second, custom = restart(simulated_platform_factory, state, release="1.6.2")
    assert second.release.name == "1.6.2"
    obj = get(custom)
    assert obj["metadata"]["uid"] == uid
    assert obj["spec"]["nodeGroups"]["md0"]["diskSize"] == "30Gi"
    assert obj["status"]["version"] == "1.6.2"


def test_an_unreadable_state_file_stops_the_start(tmp_path):
    state = tmp_path / "simulator.json"
    state.write_text("{not json")
    with pytest.raises(StateError, match="Move the file away"):
        SimulatedPlatform(clock=ManualClock(), state_path=state)
    with pytest.raises(CommandError, match="cannot read the simulator's saved state"):
        call_command("simulate_platform", state=str(state), port=0, stdout=io.StringIO())
    assert state.read_text() == "{not json"


def test_make_run_stopped_and_started_again_finds_the_cluster(tmp_path, settings):
    """The embedded runner starts the simulator with a state file under var/."""
    from clusters.management.commands.run_portal import Command

    settings.PLATFORM_KUBECONFIG = str(tmp_path / "platform.kubeconfig")
    options = {
        "platform_port": free_port(),
        "ready_after": 0.2,
        "platform_release": "1.3.6",
        "platform_state": str(tmp_path / "simulator.json"),
    }

    def run_simulator() -> tuple[Command, client.ApiClient]:
        command = Command(stdout=io.StringIO(), stderr=io.StringIO())
        command.children = []
        command._start_simulator(options, os.environ.copy())
        return command, config.new_client_from_config(config_file=settings.PLATFORM_KUBECONFIG)

    command, api = run_simulator()
    try:
        custom = client.CustomObjectsApi(api)
        uid = create(custom, cluster_body())["metadata"]["uid"]
        deadline = time.monotonic() + 20
        while condition(get(custom), "Ready").get("status") != "True":
            assert time.monotonic() < deadline, get(custom).get("status")
            time.sleep(0.1)
    finally:
        api.close()
        command._stop_children()

    command, api = run_simulator()
    try:
        obj = get(client.CustomObjectsApi(api))
        assert obj["metadata"]["uid"] == uid
        assert condition(obj, "Ready")["status"] == "True"
    finally:
        api.close()
        command._stop_children()
