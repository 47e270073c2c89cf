"""The simulated management cluster, driven through the real `kubernetes` client over HTTP.

These tests pin the v1.3.6 platform behaviour the portal relies on (PLATFORM.md): asynchronous
validation, defaults on GET, the hidden md0 group, replicas starting at 2, watch resume and 410,
terminating deletes, Kamaji's upgrade rules, and the faults used to test resilience.
"""

from __future__ import annotations

import base64
import json
import threading
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
import urllib3
import yaml
from kubernetes import client, config, watch
from kubernetes.client.exceptions import ApiException

from cozystack.simulator import Fault, SimulatedPlatform
from tests.fixtures.simulator import release_schema

NS = "tenant-acme"
APPS = ("apps.cozystack.io", "v1alpha1")
CAPI = ("cluster.x-k8s.io", "v1beta1")
TENANT_SECRETS = ("core.cozystack.io", "v1alpha1")


@pytest.fixture
def simulated_platform(simulated_platform_factory) -> SimulatedPlatform:
    """These tests pin v1.3.6 behaviour (hidden md0, two machines at start, ephemeralStorage);
    `test_simulator_releases.py` covers v1.6.2."""
    return simulated_platform_factory(release="1.3.6")


def group_spec(**overrides: Any) -> dict[str, Any]:
    spec = {
        "minReplicas": 1,
        "maxReplicas": 3,
        "instanceType": "u1.large",
        "ephemeralStorage": "30Gi",
        "resources": {},
        "roles": ["ingress-nginx"],
    }
    spec.update(overrides)
    return spec


def cluster_body(name: str = "demo", **spec: Any) -> dict[str, Any]:
    full = {"version": "v1.34", "nodeGroups": {"md0": group_spec()}}
    full.update(spec)
    return {
        "apiVersion": "apps.cozystack.io/v1alpha1",
        "kind": "Kubernetes",
        "metadata": {"name": name, "namespace": NS},
        "spec": full,
    }


def create(custom: client.CustomObjectsApi, body: dict[str, Any], ns: str = NS) -> dict[str, Any]:
    return custom.create_namespaced_custom_object(*APPS, ns, "kuberneteses", body)


def get(custom: client.CustomObjectsApi, name: str = "demo", ns: str = NS) -> dict[str, Any]:
    return custom.get_namespaced_custom_object(*APPS, ns, "kuberneteses", name)


def patch(custom: client.CustomObjectsApi, body: Any, name: str = "demo", **kw: Any) -> dict:
    return custom.patch_namespaced_custom_object(*APPS, NS, "kuberneteses", name, body, **kw)


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any]:
    for cond in (obj.get("status") or {}).get("conditions", []):
        if cond["type"] == kind:
            return cond
    return {}


def machine_deployments(custom: client.CustomObjectsApi, name: str = "demo") -> dict[str, dict]:
    listed = custom.list_namespaced_custom_object(
        *CAPI,
        NS,
        "machinedeployments",
        label_selector=f"cluster.x-k8s.io/cluster-name=kubernetes-{name}",
    )
    prefix = f"kubernetes-{name}-"
    return {md["metadata"]["name"].removeprefix(prefix): md for md in listed["items"]}


def ready_cluster(
    platform: SimulatedPlatform, custom: client.CustomObjectsApi, **spec: Any
) -> dict:
    create(custom, cluster_body(**spec))
    platform.advance(3.0)
    obj = get(custom)
    assert condition(obj, "Ready")["status"] == "True"
    return obj


def status_of(error: pytest.ExceptionInfo[ApiException]) -> dict[str, Any]:
    return json.loads(error.value.body)


# --- create, status, kubeconfig ------------------------------------------------------------


def test_create_answers_201_and_turns_ready_when_the_clock_advances(simulated_platform, custom):
    _, code, _ = custom.create_namespaced_custom_object_with_http_info(
        *APPS, NS, "kuberneteses", cluster_body()
    )
    assert code == 201
    obj = get(custom)
    assert condition(obj, "Ready")["reason"] == "Progressing"
    assert condition(obj, "Ready")["message"] == "Helm install in progress"
    assert condition(obj, "Released")["status"] == "Unknown"
    assert obj["status"]["version"] == "0.31.2"

    simulated_platform.advance(1.0)
    obj = get(custom)
    assert condition(obj, "Ready")["status"] == "True"
    assert condition(obj, "Ready")["reason"] == "InstallSucceeded"
    assert condition(obj, "Released")["status"] == "True"
    assert condition(obj, "WorkloadsReady")["status"] == "False"  # nodes not Ready yet

    simulated_platform.advance(0.5)
    assert condition(get(custom), "WorkloadsReady")["status"] == "True"


