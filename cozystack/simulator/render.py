"""The chart's render-time guards: the `fail` calls a real `helm template` hits after the values
passed the schema.

Each guard reproduces one `fail` of the upstream chart at the release (file and line in the
message, as Helm reports an execution error), in the order Helm executes the templates: deeper
paths first (`templates/helmreleases/*`), then the top-level templates, `cluster.yaml` last.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .releases import TALOS_KUBERNETES, InstanceType, Release

Obj = dict[str, Any]
MEMORY_PATTERN = re.compile(
    r"^[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"
)
CPU_PATTERN = re.compile(r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|m|k|M|G|T|P|E)?$")
SUFFIX = {
    "": 1.0, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}
MiB = 2.0**20
VOLUME_SOURCES = ("configMap", "secret")
RESERVED_VOLUMES = ("talos-ca", "talos-tls-cert")
TRUTHY = ("true", "1", "yes", "on", "y")


class RenderFailure(Exception):
    """A `fail` in a template: Helm stops and reports it as an execution error."""

    def __init__(self, template: str, line: int, column: int, message: str) -> None:
        super().__init__(message)
        self.text = (
            f"execution error at (kubernetes/templates/{template}:{line}:{column}): {message}"
        )


@dataclass(frozen=True)
class RenderContext:
    """What the chart reads besides the values: the tenant and the platform."""

    namespace: str
    has_etcd: bool = True
    oidc_enabled: bool = True
    instance_types: dict[str, InstanceType] = field(default_factory=dict)


def to_float(value: Any) -> float:
    """cozy-lib `resources.toFloat`: a Kubernetes quantity as a number (bytes, cores); like a
    template conversion, what is not a quantity counts as 0."""
    match = QUANTITY.match(str(value).strip())
    if not match:
        return 0.0
    try:
        return float(match.group(1)) * SUFFIX[match.group(2) or ""]
    except ValueError:
        return 0.0


def millicores(value: Any) -> float:
    """The chart's `kubernetes.cpuToMillicores`."""
    return to_float(value) * 1000


def failure(release: Release, values: Obj, context: RenderContext) -> str | None:
    """The execution error a render of `values` stops at, or None when it renders."""
    guards = _v16_guards if release.v16 else _v13_guards
    try:
        guards(release, values, context)
    except RenderFailure as error:
        return error.text
    return None


# --- v1.3.6 ------------------------------------------------------------------------------------


def _v13_guards(release: Release, values: Obj, context: RenderContext) -> None:
    for group in release.node_groups(values).values():
        kind = group.get("instanceType")
        if kind and kind not in context.instance_types:
            raise RenderFailure(
                "cluster.yaml", 284, 9, f"Specified instancetype not exists in cluster: {kind}"
            )


# --- v1.6.2 ------------------------------------------------------------------------------------


def _v16_guards(release: Release, values: Obj, context: RenderContext) -> None:
    addons = _dict(values.get("addons"))
    _ouroboros(addons)
    _hami(addons, context)
    _oidc(_dict(values.get("oidc")), context)
    _talos(values)
    if not context.has_etcd:
        return  # only the awaiting-etcd ConfigMap is rendered past this point
    api_server = _dict(_dict(values.get("controlPlane")).get("apiServer"))
    _extra_volumes(api_server)
    _oidc_extra_args(api_server, _dict(values.get("oidc")))
    for name, group in sorted(release.node_groups(values).items()):
        _group(release, name, group, values, context)


def _dict(value: Any) -> Obj:
    return value if isinstance(value, dict) else {}


def _enabled(addons: Obj, name: str) -> bool:
    return bool(_dict(addons.get(name)).get("enabled"))


