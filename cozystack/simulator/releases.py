"""The Cozystack releases the simulator can run, each read from its upstream files.

Every release brings its own byte copies of the upstream chart files (`cozystack/data/` holds
v1.3.6, `cozystack/data/v1.6.2/` holds v1.6.2): the values schema the ApplicationDefinition
publishes, the chart's `values.yaml` Helm merges under every spec, the pinned patch versions
and the cluster's instance types. What differs in behaviour between the two contracts is
described by the `Release` flags and methods below (PLATFORM.md, PLATFORM-v1.6.md).
"""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Obj = dict[str, Any]
DATA_DIR = Path(__file__).resolve().parent.parent / "data"

# The release `simulate_platform`, `make run` and the test fixtures start by default: the current
# contract. One constant on purpose: it moves all of them at once (tests of v1.3.6 name it).
DEFAULT_RELEASE = "1.6.2"
RELEASES = ("1.3.6", "1.6.2")

# The chart revision HelmRelease `status.lastAttemptedRevision` reports, shown as `status.version`.
CHART_VERSIONS = {"1.3.6": "0.31.2", "1.6.2": "1.6.2"}

# The default group the v1.6 chart renders when `nodeGroups` is empty (helper
# "kubernetes.nodeGroups"); migration 47 writes the same group into objects that lacked one.
DEFAULT_MD0_V16: Obj = {
    "minReplicas": 0,
    "maxReplicas": 10,
    "instanceType": "u1.medium",
    "diskSize": "20Gi",
    "storageClass": "",
    "roles": ["ingress-nginx"],
    "resources": {},
    "gpus": [],
    "kubelet": {},
}
TALOS_VERSION = "v1.13.6"
TALOS_KUBERNETES = ("v1.31", "v1.32", "v1.33", "v1.34", "v1.35", "v1.36")

# v1.3.6 had no published ApplicationDefinition file; this is what it carried (PLATFORM.md 0).
_V13_APPLICATION_DEFINITION: Obj = {
    "metadata": {"name": "kubernetes"},
    "spec": {
        "application": {"kind": "Kubernetes", "plural": "kuberneteses", "singular": "kubernetes"},
        "release": {
            "prefix": "kubernetes-",
            "labels": {"cozystack.io/ui": "true"},
            "chart": {
                "name": "kubernetes",
                "sourceRef": {
                    "kind": "HelmRepository",
                    "name": "cozystack-apps",
                    "namespace": "cozy-public",
                },
            },
        },
        "secrets": {
            "exclude": [],
            "include": [{"resourceNames": ["kubernetes-{{ .name }}-admin-kubeconfig"]}],
        },
    },
}


@dataclass(frozen=True)
class InstanceType:
    """A `VirtualMachineClusterInstancetype`: guest vCPUs and guest memory in bytes."""

    name: str
    vcpu: float
    memory: float