def test_kubeconfig_secret_appears_once_ready_and_tenantsecret_decodes_once(
    simulated_platform, custom, core
):
    name = "kubernetes-demo-admin-kubeconfig"
    uid = create(custom, cluster_body())["metadata"]["uid"]
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(*TENANT_SECRETS, NS, "tenantsecrets", name)
    assert missing.value.status == 404

    simulated_platform.advance(1.0)
    secret = core.read_namespaced_secret(name, NS)
    assert set(secret.data) == {"admin.conf", "super-admin.conf", "admin.svc", "super-admin.svc"}
    assert secret.metadata.owner_references[0].uid == uid
    view = custom.get_namespaced_custom_object(*TENANT_SECRETS, NS, "tenantsecrets", name)
    admin = base64.b64decode(view["data"]["admin.conf"]).decode()
    cluster = yaml.safe_load(admin)["clusters"][0]["cluster"]
    assert cluster["server"] == "https://kubernetes-demo.acme.example.org:443"
    assert cluster["certificate-authority-data"]
    assert base64.b64decode(view["stringData"]["admin.conf"]).decode() == admin
    internal = base64.b64decode(view["data"]["admin.svc"]).decode()
    assert "https://kubernetes-demo.tenant-acme.svc:6443" in internal
    listed = custom.list_namespaced_custom_object(*TENANT_SECRETS, NS, "tenantsecrets")
    assert [item["metadata"]["name"] for item in listed["items"]] == [name]


def test_get_fills_schema_defaults_while_storing_the_spec_as_sent(simulated_platform, custom):
    create(custom, cluster_body(nodeGroups={"md0": {"minReplicas": 1, "resources": {}}}))
    spec = get(custom)["spec"]
    assert spec["storageClass"] == "replicated"
    assert spec["host"] == ""
    assert spec["controlPlane"]["replicas"] == 2
    assert spec["controlPlane"]["apiServer"]["resourcesPreset"] == "large"
    assert spec["addons"]["ingressNginx"] == {
        "enabled": False,
        "exposeMethod": "Proxied",
        "hosts": [],
        "valuesOverride": {},
    }
    assert spec["nodeGroups"]["md0"]["instanceType"] == "u1.medium"
    raw = simulated_platform.raw_object("Kubernetes", NS, "demo")
    assert raw["spec"]["nodeGroups"] == {"md0": {"minReplicas": 1, "resources": {}}}


def test_invalid_spec_is_accepted_then_fails_like_helm_and_recovers_when_fixed(
    simulated_platform, custom
):
    create(custom, cluster_body(nodeGroups={"md0": group_spec(minReplicas="1")}))
    simulated_platform.advance(1.0)
    ready = condition(get(custom), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "InstallFailed")
    assert ready["message"].startswith(
        "Helm install failed for release tenant-acme/kubernetes-demo with chart kubernetes@0.31.2: "
        "values don't meet the specifications of the schema(s) in the following chart(s):\n"
        "kubernetes:\n"
    )
    assert (
        "- nodeGroups.md0.minReplicas: Invalid type. Expected: integer, given: string"
        in ready["message"]
    )
    assert condition(get(custom), "Released")["status"] == "False"

    patch(custom, {"spec": {"nodeGroups": {"md0": {"minReplicas": 1}}}})
    assert condition(get(custom), "Ready")["reason"] == "Progressing"
    simulated_platform.advance(1.0)
    assert condition(get(custom), "Ready")["reason"] == "InstallSucceeded"


def test_group_without_resources_fails_helm_validation_unless_md0_fills_it(
    simulated_platform, custom
):
    group = group_spec()
    del group["resources"]
    create(custom, cluster_body(nodeGroups={"general": group}))
    create(custom, cluster_body("merged", nodeGroups={"md0": group}))  # chart md0 has resources
    simulated_platform.advance(1.0)
    message = condition(get(custom), "Ready")["message"]
    assert "- nodeGroups.general: resources is required" in message
    assert condition(get(custom, "merged"), "Ready")["status"] == "True"


