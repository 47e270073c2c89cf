"""The gateway against the simulated management cluster, through the real ``kubernetes`` client.

No database: these pin the calls the engine relies on and how failures are classified.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from typing import Any

import pytest
import yaml

from cozystack.gateway import (
    APPS,
    MACHINE_DEPLOYMENTS,
    SECRETS,
    Conflict,
    Expired,
    Gateway,
    NotFound,
    PlatformRejected,
    PlatformUnavailable,
    WatchEvent,
)
from cozystack.simulator import Fault, SimulatedPlatform
from tests.clusters.conftest import NS

LABELS = {"app.kubernetes.io/managed-by": "kube-portal"}


@pytest.fixture
def simulated_platform(simulated_platform_factory) -> SimulatedPlatform:
    """The gateway's calls pinned against Cozystack v1.3.6 (its manifests below are v1.3's)."""
    return simulated_platform_factory(release="1.3.6")


def manifest(name: str = "demo", **spec: Any) -> dict[str, Any]:
    body = {
        "version": "v1.34",
        "host": "",
        "storageClass": "replicated",
        "nodeGroups": {"md0": {"minReplicas": 1, "maxReplicas": 3, "instanceType": "u1.large",
                               "ephemeralStorage": "30Gi", "resources": {},
                               "roles": ["ingress-nginx"], "gpus": []}},
    }
    body.update(spec)
    return {"apiVersion": "apps.cozystack.io/v1alpha1", "kind": "Kubernetes",
            "metadata": {"name": name, "namespace": NS, "labels": dict(LABELS)}, "spec": body}


def writes(platform: SimulatedPlatform) -> list[str]:
    return [f"{r.method} {r.status}" for r in platform.requests()
            if r.method in ("POST", "PUT", "PATCH", "DELETE") and "kuberneteses" in r.path]


# --- reading and writing the Kubernetes object ----------------------------------------------


def test_ping_answers_the_platform_version(gateway: Gateway):
    assert gateway.ping()["git_version"].startswith("v1.")


def test_create_then_get_returns_the_object_with_defaults_filled(gateway, platform):
    applied = gateway.create_cluster(manifest())
    assert applied.created and applied.changed
    obj = gateway.get_cluster(NS, "demo")
    assert obj["spec"]["controlPlane"]["replicas"] == 2  # defaulted on GET
    assert obj["metadata"]["labels"] == LABELS
    assert gateway.get_cluster(NS, "missing") is None
    assert writes(platform) == ["POST 201"]


def test_create_of_an_existing_object_with_the_same_spec_changes_nothing(gateway, platform):
    first = gateway.create_cluster(manifest())
    again = gateway.create_cluster(manifest())
    assert not again.created and not again.changed
    assert again.object["metadata"]["generation"] == first.object["metadata"]["generation"] == 1
    assert len(platform.objects("Kubernetes", NS)) == 1
    assert writes(platform) == ["POST 201", "POST 409", "PUT 200"]


def test_create_of_an_existing_object_brings_it_to_the_new_spec(gateway, platform):
    gateway.create_cluster(manifest())
    again = gateway.create_cluster(manifest(version="v1.35"))
    assert again.changed and again.object["metadata"]["generation"] == 2
    assert platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.35"


def test_create_never_takes_over_an_object_the_portal_did_not_create(gateway, platform):
    foreign = manifest()
    foreign["metadata"]["labels"] = {}
    gateway.create_cluster(foreign)
    with pytest.raises(PlatformRejected) as error:
        gateway.create_cluster(manifest(version="v1.35"))
    assert "was not created by the portal" in error.value.message
    assert platform.raw_object("Kubernetes", NS, "demo")["spec"]["version"] == "v1.34"


def test_replace_records_the_ready_condition_it_replaced(gateway, platform):
    gateway.create_cluster(manifest())
    platform.advance(3)
    applied = gateway.replace_cluster(manifest(version="v1.35"))
    assert applied.changed
    assert applied.baseline["status"] == "True"
    assert applied.baseline["reason"] == "InstallSucceeded"


def test_replace_retries_a_conflict_and_succeeds(gateway, platform):
    gateway.create_cluster(manifest())
    platform.faults.add(Fault(method="PUT", path="kuberneteses/demo", status=409, times=2))
    applied = gateway.replace_cluster(manifest(version="v1.35"))
    assert applied.changed
    assert writes(platform) == ["POST 201", "PUT 409", "PUT 409", "PUT 200"]


def test_replace_that_keeps_conflicting_gives_up_with_words(gateway, platform):
    gateway.create_cluster(manifest())
    platform.faults.add(Fault(method="PUT", path="kuberneteses/demo", status=409))
    with pytest.raises(Conflict) as error:
        gateway.replace_cluster(manifest(version="v1.35"))
    assert "kept changing on the platform" in error.value.message
    assert len(writes(platform)) == 1 + 5


def test_replace_of_a_missing_or_terminating_object_is_refused(gateway, platform):
    with pytest.raises(NotFound):
        gateway.replace_cluster(manifest())
    gateway.create_cluster(manifest())
    gateway.delete_cluster(NS, "demo")
    with pytest.raises(Conflict) as error:
        gateway.replace_cluster(manifest(version="v1.35"))
    assert "being deleted" in error.value.message


def test_a_real_concurrent_write_is_not_overwritten(gateway, platform):
    """The PUT carries the resourceVersion it read: a write in between forces a re-read."""
    gateway.create_cluster(manifest())
    other = platform.raw_object("Kubernetes", NS, "demo")
    stale_rv = other["metadata"]["resourceVersion"]
    gateway.patch_cluster(NS, "demo", {"metadata": {"labels": {"touched": "yes"}}})
    assert platform.raw_object("Kubernetes", NS, "demo")["metadata"]["resourceVersion"] != stale_rv
    applied = gateway.replace_cluster(manifest(version="v1.35"))
    labels = applied.object["metadata"]["labels"]
    assert labels == {**LABELS, "touched": "yes"}  # the other writer's label survived


def test_delete_is_terminating_first_then_gone_and_repeating_it_is_harmless(gateway, platform):
    gateway.create_cluster(manifest())
    platform.advance(3)
    assert gateway.delete_cluster(NS, "demo") is True
    assert gateway.get_cluster(NS, "demo")["metadata"]["deletionTimestamp"]
    platform.advance(1)
    assert gateway.get_cluster(NS, "demo") is None
    assert gateway.delete_cluster(NS, "demo") is False


# --- observed objects -------------------------------------------------------------------------


def test_kubeconfig_appears_once_the_control_plane_is_up_and_decodes_once(gateway, platform):
    gateway.create_cluster(manifest())
    assert gateway.kubeconfig_exists(NS, "demo") is False
    with pytest.raises(NotFound):
        gateway.read_kubeconfig(NS, "demo")
    platform.advance(1)
    assert gateway.kubeconfig_exists(NS, "demo") is True
    admin = yaml.safe_load(gateway.read_kubeconfig(NS, "demo"))
    assert admin["clusters"][0]["cluster"]["server"] == \
        "https://kubernetes-demo.acme.example.org:443"
    assert admin["users"][0]["name"] == "kubernetes-admin"
    breakglass = yaml.safe_load(gateway.read_kubeconfig(NS, "demo", "super-admin.conf"))
    assert breakglass["users"][0]["name"] == "kubernetes-super-admin"
    with pytest.raises(ValueError):
        gateway.read_kubeconfig(NS, "demo", "admin.svc")


def test_kubeconfig_falls_back_to_the_secret_when_tenantsecrets_are_not_served(gateway,
                                                                                platform):
    gateway.create_cluster(manifest())
    platform.advance(1)
    platform.faults.add(Fault(path="tenantsecrets", status=403))
    assert b"kubernetes-admin" in gateway.read_kubeconfig(NS, "demo")
    assert any("/api/v1/namespaces/tenant-acme/secrets/" in r.path
               for r in platform.requests("GET"))


def test_machine_deployments_are_listed_by_cluster_label(gateway, platform):
    gateway.create_cluster(manifest())
    gateway.create_cluster(manifest("other"))
    platform.advance(1)
    names = [md["metadata"]["name"] for md in gateway.list_machine_deployments(NS, "demo")]
    assert names == ["kubernetes-demo-md0"]
    md = gateway.list_machine_deployments(NS, "demo")[0]
    assert md["spec"]["replicas"] == 2  # every group starts at 2 (gotcha 2)


def test_the_schema_is_read_from_the_application_definition_and_follows_changes(gateway,
                                                                                platform):
    version, schema = gateway.kubernetes_schema()
    assert "v1.34" in schema["properties"]["version"]["enum"]
    assert gateway.kubernetes_schema() == (version, schema)
    changed = copy.deepcopy(platform.schema)
    changed["properties"]["version"]["enum"] = ["v1.36", "v1.35"]
    platform.publish_schema(changed)
    new_version, new_schema = gateway.kubernetes_schema()
    assert new_version != version
    assert new_schema["properties"]["version"]["enum"] == ["v1.36", "v1.35"]


# --- failures, classified ---------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 429])
def test_server_errors_and_throttling_are_transient(gateway, platform, status):
    platform.faults.add(Fault(path="kuberneteses", status=status))
    with pytest.raises(PlatformUnavailable) as error:
        gateway.get_cluster(NS, "demo")
    assert error.value.transient
    assert "retrying" in error.value.message


def test_a_dropped_connection_and_a_platform_that_is_down_are_transient(gateway, platform):
    platform.faults.add(Fault(method="POST", path="kuberneteses", drop=True, times=1))
    with pytest.raises(PlatformUnavailable) as error:
        gateway.create_cluster(manifest())
    assert "unreachable" in error.value.message
    assert platform.objects("Kubernetes", NS) == []  # the POST never reached the store
    platform.set_down(True)
    with pytest.raises(PlatformUnavailable):
        gateway.get_cluster(NS, "demo")
    platform.set_down(False)
    assert gateway.create_cluster(manifest()).created


def test_a_slow_platform_times_out_as_transient(platform, settings):
    from cozystack.gateway import build_api_client

    slow = Gateway(build_api_client(kubeconfig=str(platform.kubeconfig_path)),
                   request_timeout=0.3)
    platform.faults.add(Fault(path="kuberneteses", latency=1.0, times=2))
    with pytest.raises(PlatformUnavailable):
        slow.get_cluster(NS, "demo")
    slow.close()


def test_refusals_are_permanent_and_say_what_to_do(gateway, platform):
    platform.faults.add(Fault(path="kuberneteses", status=403, times=1))
    with pytest.raises(PlatformRejected) as forbidden:
        gateway.get_cluster(NS, "demo")
    assert not forbidden.value.transient
    assert "platform credentials" in forbidden.value.message
    with pytest.raises(PlatformRejected) as invalid:
        gateway.create_cluster(manifest("Not_A_Name"))
    assert invalid.value.status == 422
    assert "DNS-1035" in invalid.value.message
    with pytest.raises(PlatformRejected) as bad:
        gateway.create_cluster(manifest(_private=True))
    assert bad.value.status == 400


def test_a_wrong_token_is_refused_with_a_credentials_message(platform, tmp_path):
    from cozystack.gateway import build_api_client

    path = tmp_path / "wrong"
    path.write_text(platform.kubeconfig_path.read_text().replace(platform.token, "nope"))
    wrong = Gateway(build_api_client(kubeconfig=str(path)))
    with pytest.raises(PlatformRejected) as error:
        wrong.get_cluster(NS, "demo")
    assert error.value.status == 401
    wrong.close()


# --- watching ---------------------------------------------------------------------------------


def collect(gateway: Gateway, kind: Any, rv: str, *, until: int, timeout: int = 5,
            **kw: Any) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    for event in gateway.watch(kind, rv, timeout_seconds=timeout, **kw):
        events.append(event)
        if len([e for e in events if e.type != "BOOKMARK"]) >= until:
            break
    return events


def test_watch_resumes_from_a_resource_version_without_missing_a_transition(gateway, platform):
    gateway.create_cluster(manifest())
    _items, rv = gateway.list_resource(APPS)
    platform.advance(1)  # Ready=True happens while nobody watches
    events = collect(gateway, APPS, rv, until=1)
    ready = [c for c in events[0].object["status"]["conditions"] if c["type"] == "Ready"][0]
    assert events[0].type == "MODIFIED"
    assert ready["status"] == "True"
    assert int(events[0].resource_version) > int(rv)


def test_watch_streams_live_changes_as_plain_dicts(gateway, platform):
    _items, rv = gateway.list_resource(MACHINE_DEPLOYMENTS)
    seen: list[WatchEvent] = []

    def consume() -> None:
        seen.extend(collect(gateway, MACHINE_DEPLOYMENTS, rv, until=2))

    thread = threading.Thread(target=consume)
    thread.start()
    gateway.create_cluster(manifest())
    platform.advance(1)
    thread.join(10)
    assert seen[0].type == "ADDED"
    assert isinstance(seen[0].object, dict)
    assert seen[0].object["metadata"]["name"] == "kubernetes-demo-md0"


def test_watch_from_a_compacted_resource_version_raises_expired(gateway, platform):
    gateway.create_cluster(manifest())
    _items, rv = gateway.list_resource(APPS)
    gateway.create_cluster(manifest("later"))
    platform.compact()
    with pytest.raises(Expired):
        collect(gateway, APPS, rv, until=1)


def test_watch_ends_when_the_server_times_it_out(gateway, platform):
    _items, rv = gateway.list_resource(APPS)
    started = time.monotonic()
    events = collect(gateway, APPS, rv, until=1, timeout=1)
    assert [e.type for e in events] == ["BOOKMARK"]
    assert time.monotonic() - started < 3


def test_a_dropped_watch_is_transient(gateway, platform):
    platform.faults.add(Fault(path="watch=true", drop=True, times=3))
    with pytest.raises(PlatformUnavailable):
        collect(gateway, APPS, "", until=1)


def test_an_interrupted_watch_returns_at_once(gateway, platform):
    stop = threading.Event()
    _items, rv = gateway.list_resource(APPS)
    result: list[list[WatchEvent]] = []
    thread = threading.Thread(
        target=lambda: result.append(collect(gateway, APPS, rv, until=1, timeout=30, stop=stop)))
    started = time.monotonic()
    thread.start()
    time.sleep(0.3)
    stop.set()
    gateway.interrupt_watches(stop)
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 5
    assert result == [[]]


def test_kubeconfig_secrets_are_listed_and_watched_by_the_tenant_resource_label(gateway,
                                                                                 platform):
    selector = "internal.cozystack.io/tenantresource=true"
    items, rv = gateway.list_resource(SECRETS, label_selector=selector)
    assert items == []
    gateway.create_cluster(manifest())
    platform.advance(1)
    events = collect(gateway, SECRETS, rv, until=1, label_selector=selector)
    assert events[0].type == "ADDED"
    assert events[0].object["metadata"]["name"] == "kubernetes-demo-admin-kubeconfig"
    assert json.dumps(events[0].object)  # plain JSON, no client models