def _ouroboros(addons: Obj) -> None:
    if _enabled(addons, "ouroboros") and not _enabled(addons, "ingressNginx"):
        raise RenderFailure(
            "helmreleases/ouroboros.yaml", 54, 5,
            "addons.ouroboros.enabled requires addons.ingressNginx.enabled — ouroboros is a "
            "hairpin-NAT fix for tenant ingress-nginx and has nothing to fix against without it.",
        )
    override = _dict(_dict(addons.get("ouroboros")).get("valuesOverride"))
    gateway = _dict(_dict(_dict(override.get("ouroboros")).get("controller")).get("gatewayApi"))
    wanted = "enabled" in gateway and str(gateway["enabled"]).lower() in TRUTHY
    if wanted and not _enabled(addons, "gatewayAPI"):
        raise RenderFailure(
            "helmreleases/ouroboros.yaml", 79, 5,
            "addons.ouroboros.valuesOverride.ouroboros.controller.gatewayApi.enabled=true "
            "requires addons.gatewayAPI.enabled=true on the same tenant — Gateway-API CRDs "
            "would otherwise be missing and the controller would CrashLoopBackOff on "
            "WaitForCacheSync. Either enable addons.gatewayAPI for the tenant, or drop the "
            "override and let the wrapper mirror the tenant value.",
        )


def _hami(addons: Obj, context: RenderContext) -> None:
    if _enabled(addons, "hami") and context.has_etcd and not _enabled(addons, "gpuOperator"):
        raise RenderFailure(
            "helmreleases/hami.yaml", 3, 5, "addons.hami requires addons.gpuOperator to be enabled"
        )


def _oidc(oidc: Obj, context: RenderContext) -> None:
    mode = oidc.get("mode")
    if mode == "System" and not context.oidc_enabled:
        raise RenderFailure(
            "oidc-keycloak.yaml", 26, 9,
            "spec.oidc.mode: System requires the platform-level OIDC feature "
            "(authentication.oidc.enabled) — enable it in cozystack-values, or use mode: "
            "CustomConfig for a tenant-supplied issuer.",
        )
    if mode == "CustomConfig":
        custom = _dict(oidc.get("customConfig"))
        inline = bool(custom.get("config") or "")
        secret_ref = bool(_dict(custom.get("secretRef")).get("name") or "")
        if inline and secret_ref:
            raise RenderFailure(
                "oidc-authn-config.yaml", 81, 9,
                "spec.oidc.customConfig: set exactly one of `config` (inline) or "
                "`secretRef.name` — they are mutually exclusive.",
            )
        if not (inline or secret_ref):
            raise RenderFailure(
                "oidc-authn-config.yaml", 84, 9,
                "spec.oidc.mode: CustomConfig requires either spec.oidc.customConfig.config "
                "(inline AuthenticationConfiguration) or spec.oidc.customConfig.secretRef.name "
                "(Secret with config.yaml key).",
            )


def _talos(values: Obj) -> None:
    """The Talos <-> Kubernetes support matrix, keyed by the Talos minor."""
    talos_version = str(_dict(values.get("talos")).get("version") or "")
    minor = re.match(r"^v[0-9]+\.[0-9]+", talos_version)
    if minor and minor.group(0) == "v1.13" and values.get("version") not in TALOS_KUBERNETES:
        supported = " ".join(TALOS_KUBERNETES)
        raise RenderFailure(
            "cluster.yaml", 24, 9,
            f"Kubernetes {values.get('version')} is not supported by Talos {talos_version}. "
            f"Supported versions: [{supported}]. Bump tenant 'version' or set talos.version "
            "explicitly.",
        )