def test_unknown_instance_type_fails_the_install(simulated_platform, custom):
    create(custom, cluster_body(nodeGroups={"md0": group_spec(instanceType="x1.huge")}))
    simulated_platform.advance(1.0)
    ready = condition(get(custom), "Ready")
    assert ready["reason"] == "InstallFailed"
    assert ready["message"].endswith("Specified instancetype not exists in cluster: x1.huge")
    assert machine_deployments(custom) == {}


def test_underscore_spec_key_is_rejected_with_400(simulated_platform, custom):
    with pytest.raises(ApiException) as error:
        create(custom, cluster_body(_internal=True))
    assert error.value.status == 400
    assert status_of(error)["reason"] == "BadRequest"


@pytest.mark.parametrize("name", ["Demo", "1demo", "demo-", "de_mo", "a" * 43])
def test_names_that_are_not_short_dns_1035_labels_are_invalid(simulated_platform, custom, name):
    with pytest.raises(ApiException) as error:
        create(custom, cluster_body(name))
    assert error.value.status == 422
    body = status_of(error)
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_a_42_character_name_is_accepted_and_duplicates_conflict(simulated_platform, custom):
    create(custom, cluster_body("a" * 42))
    with pytest.raises(ApiException) as error:
        create(custom, cluster_body("a" * 42))
    assert error.value.status == 409
    assert status_of(error)["reason"] == "AlreadyExists"


def test_application_definition_publishes_the_running_schema(simulated_platform, custom):
    appdef = custom.get_cluster_custom_object(
        "cozystack.io", "v1alpha1", "applicationdefinitions", "kubernetes"
    )
    application = appdef["spec"]["application"]
    assert (application["kind"], application["plural"]) == ("Kubernetes", "kuberneteses")
    published = json.loads(application["openAPISchema"])
    assert published == json.loads(release_schema("1.3.6").read_text())
    assert appdef["spec"]["release"]["prefix"] == "kubernetes-"
    include = appdef["spec"]["secrets"]["include"]
    assert include == [{"resourceNames": ["kubernetes-{{ .name }}-admin-kubeconfig"]}]


# --- node groups ------------------------------------------------------------------------------


def test_hidden_md0_is_merged_unless_the_spec_names_it(simulated_platform, custom):
    create(custom, cluster_body("only-general", nodeGroups={"general": group_spec()}))
    create(custom, cluster_body("named", nodeGroups={"md0": group_spec()}))
    create(custom, cluster_body("nulled", nodeGroups={"general": group_spec(), "md0": None}))
    simulated_platform.advance(0.1)

    assert set(machine_deployments(custom, "only-general")) == {"general", "md0"}
    hidden = machine_deployments(custom, "only-general")["md0"]
    assert (
        hidden["metadata"]["annotations"][
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"
        ]
        == "10"
    )
    assert set(machine_deployments(custom, "named")) == {"md0"}
    assert set(machine_deployments(custom, "nulled")) == {"general"}
    assert set(get(custom, "only-general")["spec"]["nodeGroups"]) == {"general"}

    # Only a full replace can carry the null that removes md0 (a merge patch's null deletes).
    current = get(custom, "only-general")
    current["spec"]["nodeGroups"]["md0"] = None
    custom.replace_namespaced_custom_object(*APPS, NS, "kuberneteses", "only-general", current)
    assert get(custom, "only-general")["metadata"]["generation"] == 2
    assert set(machine_deployments(custom, "only-general")) == {"general"}


def test_machine_deployments_start_at_two_then_settle_to_min(simulated_platform, custom):
    uid = create(custom, cluster_body())["metadata"]["uid"]
    md = machine_deployments(custom)["md0"]
    assert md["spec"]["replicas"] == 2
    assert md["metadata"]["labels"]["cluster.x-k8s.io/cluster-name"] == "kubernetes-demo"
    annotations = md["metadata"]["annotations"]
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"] == "1"
    assert annotations["cluster.x-k8s.io/cluster-api-autoscaler-node-group-max-size"] == "3"
    assert md["metadata"]["ownerReferences"][0]["uid"] == uid
    assert md["status"]["phase"] == "ScalingUp"

    simulated_platform.advance(1.5)  # control plane up at 1.0, autoscaler acts at 1.5
    md = machine_deployments(custom)["md0"]
    assert md["spec"]["replicas"] == 1
    assert (md["status"]["replicas"], md["status"]["readyReplicas"]) == (1, 1)
    assert md["status"]["phase"] == "Running"


