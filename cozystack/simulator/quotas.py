"""The tenant namespaces' ResourceQuotas and what counts against them (PLATFORM.md f).

Kubernetes' quota controller keeps `status.hard` equal to `spec.hard` and `status.used` at what
the namespace's pods, volumes and Services use, for every resource the quota limits. Here the
namespace holds: one Kamaji control-plane pod per cluster whose manifests are applied (the
default presets' limits: apiServer `c1.medium`; controller manager, scheduler and konnectivity
`t1.micro`), and one virt-launcher pod per worker machine (the node's vCPUs as its CPU limit, a
tenth of them as its request, at the platform's CPU allocation ratio; its memory as request and
limit; its disk as a storage request; its GPUs as `requests.nvidia.com/<model>`). A cluster whose
ingress is exposed through a LoadBalancer takes a `services.loadbalancers`.

Admission is Kubernetes' too: a machine whose pod would exceed a quota is not started (`refusal`,
in the apiserver's words, reported once as a `FailedCreate` event); the cluster object was
accepted, so exhaustion shows as missing workers, never as an API error.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .render import to_float
from .resources import RESOURCE_QUOTAS

if TYPE_CHECKING:
    from .controller import PlatformController
    from .nodes import NodeGroup
    from .store import Store

Obj = dict[str, Any]
QUOTA_NAMES = ("tenant-quota", "tenant-quota-allocated")
CPU_ALLOCATION_RATIO = 10.0
CONTROL_PLANE_CPU = 2.0 + 3 * 0.5  # c1.medium + 3 x t1.micro (limits, cores)
CONTROL_PLANE_MEMORY = 2.0 * 2**30 + 3 * 256.0 * 2**20
CPU_KEYS = ("limits.cpu", "requests.cpu", "cpu")
GIB, MIB = 2**30, 2**20


def _add(totals: dict[str, float], cpu: float, memory: float, pods: int = 1) -> None:
    totals["limits.cpu"] += cpu
    totals["requests.cpu"] += cpu / CPU_ALLOCATION_RATIO
    totals["limits.memory"] += memory
    totals["requests.memory"] += memory
    totals["pods"] += pods


def _machine(totals: dict[str, float], group: NodeGroup, controller: PlatformController) -> None:
    spec = group.spec
    given = spec.get("resources")
    resources: Obj = given if isinstance(given, dict) else {}
    instance = controller.instance_types.get(str(spec.get("instanceType") or ""))
    cpu = to_float(resources.get("cpu")) if resources.get("cpu") else (
        instance.vcpu if instance else 0.0)
    memory = to_float(resources.get("memory")) if resources.get("memory") else (
        instance.memory if instance else 0.0)
    _add(totals, cpu, memory)
    totals["requests.storage"] += to_float(spec.get("diskSize") or spec.get("ephemeralStorage"))
    for gpu in spec.get("gpus") or []:
        if isinstance(gpu, dict) and gpu.get("name"):
            totals[f"requests.{gpu['name']}"] += 1


def namespace_usage(controller: PlatformController, namespace: str) -> dict[str, float]:
    """What the namespace's clusters use, per quota resource (base units)."""
    totals: dict[str, float] = defaultdict(float)
    groups: list[NodeGroup] = []
    for state in controller.states.values():
        if state.namespace != namespace or state.uninstalled:
            continue
        if state.applied is not None and not state.awaiting:
            _add(totals, CONTROL_PLANE_CPU, CONTROL_PLANE_MEMORY)
            ingress = ((state.applied or {}).get("addons") or {}).get("ingressNginx") or {}
            if ingress.get("enabled") and ingress.get("exposeMethod") == "LoadBalancer":
                totals["services.loadbalancers"] += 1
        groups += state.groups.values()
    groups += [p.group for p in controller.node_pools.pools.values()
               if p.namespace == namespace and p.group is not None]
    for group in groups:
        for _count in range(len(group.machines)):
            _machine(totals, group, controller)
    totals["cpu"], totals["memory"] = totals["requests.cpu"], totals["requests.memory"]
    totals["services"] = totals["services.loadbalancers"]
    return totals


def quantity(resource: str, value: float) -> str:
    """`value` the way the apiserver writes it: millicores for CPU, Gi/Mi for bytes."""
    if resource in CPU_KEYS:
        millis = round(value * 1000)
        return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"
    if "memory" in resource or "storage" in resource:
        size = round(value)
        for suffix, unit in (("Gi", GIB), ("Mi", MIB)):
            if size and size % unit == 0:
                return f"{size // unit}{suffix}"
        return str(size)
    return str(round(value))