def _extra_volumes(api_server: Obj) -> None:
    names: list[str] = []
    for index, volume in enumerate(api_server.get("extraVolumes") or []):
        volume = _dict(volume)
        name = str(volume.get("name") or "")
        where = "controlPlane.apiServer.extraVolumes"
        if not name:
            raise RenderFailure(
                "cluster.yaml", 237, 7,
                f"{where}[{index}]: every volume must set a non-empty name",
            )
        if name in RESERVED_VOLUMES:
            raise RenderFailure(
                "cluster.yaml", 240, 7,
                f'{where}: volume name "{name}" is reserved by the chart for the talos '
                "control-plane secrets — rename your volume to avoid a duplicate volume name in "
                "the control-plane Deployment",
            )
        if name in names:
            raise RenderFailure(
                "cluster.yaml", 243, 7,
                f'{where}: duplicate volume name "{name}" — each extra volume must have a '
                "unique name",
            )
        names.append(name)
        sources = sorted(key for key in volume if key != "name")
        if len(sources) != 1:
            raise RenderFailure(
                "cluster.yaml", 248, 7,
                f'{where}: volume "{name}" must declare exactly one volume source, got '
                f"{len(sources)} ([{' '.join(sources)}])",
            )
        if sources[0] not in VOLUME_SOURCES:
            raise RenderFailure(
                "cluster.yaml", 252, 9,
                f'{where}: volume "{name}" uses a "{sources[0]}" source, which is not permitted '
                "on a management-cluster control-plane pod — only configMap and secret sources "
                "are allowed",
            )
    for index, mount in enumerate(api_server.get("extraVolumeMounts") or []):
        name = str(_dict(mount).get("name") or "")
        where = "controlPlane.apiServer.extraVolumeMounts"
        if not name:
            raise RenderFailure(
                "cluster.yaml", 259, 7, f"{where}[{index}]: every mount must set a non-empty name"
            )
        if name not in names:
            raise RenderFailure(
                "cluster.yaml", 262, 7,
                f'{where}: mount "{name}" references no volume declared in '
                "controlPlane.apiServer.extraVolumes — the chart-managed talos volumes cannot "
                "be mounted",
            )


def _oidc_extra_args(api_server: Obj, oidc: Obj) -> None:
    mode = oidc.get("mode") or "None"
    if mode == "None":
        return
    volumes = [_dict(v).get("name") for v in api_server.get("extraVolumes") or []]
    if "authentication-config" in volumes:
        raise RenderFailure(
            "cluster.yaml", 325, 7,
            'controlPlane.apiServer.extraVolumes: volume name "authentication-config" is '
            "reserved by the chart for OIDC AuthenticationConfiguration when spec.oidc.mode is "
            "not None — rename your volume.",
        )
    for arg in api_server.get("extraArgs") or []:
        arg = str(arg)
        if arg.startswith("--oidc-"):
            raise RenderFailure(
                "cluster.yaml", 343, 9,
                f'controlPlane.apiServer.extraArgs contains "{arg}" while spec.oidc.mode is '
                f'"{mode}" — the kube-apiserver refuses to boot with both '
                "--authentication-config (injected by spec.oidc) and legacy --oidc-* flags.",
            )
        if arg.startswith("--authentication-config"):
            raise RenderFailure(
                "cluster.yaml", 346, 9,
                f'controlPlane.apiServer.extraArgs contains "{arg}" while spec.oidc.mode is '
                f'"{mode}" — the chart already injects --authentication-config= for OIDC.',
            )


def _group(
    release: Release, name: str, group: Obj, values: Obj, context: RenderContext
) -> None:
    resources = _dict(group.get("resources"))
    has_cpu, has_memory = bool(resources.get("cpu")), bool(resources.get("memory"))
    kind = group.get("instanceType")
    if kind and has_cpu != has_memory:
        raise RenderFailure(
            "cluster.yaml", 525, 7,
            f"nodeGroup {name}: set both resources.cpu and resources.memory, or neither",
        )
    instance = None
    if kind and not (has_cpu and has_memory):
        instance = context.instance_types.get(kind)
        if instance is None:
            raise RenderFailure(
                "cluster.yaml", 532, 9,
                f'nodeGroup {name}: specified instanceType "{kind}" not found in cluster',
            )
    if has_memory:
        memory, memory_text = to_float(resources["memory"]), str(resources["memory"])
    else:
        memory = instance.memory if instance else 0.0
        memory_text = f"{memory / 2**30:g}Gi"
    if has_cpu:
        cpu, cpu_text = millicores(resources["cpu"]), str(resources["cpu"])
    else:
        cpu = instance.vcpu * 1000 if instance else 0.0
        cpu_text = f"{cpu / 1000:g}"
    _kubelet(name, _dict(group.get("kubelet")), (memory, memory_text), (cpu, cpu_text))
    if "ephemeralStorage" in group:
        raise RenderFailure(
            "cluster.yaml", 106, 15,
            f'nodeGroup "{name}": ephemeralStorage is no longer supported and should have been '
            "automatically migrated to diskSize by platform migration 41. If you see this error "
            "after upgrading, the migration did not run — check the cozystack-migration-hook Job "
            "logs in cozy-system.",
        )
    version = values.get("version")
    if version not in release.patch_versions:
        raise RenderFailure(
            "_versions.tpl", 4, 120,
            f"Kubernetes version {version} is not supported, allowed versions are "
            f"[{' '.join(sorted(release.patch_versions))}]",
        )
    _max_unhealthy(name, group, _dict(values.get("nodeHealthCheck")))