def test_demand_moves_replicas_but_stays_within_min_and_max(simulated_platform, custom):
    ready_cluster(simulated_platform, custom)
    simulated_platform.set_demand(NS, "demo", "md0", 7)
    simulated_platform.advance(0.5)
    md = machine_deployments(custom)["md0"]
    assert md["spec"]["replicas"] == 3
    assert (md["status"]["replicas"], md["status"]["readyReplicas"]) == (3, 1)
    simulated_platform.advance(0.5)
    assert machine_deployments(custom)["md0"]["status"]["readyReplicas"] == 3

    simulated_platform.set_demand(NS, "demo", "md0", 0)
    simulated_platform.advance(0.5)
    md = machine_deployments(custom)["md0"]
    assert (md["spec"]["replicas"], md["status"]["replicas"]) == (1, 1)


def test_template_change_surges_new_nodes_then_removes_old_ones(simulated_platform, custom):
    ready_cluster(
        simulated_platform, custom, nodeGroups={"md0": group_spec(minReplicas=2, maxReplicas=4)}
    )
    patch(custom, {"spec": {"nodeGroups": {"md0": {"instanceType": "u1.xlarge"}}}})
    status = machine_deployments(custom)["md0"]["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (4, 2, 2)

    simulated_platform.advance(1.0)
    status = machine_deployments(custom)["md0"]["status"]
    assert (status["replicas"], status["updatedReplicas"], status["readyReplicas"]) == (2, 2, 2)


def test_changing_only_min_max_updates_annotations_without_replacing_nodes(
    simulated_platform, custom
):
    ready_cluster(simulated_platform, custom)
    before = machine_deployments(custom)["md0"]
    patch(custom, {"spec": {"nodeGroups": {"md0": {"minReplicas": 2, "maxReplicas": 5}}}})
    after = machine_deployments(custom)["md0"]
    assert after["spec"]["template"] == before["spec"]["template"]
    assert (
        after["metadata"]["annotations"][
            "cluster.x-k8s.io/cluster-api-autoscaler-node-group-min-size"
        ]
        == "2"
    )
    simulated_platform.advance(1.0)
    assert machine_deployments(custom)["md0"]["status"]["readyReplicas"] == 2


def test_removing_a_group_deletes_its_machine_deployment(simulated_platform, custom):
    ready_cluster(simulated_platform, custom, nodeGroups={"md0": group_spec(), "gpu": group_spec()})
    patch(custom, {"spec": {"nodeGroups": {"gpu": None}}})
    assert set(machine_deployments(custom)) == {"md0"}


# --- writes: concurrency, patches, status, generation ----------------------------------------


def test_replace_with_a_stale_resource_version_conflicts(simulated_platform, custom):
    create(custom, cluster_body())
    first = get(custom)
    first["spec"]["storageClass"] = "local"
    custom.replace_namespaced_custom_object(*APPS, NS, "kuberneteses", "demo", first)
    first["spec"]["storageClass"] = "replicated-async"
    with pytest.raises(ApiException) as error:
        custom.replace_namespaced_custom_object(*APPS, NS, "kuberneteses", "demo", first)
    assert error.value.status == 409
    assert status_of(error)["reason"] == "Conflict"

    del first["metadata"]["resourceVersion"]  # absent: last write wins
    custom.replace_namespaced_custom_object(*APPS, NS, "kuberneteses", "demo", first)
    assert get(custom)["spec"]["storageClass"] == "replicated-async"


def test_merge_patch_and_json_patch_are_chosen_by_content_type(simulated_platform, custom):
    create(custom, cluster_body())
    patch(custom, {"metadata": {"labels": {"team": "blue"}}, "spec": {"host": "k.example.com"}})
    obj = get(custom)
    assert obj["metadata"]["labels"] == {"team": "blue"}
    assert obj["spec"]["host"] == "k.example.com"

    ops = [
        {"op": "test", "path": "/spec/host", "value": "k.example.com"},
        {"op": "replace", "path": "/spec/nodeGroups/md0/maxReplicas", "value": 5},
        {"op": "remove", "path": "/metadata/labels/team"},
    ]
    patch(custom, ops, _content_type="application/json-patch+json")
    obj = get(custom)
    assert obj["spec"]["nodeGroups"]["md0"]["maxReplicas"] == 5
    assert obj["metadata"].get("labels") == {}

    with pytest.raises(ApiException) as error:
        patch(custom, [{"op": "test", "path": "/spec/host", "value": "nope"}])
    assert error.value.status == 422


def test_status_is_only_written_through_the_status_subresource(simulated_platform, custom):
    create(custom, cluster_body())
    obj = get(custom)
    conditions = obj["status"]["conditions"]
    obj["status"] = {"version": "hacked"}
    obj["spec"]["storageClass"] = "local"
    custom.replace_namespaced_custom_object(*APPS, NS, "kuberneteses", "demo", obj)
    obj = get(custom)
    assert obj["status"]["conditions"] == conditions
    assert obj["spec"]["storageClass"] == "local"

    answer = custom.patch_namespaced_custom_object_status(
        *APPS, NS, "kuberneteses", "demo", {"status": {"note": "x"}, "spec": {"host": "nope"}}
    )
    assert answer["status"]["note"] == "x"  # (the platform's controller then rewrites status)
    assert answer["spec"]["host"] == ""
    assert get(custom)["spec"]["host"] == ""


def test_generation_moves_only_when_the_spec_changes(simulated_platform, custom):
    assert create(custom, cluster_body())["metadata"]["generation"] == 1
    patch(custom, {"metadata": {"labels": {"a": "b"}}})
    assert get(custom)["metadata"]["generation"] == 1
    custom.patch_namespaced_custom_object_status(
        *APPS, NS, "kuberneteses", "demo", {"status": {"x": 1}}
    )
    assert get(custom)["metadata"]["generation"] == 1
    patch(custom, {"spec": {"storageClass": "local"}})
    assert get(custom)["metadata"]["generation"] == 2


def test_label_and_field_selectors_filter_lists(simulated_platform, custom):
    for name in ("a", "b", "c"):
        body = cluster_body(name)
        body["metadata"]["labels"] = {"tier": "gold" if name == "a" else "silver"}
        if name == "c":
            body["metadata"]["labels"]["beta"] = "yes"
        create(custom, body)

    def names(**kw: Any) -> list[str]:
        items = custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses", **kw)["items"]
        return [item["metadata"]["name"] for item in items]

    assert names(label_selector="tier=gold") == ["a"]
    assert names(label_selector="tier==silver,!beta") == ["b"]
    assert names(label_selector="tier in (gold, silver),beta") == ["c"]
    assert names(label_selector="tier notin (gold)") == ["b", "c"]
    assert names(label_selector="tier!=silver") == ["a"]
    assert names(field_selector="metadata.name=b") == ["b"]
    assert names(field_selector="metadata.name!=b") == ["a", "c"]
    everywhere = custom.list_cluster_custom_object(
        *CAPI, "machinedeployments", label_selector="cluster.x-k8s.io/cluster-name=kubernetes-b"
    )
    assert [md["metadata"]["name"] for md in everywhere["items"]] == ["kubernetes-b-md0"]
    with pytest.raises(ApiException) as error:
        names(field_selector="spec.version=v1.34")
    assert error.value.status == 400


def test_events_are_listed_by_involved_object(simulated_platform, custom, core):
    ready_cluster(simulated_platform, custom)
    events = core.list_namespaced_event(NS, field_selector="involvedObject.name=kubernetes-demo")
    assert [e.reason for e in events.items] == ["InstallSucceeded"]
    assert events.items[0].involved_object.kind == "HelmRelease"
    everywhere = core.list_event_for_all_namespaces(field_selector="reason=ScalingReplicaSet")
    assert everywhere.items[0].involved_object.name == "kubernetes-demo-md0"


# --- watch ------------------------------------------------------------------------------------


def test_watch_starts_with_added_for_existing_objects_then_streams_live(simulated_platform, custom):
    create(custom, cluster_body("first"))
    seen: list[tuple[str, str]] = []
    started = threading.Event()
    w = watch.Watch()

    def consume() -> None:
        for event in w.stream(
            custom.list_namespaced_custom_object, *APPS, NS, "kuberneteses", timeout_seconds=5
        ):
            seen.append((event["type"], event["object"]["metadata"]["name"]))
            started.set()
            if event["object"]["metadata"]["name"] == "second":
                w.stop()

    thread = threading.Thread(target=consume)
    thread.start()
    assert started.wait(5)
    create(custom, cluster_body("second"))
    thread.join(5)
    assert seen[0] == ("ADDED", "first")
    assert ("ADDED", "second") in seen


def test_watch_resumes_from_a_resource_version_without_missing_events(simulated_platform, custom):
    create(custom, cluster_body("keep"))
    rv = custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses")["metadata"][
        "resourceVersion"
    ]
    create(custom, cluster_body("new"))
    patch(custom, {"metadata": {"labels": {"x": "y"}}}, name="keep")
    custom.delete_namespaced_custom_object(*APPS, NS, "kuberneteses", "new")
    simulated_platform.advance(0.5)  # terminating phase over: "new" is gone

    events = []
    w = watch.Watch()
    for event in w.stream(
        custom.list_namespaced_custom_object,
        *APPS,
        NS,
        "kuberneteses",
        resource_version=rv,
        timeout_seconds=5,
        _request_timeout=10,
    ):
        events.append((event["type"], event["object"]["metadata"]["name"]))
        if event["type"] == "DELETED":
            w.stop()
    assert events[0] == ("ADDED", "new")
    assert ("MODIFIED", "keep") in events
    assert events[-1] == ("DELETED", "new")