@dataclass(frozen=True)
class Release:
    """One Cozystack release: its upstream files and how its chart and API behave."""

    name: str
    directory: Path
    schema_text: str
    values: Obj
    patch_versions: dict[str, str]
    instance_types: dict[str, InstanceType]
    gpu_names: tuple[str, ...]
    application_definition: Obj

    # --- identity -----------------------------------------------------------------------------

    @property
    def key(self) -> tuple[int, ...]:
        return tuple(int(part) for part in self.name.split("."))

    @property
    def dialect(self) -> str:
        """`v1.3` for v1.3.x; `v1.6` for v1.4.0-v1.6.x (same contract, v1.6.2 as reference)."""
        return "v1.3" if self.key < (1, 4) else "v1.6"

    @property
    def v16(self) -> bool:
        return self.dialect == "v1.6"

    @property
    def chart_version(self) -> str:
        return CHART_VERSIONS[self.name]

    @property
    def schema(self) -> Obj:
        schema: Obj = json.loads(self.schema_text)
        return schema

    def chart_values(self) -> Obj:
        """The chart's values.yaml (a fresh copy): what Helm merges user values over."""
        return copy.deepcopy(self.values)

    # --- behaviour ----------------------------------------------------------------------------

    @property
    def ready_waits_for_control_plane(self) -> bool:
        """v1.3: Helm waited, so Ready=True meant the control plane answered. v1.6 installs
        with disable-wait: Ready=True only means the manifests were applied (row 19)."""
        return not self.v16

    @property
    def serves_options(self) -> bool:
        """The Option API (`core.cozystack.io/v1alpha1` `options`) exists from v1.6 (row 22)."""
        return self.v16

    @property
    def serves_kubernetes_nodes(self) -> bool:
        """The `KubernetesNodes` app (worker pools outside `spec.nodeGroups`, rows 23-24) is
        shipped from v1.6 (optional there; the simulator always serves it)."""
        return self.v16

    @functools.cached_property
    def nodes_schema(self) -> Obj:
        """The `KubernetesNodes` values schema (v1.6): what GET fills in as defaults."""
        path = self.directory / "kubernetes-nodes.values.schema.json"
        if not path.exists():
            return {}
        schema: Obj = json.loads(path.read_text(encoding="utf-8"))
        return schema

    @property
    def renders_etcd_beacon(self) -> bool:
        """v1.6 renders only ConfigMap `<release>-awaiting-etcd` (and reports Ready) when the
        tenant has no etcd; v1.3 rendered the control plane anyway, which failed (inferred)."""
        return self.v16

    def node_groups(self, values: Obj) -> Obj:
        """The groups the chart renders from merged values. v1.3's values.yaml ships `md0` and
        Helm's map merge adds it to every release; v1.6 adds `md0` only when the map is empty."""
        groups = values.get("nodeGroups")
        groups = groups if isinstance(groups, dict) else {}
        groups = {name: spec for name, spec in groups.items() if isinstance(spec, dict)}
        if self.v16 and not groups:
            return {"md0": copy.deepcopy(DEFAULT_MD0_V16)}
        return groups

    def initial_replicas(self, min_replicas: int) -> int:
        """v1.3 hard-codes `replicas: 2`; v1.6 lets CAPI seed it from the min-size annotation."""
        return min_replicas if self.v16 else 2

    def template_inputs(self, group: Obj, values: Obj) -> Obj:
        """What goes into the KubevirtMachineTemplate (and its hash): changing any of it
        replaces every node of the group. v1.6 also rolls every worker onto Talos once."""
        if not self.v16:
            keys = ("instanceType", "ephemeralStorage", "resources", "roles", "gpus")
            return {key: group.get(key) for key in keys}
        keys = ("instanceType", "diskSize", "resources", "roles", "gpus")
        inputs = {key: group.get(key) for key in keys}
        inputs["storageClass"] = group.get("storageClass") or values.get("storageClass") or ""
        talos_values = values.get("talos")
        talos: Obj = talos_values if isinstance(talos_values, dict) else {}
        inputs["talos"] = [talos.get("version"), talos.get("schematicID")]
        return inputs

    def bootstrap_ref(self, md_name: str, namespace: str, template_name: str) -> Obj:
        if not self.v16:
            return {
                "apiVersion": "bootstrap.cluster.x-k8s.io/v1beta1",
                "kind": "KubeadmConfigTemplate",
                "name": template_name,
            }
        return {
            "apiVersion": "bootstrap.cluster.x-k8s.io/v1alpha3",
            "kind": "TalosConfigTemplate",
            "name": md_name,
            "namespace": namespace,
        }

    def application_definition_body(self, schema_text: str) -> Obj:
        """The ApplicationDefinition `kubernetes` as this release ships it, publishing
        `schema_text` as its `openAPISchema`."""
        body = copy.deepcopy(self.application_definition)
        body["spec"]["application"]["openAPISchema"] = schema_text
        return body


def _read_instance_types(path: Path) -> dict[str, InstanceType]:
    """Hikube's documented types plus every upstream one: the cluster's instance types."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data.get("instance_types", [])
    entries += data.get("upstream_only_not_documented_by_hikube", [])
    return {
        entry["name"]: InstanceType(
            entry["name"], float(entry["vcpu"]), float(entry["memory_gib"]) * 2**30
        )
        for entry in entries
    }


def _read_gpus(path: Path, v16: bool) -> tuple[str, ...]:
    """GPU resource names the platform permits: Hikube's list at v1.3.6; the upstream
    passthrough defaults the platform GPU operator owns from v1.6 (row 26)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    entries = data.get("gpus_upstream_passthrough_defaults") if v16 else data.get("gpus")
    return tuple(entry["name"] for entry in entries or [])


def _application_definition(directory: Path, v16: bool) -> Obj:
    if not v16:
        return copy.deepcopy(_V13_APPLICATION_DEFINITION)
    shipped = yaml.safe_load(
        (directory / "applicationdefinition-kubernetes.yaml").read_text(encoding="utf-8")
    )
    annotations = (shipped.get("metadata") or {}).get("annotations") or {}
    return {
        "metadata": {"name": "kubernetes", "annotations": dict(annotations)},
        "spec": shipped["spec"],
    }


@functools.cache
def load_release(name: str) -> Release:
    """The release `name` ("1.3.6" or "1.6.2"), read once from `cozystack/data/`."""
    if name not in RELEASES:
        raise ValueError(
            f"unknown Cozystack release {name!r}; the simulator knows {', '.join(RELEASES)}"
        )
    directory = DATA_DIR if name == "1.3.6" else DATA_DIR / f"v{name}"
    v16 = name != "1.3.6"
    versions = json.loads((directory / "versions.json").read_text(encoding="utf-8"))
    return Release(
        name=name,
        directory=directory,
        schema_text=(directory / "kubernetes.values.schema.json").read_text(encoding="utf-8"),
        values=yaml.safe_load((directory / "kubernetes.values.yaml").read_text(encoding="utf-8")),
        patch_versions=dict(versions["resolved_patch"]),
        instance_types=_read_instance_types(directory / "instance-types.json"),
        gpu_names=_read_gpus(directory / "instance-types.json", v16),
        application_definition=_application_definition(directory, v16),
    )