def _kubelet(
    name: str, kubelet: Obj, effective_memory: tuple[float, str], effective_cpu: tuple[float, str]
) -> None:
    """Reservations and eviction thresholds: formats, hard < soft, and room left on the node
    (effective memory in bytes and CPU in millicores, each with its text)."""
    group = f"nodeGroup {name}"
    memory, memory_text = effective_memory
    cpu, cpu_text = effective_cpu
    for key, pattern, hint in (
        ("systemReservedMemory", MEMORY_PATTERN, "a valid Kubernetes memory quantity (e.g. "
         "128Mi, 1Gi, 1e9, 500e6)"),
        ("kubeReservedMemory", MEMORY_PATTERN, "a valid Kubernetes memory quantity (e.g. "
         "128Mi, 1Gi, 1e9, 500e6)"),
        ("systemReservedCpu", CPU_PATTERN, "a valid Kubernetes CPU quantity (integer millicores "
         "like 100m, or decimal cores like 0.5, 1)"),
        ("kubeReservedCpu", CPU_PATTERN, "a valid Kubernetes CPU quantity (integer millicores "
         "like 100m, or decimal cores like 0.5, 1)"),
    ):
        value = kubelet.get(key)
        if value and not pattern.match(str(value)):
            raise RenderFailure(
                "cluster.yaml", 582, 7, f'{group}: invalid {key} value "{value}" — must be {hint}'
            )
    for key in ("systemReservedMemory", "kubeReservedMemory"):
        if kubelet.get(key) and to_float(kubelet[key]) <= 0:
            raise RenderFailure(
                "cluster.yaml", 590, 9,
                f"{group}: {key} must be a positive value, got {kubelet[key]}",
            )
    for key in ("systemReservedCpu", "kubeReservedCpu"):
        if kubelet.get(key) and millicores(kubelet[key]) <= 0:
            raise RenderFailure(
                "cluster.yaml", 598, 9,
                f"{group}: {key} must be a positive value, got {kubelet[key]}",
            )
    hard = str(kubelet.get("evictionHardMemory") or "7%")
    soft = str(kubelet.get("evictionSoftMemory") or "10%")
    _eviction(group, hard, soft)
    auto_memory = min(max(int(memory / MiB * 0.05), 256), 1024) * MiB if memory else 256 * MiB
    auto_cpu = min(max(int(cpu * 0.05), 50), 500) if cpu else 50
    auto_memory_text = f"{int(auto_memory / MiB)}Mi"
    system_memory = str(kubelet.get("systemReservedMemory") or auto_memory_text)
    kube_memory = str(kubelet.get("kubeReservedMemory") or auto_memory_text)
    if memory:
        hard_bytes = memory * float(hard[:-1]) / 100 if hard.endswith("%") else to_float(hard)
        if to_float(system_memory) + to_float(kube_memory) + hard_bytes >= memory:
            raise RenderFailure(
                "cluster.yaml", 666, 9,
                f"{group}: total reserved memory (systemReservedMemory={system_memory} + "
                f"kubeReservedMemory={kube_memory} + evictionHardMemory={hard}) must be less "
                f"than effective node memory ({memory_text})",
            )
    elif any(kubelet.get(key) for key in (
        "systemReservedMemory", "kubeReservedMemory", "evictionHardMemory", "evictionSoftMemory"
    )):
        raise RenderFailure(
            "cluster.yaml", 684, 9,
            f"{group}: kubelet memory reservations require effective memory to validate — set "
            "resources.memory or instanceType",
        )
    system_cpu = str(kubelet.get("systemReservedCpu") or f"{auto_cpu}m")
    kube_cpu = str(kubelet.get("kubeReservedCpu") or f"{auto_cpu}m")
    if cpu:
        if millicores(system_cpu) + millicores(kube_cpu) >= cpu:
            raise RenderFailure(
                "cluster.yaml", 677, 9,
                f"{group}: total reserved CPU (systemReservedCpu={system_cpu} + kubeReservedCpu="
                f"{kube_cpu}) must be less than effective node CPU ({cpu_text} cores)",
            )
    elif kubelet.get("systemReservedCpu") or kubelet.get("kubeReservedCpu"):
        raise RenderFailure(
            "cluster.yaml", 691, 9,
            f"{group}: cannot validate kubelet CPU reservations without effective CPU — set "
            "resources.cpu or a valid instanceType",
        )