def test_watch_honours_timeout_seconds(simulated_platform, custom):
    started = time.monotonic()
    events = list(
        watch.Watch().stream(
            custom.list_namespaced_custom_object, *APPS, NS, "kuberneteses", timeout_seconds=1
        )
    )
    assert events == []
    assert 0.9 <= time.monotonic() - started < 3


def test_watch_from_a_compacted_resource_version_gets_410(simulated_platform, custom):
    rv = create(custom, cluster_body())["metadata"]["resourceVersion"]
    patch(custom, {"metadata": {"labels": {"a": "b"}}})
    simulated_platform.compact()
    with pytest.raises(ApiException) as error:
        list(
            watch.Watch().stream(
                custom.list_namespaced_custom_object,
                *APPS,
                NS,
                "kuberneteses",
                resource_version=rv,
                timeout_seconds=1,
            )
        )
    assert error.value.status == 410


def test_watch_label_selector_reports_objects_leaving_the_selection(simulated_platform, custom):
    body = cluster_body()
    body["metadata"]["labels"] = {"watched": "yes"}
    rv = create(custom, body)["metadata"]["resourceVersion"]
    patch(custom, {"metadata": {"labels": {"watched": None}}})
    events = []
    w = watch.Watch()
    for event in w.stream(
        custom.list_namespaced_custom_object,
        *APPS,
        NS,
        "kuberneteses",
        label_selector="watched=yes",
        resource_version=str(int(rv) - 1),
        timeout_seconds=5,
    ):
        events.append(event["type"])
        if event["type"] == "DELETED":
            w.stop()
    assert events[0] == "ADDED"
    assert events[-1] == "DELETED"