def quota_body(namespace: str, name: str, hard: dict[str, str]) -> Obj:
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hard": dict(hard)},
    }


def update_quota_status(store: Store, controller: PlatformController,
                        quotas: Iterable[Obj] | None = None) -> None:
    """Write `status` of every ResourceQuota (a no-op write changes nothing, so a steady
    namespace costs no resourceVersion)."""
    usage: dict[str, dict[str, float]] = {}
    for quota in quotas if quotas is not None else store.raw_items(RESOURCE_QUOTAS):
        meta = quota["metadata"]
        namespace = meta.get("namespace") or ""
        if namespace not in usage:
            usage[namespace] = namespace_usage(controller, namespace)
        hard = (quota.get("spec") or {}).get("hard") or {}
        used = {key: quantity(key, usage[namespace].get(key, 0.0)) for key in hard}
        status = {"hard": dict(hard), "used": used}
        if quota.get("status") != status:
            store.write_status(RESOURCE_QUOTAS, namespace, meta["name"], status)


def parse_quota_option(text: str) -> tuple[str, dict[str, str]]:
    """`tenant-acme:limits.cpu=16,limits.memory=64Gi` -> (namespace, hard), for the command
    line of `simulate_platform`."""
    namespace, sep, pairs = text.partition(":")
    if not sep or not namespace.strip():
        raise ValueError(f"expected NAMESPACE:RESOURCE=AMOUNT,..., got {text!r}")
    hard = {}
    for pair in pairs.split(","):
        key, eq, value = pair.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise ValueError(f"expected RESOURCE=AMOUNT, got {pair!r}")
        hard[key.strip()] = value.strip()
    return namespace.strip(), hard


def parent_quota_refusal(tenant: str, resource: str, requested: str, remaining: str,
                         parent_limit: str, allocated: str, used: str | None = None) -> str:
    """The message of cozystack-api's hierarchical quota gate (v1.6) refusing a child tenant's
    quota above its parent's remaining budget: a synchronous 422 (`field.Forbidden` in an
    `Invalid` Status). `used=None` words it as releases that did not count the parent pool's
    usage yet."""
    pool = f", {used} currently in use by the parent pool" if used is not None else ""
    return (
        f'Tenant.apps.cozystack.io "{tenant}" is invalid: spec.resourceQuotas[{resource}]: '
        f"Forbidden: requested {requested} exceeds the parent tenant's remaining "
        f'"{resource}" quota of {remaining} (parent allows {parent_limit}, {allocated} already '
        f"allocated to sibling tenants{pool}); a child tenant may not be granted more quota "
        "than its parent has left"
    )


def machine_footprint(group: NodeGroup, controller: PlatformController) -> dict[str, float]:
    """What one more machine of `group` asks of the quotas (its virt-launcher pod)."""
    totals: dict[str, float] = defaultdict(float)
    _machine(totals, group, controller)
    totals["cpu"], totals["memory"] = totals["requests.cpu"], totals["requests.memory"]
    return totals


def refusal(
    controller: PlatformController, quotas: list[Obj], group: NodeGroup, pod: str
) -> str | None:
    """Kubernetes' ResourceQuota admission for one more machine of `group` (`quotas`: the
    namespace's ResourceQuotas): its refusal in the apiserver's words, or None when it fits."""
    if not quotas:
        return None
    asked = machine_footprint(group, controller)
    used = namespace_usage(controller, group.namespace)
    for quota in quotas:
        hard = (quota.get("spec") or {}).get("hard") or {}
        over = [key for key, limit in sorted(hard.items())
                if asked.get(key, 0.0) > 0 and used.get(key, 0.0) + asked[key] > to_float(limit)]
        if over:
            def pairs(values: dict[str, Any], keys: list[str] = over) -> str:
                return ",".join(f"{key}={quantity(key, float(values.get(key, 0.0)))}"
                                for key in keys)

            limited = ",".join(f"{key}={hard[key]}" for key in over)
            return (
                f'pods "{pod}" is forbidden: exceeded quota: {quota["metadata"]["name"]}, '
                f"requested: {pairs(asked)}, used: {pairs(used)}, limited: {limited}"
            )
    return None