def _eviction(group: str, hard: str, soft: str) -> None:
    for key, value, line in (("evictionHardMemory", hard, 605), ("evictionSoftMemory", soft, 610)):
        if not value.endswith("%") and not MEMORY_PATTERN.match(value):
            example = "7%" if key == "evictionHardMemory" else "10%"
            raise RenderFailure(
                "cluster.yaml", line, 9,
                f'{group}: invalid {key} value "{value}" — must be a percentage (e.g. {example}) '
                "or a valid Kubernetes memory quantity (e.g. 500Mi, 1Gi, 1e9)",
            )
    if hard.endswith("%") and soft.endswith("%"):
        numbers = []
        for key, value in (("evictionHardMemory", hard[:-1]), ("evictionSoftMemory", soft[:-1])):
            if not re.match(r"^[0-9]+(\.[0-9]+)?$", value):
                raise RenderFailure(
                    "cluster.yaml", 617, 9,
                    f'{group}: {key} percentage value "{value}" is not a valid number',
                )
            if not 0 < float(value) <= 100:
                raise RenderFailure(
                    "cluster.yaml", 625, 9,
                    f"{group}: {key} percentage must be greater than 0 and at most 100, "
                    f"got {value}%",
                )
            numbers.append(float(value))
        if numbers[0] >= numbers[1]:
            raise RenderFailure(
                "cluster.yaml", 637, 9,
                f"{group}: evictionHardMemory ({hard}) must be strictly less than "
                f"evictionSoftMemory ({soft})",
            )
    elif not hard.endswith("%") and not soft.endswith("%"):
        if to_float(hard) >= to_float(soft):
            raise RenderFailure(
                "cluster.yaml", 643, 9,
                f"{group}: evictionHardMemory ({hard}) must be strictly less than "
                f"evictionSoftMemory ({soft})",
            )
    else:
        raise RenderFailure(
            "cluster.yaml", 646, 7,
            f"{group}: evictionHardMemory ({hard}) and evictionSoftMemory ({soft}) must use the "
            "same unit type (both percentage or both absolute)",
        )


def _max_unhealthy(name: str, group: Obj, health: Obj) -> None:
    value, source = str(health.get("maxUnhealthy", "")), "nodeHealthCheck.maxUnhealthy"
    if "maxUnhealthy" in group:
        value, source = str(group["maxUnhealthy"]), f"nodeGroups.{name}.maxUnhealthy"
    if not re.match(r"^[0-9]+%?$", value):
        line = 829 if value.endswith("%") else 835
        raise RenderFailure(
            "cluster.yaml", line, 11 if line == 829 else 9,
            f"{source} must be a bare integer (e.g. 0, 1) or an integer percentage (e.g. 50%), "
            f'got "{value}"',
        )