# --- delete, upgrades --------------------------------------------------------------------------


def test_delete_is_terminating_first_then_cascades(simulated_platform, custom, core):
    ready_cluster(simulated_platform, custom)
    answer = custom.delete_namespaced_custom_object(*APPS, NS, "kuberneteses", "demo")
    assert answer["metadata"]["deletionTimestamp"]
    ready = condition(get(custom), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "Deleting")

    simulated_platform.advance(0.5)
    with pytest.raises(ApiException) as error:
        get(custom)
    assert error.value.status == 404
    assert machine_deployments(custom) == {}
    with pytest.raises(ApiException):
        core.read_namespaced_secret("kubernetes-demo-admin-kubeconfig", NS)


def test_finalizers_hold_deletion_and_owner_references_cascade(simulated_platform, core):
    owner = core.create_namespaced_secret(
        NS, {"metadata": {"name": "owner", "finalizers": ["example.com/hold"]}}
    )
    core.create_namespaced_secret(
        NS,
        {
            "metadata": {
                "name": "child",
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Secret",
                        "name": "owner",
                        "uid": owner.metadata.uid,
                    }
                ],
            }
        },
    )
    core.delete_namespaced_secret("owner", NS)
    assert core.read_namespaced_secret("owner", NS).metadata.deletion_timestamp is not None
    core.patch_namespaced_secret("owner", NS, {"metadata": {"finalizers": None}})
    names = [s.metadata.name for s in core.list_namespaced_secret(NS).items]
    assert names == []


def test_upgrades_may_only_move_one_minor_forward(simulated_platform, custom):
    ready_cluster(simulated_platform, custom, version="v1.32")
    patch(custom, {"spec": {"version": "v1.34"}})
    simulated_platform.advance(1.0)
    ready = condition(get(custom), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "UpgradeFailed")
    assert "unable to upgrade to a version greater than the next minor" in ready["message"]

    patch(custom, {"spec": {"version": "v1.33"}})
    simulated_platform.advance(1.0)
    assert condition(get(custom), "Ready")["reason"] == "UpgradeSucceeded"
    template = machine_deployments(custom)["md0"]["spec"]["template"]["spec"]
    assert template["version"] == "v1.33.8"

    patch(custom, {"spec": {"version": "v1.32"}})
    simulated_platform.advance(1.0)
    assert "unable to downgrade" in condition(get(custom), "Ready")["message"]


def test_fail_cluster_forces_ready_false_until_the_spec_changes(simulated_platform, custom):
    ready_cluster(simulated_platform, custom)
    simulated_platform.fail_cluster(NS, "demo", reason="ArtifactFailed", message="chart gone")
    ready = condition(get(custom), "Ready")
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "ArtifactFailed",
        "chart gone",
    )
    patch(custom, {"spec": {"storageClass": "local"}})
    simulated_platform.advance(1.0)
    assert condition(get(custom), "Ready")["reason"] == "UpgradeSucceeded"


# --- faults, auth, errors -----------------------------------------------------------------------


def test_fault_answers_its_status_the_given_number_of_times(simulated_platform, custom):
    create(custom, cluster_body())
    simulated_platform.faults.add(
        Fault(method="GET", path=r"/kuberneteses/demo$", status=503, times=2)
    )
    for _ in range(2):
        with pytest.raises(ApiException) as error:
            get(custom)
        assert error.value.status == 503
    assert get(custom)["metadata"]["name"] == "demo"
    assert len(simulated_platform.faults) == 0


def test_latency_fault_delays_but_succeeds(simulated_platform, custom):
    simulated_platform.faults.add(Fault(path="kuberneteses", latency=0.3, times=1))
    started = time.monotonic()
    custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses")
    assert time.monotonic() - started >= 0.3


def test_dropped_connection_and_platform_down(simulated_platform, custom):
    simulated_platform.faults.add(Fault(method="POST", drop=True, times=1))
    with pytest.raises(urllib3.exceptions.HTTPError):
        create(custom, cluster_body())
    assert simulated_platform.requests("POST")[-1].status == 0
    create(custom, cluster_body())

    simulated_platform.set_down(True)
    with pytest.raises(urllib3.exceptions.HTTPError):
        custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses", _request_timeout=2)
    simulated_platform.set_down(True, mode="503")
    with pytest.raises(ApiException) as error:
        get(custom)
    assert error.value.status == 503
    simulated_platform.set_down(False)
    assert get(custom)["metadata"]["name"] == "demo"


def test_control_endpoints_need_the_token_and_inject_faults(simulated_platform, custom):
    def control(method: str, path: str, body: Any = None, token: str | None = None) -> Any:
        request = urllib.request.Request(
            simulated_platform.url + path,
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {token or simulated_platform.token}"},
        )
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read())

    with pytest.raises(urllib.error.HTTPError) as refused:
        control("GET", "/_sim/faults", token="wrong")
    assert refused.value.code == 401
    control(
        "POST", "/_sim/faults", {"method": "GET", "path": "kuberneteses", "status": 429, "times": 1}
    )
    with pytest.raises(ApiException) as error:
        custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses")
    assert error.value.status == 429
    assert control("GET", "/_sim/faults") == []


def test_wrong_token_gets_401(simulated_platform, tmp_path):
    bad = tmp_path / "bad-kubeconfig"
    bad.write_text(
        simulated_platform.kubeconfig_path.read_text().replace(simulated_platform.token, "nope")
    )
    api_client = config.new_client_from_config(config_file=str(bad))
    try:
        with pytest.raises(ApiException) as error:
            client.CustomObjectsApi(api_client).list_namespaced_custom_object(
                *APPS, NS, "kuberneteses"
            )
        assert error.value.status == 401
        assert status_of(error)["reason"] == "Unauthorized"
    finally:
        api_client.close()


def test_unknown_paths_and_objects_answer_404_status(simulated_platform, custom, core):
    with pytest.raises(ApiException) as error:
        get(custom, "absent")
    assert status_of(error)["reason"] == "NotFound"
    assert status_of(error)["message"] == 'kuberneteses.apps.cozystack.io "absent" not found'
    with pytest.raises(ApiException) as error:
        custom.list_namespaced_custom_object("apps.cozystack.io", "v1alpha1", NS, "postgreses")
    assert error.value.status == 404
    assert simulated_platform.server_errors == []


# --- API details ------------------------------------------------------------------------------


def test_lists_paginate_with_limit_and_continue(simulated_platform, custom):
    for name in ("a", "b", "c"):
        create(custom, cluster_body(name))
    first = custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses", limit=2)
    assert [i["metadata"]["name"] for i in first["items"]] == ["a", "b"]
    assert first["metadata"]["remainingItemCount"] == 1
    rest = custom.list_namespaced_custom_object(
        *APPS, NS, "kuberneteses", limit=2, _continue=first["metadata"]["continue"]
    )
    assert [i["metadata"]["name"] for i in rest["items"]] == ["c"]
    assert "continue" not in rest["metadata"]


def test_dry_run_and_server_owned_fields_on_create(simulated_platform, custom):
    created = custom.create_namespaced_custom_object(
        *APPS, NS, "kuberneteses", cluster_body(), dry_run="All"
    )
    assert created["metadata"]["name"] == "demo"
    assert simulated_platform.get_object("Kubernetes", NS, "demo") is None
    body = cluster_body()
    body["metadata"]["resourceVersion"] = "7"
    with pytest.raises(ApiException) as error:
        create(custom, body)
    assert error.value.status == 400


def test_tenantsecrets_are_read_only(simulated_platform, custom):
    with pytest.raises(ApiException) as error:
        custom.create_namespaced_custom_object(
            *TENANT_SECRETS, NS, "tenantsecrets", {"metadata": {"name": "x"}, "data": {}}
        )
    assert error.value.status == 405


def test_discovery_and_version_answer(simulated_platform, api):
    assert client.VersionApi(api).get_code().git_version.startswith("v1.")
    groups = {g.name for g in client.ApisApi(api).get_api_versions().groups}
    assert {"apps.cozystack.io", "core.cozystack.io", "cluster.x-k8s.io"} <= groups


def test_real_clock_platform_moves_on_its_own(simulated_platform_factory):
    platform = simulated_platform_factory(
        release="1.3.6", clock=None, ready_after=0.2, node_ready_after=0.1, settle_after=0.1
    )
    api_client = config.new_client_from_config(config_file=str(platform.kubeconfig_path))
    try:
        custom = client.CustomObjectsApi(api_client)
        create(custom, cluster_body())
        deadline = time.monotonic() + 5
        while condition(get(custom), "WorkloadsReady").get("status") != "True":
            assert time.monotonic() < deadline, get(custom)["status"]
            time.sleep(0.05)
        assert condition(get(custom), "Ready")["reason"] == "InstallSucceeded"
    finally:
        api_client.close()


def test_reset_empties_the_platform_but_keeps_the_schema(simulated_platform, custom):
    ready_cluster(simulated_platform, custom)
    simulated_platform.faults.add(Fault(path="nothing-matches-this"))
    simulated_platform.reset()
    assert custom.list_namespaced_custom_object(*APPS, NS, "kuberneteses")["items"] == []
    assert simulated_platform.objects("Secret") == []
    assert simulated_platform.objects("MachineDeployment") == []
    assert len(simulated_platform.faults) == 0
    assert simulated_platform.get_object("ApplicationDefinition", None, "kubernetes")
    create(custom, cluster_body())
    simulated_platform.advance(1.0)
    assert condition(get(custom), "Ready")["reason"] == "InstallSucceeded"
