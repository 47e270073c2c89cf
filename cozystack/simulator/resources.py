"""The resource types the simulator serves, and how each one differs from a plain CRD."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from .errors import ApiError, invalid

Obj = dict[str, Any]

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
TENANT_RESOURCE_LABEL = "internal.cozystack.io/tenantresource"
# The aggregated API prefixes release names with "kubernetes-" and Helm caps them at 53 chars.
KUBERNETES_NAME_MAX = 42
# KubernetesNodes releases are "kubernetes-nodes-<name>": 53 - 17.
KUBERNETES_NODES_NAME_MAX = 36
EVENT_FIELDS = (
    "metadata.name",
    "metadata.namespace",
    "involvedObject.kind",
    "involvedObject.name",
    "involvedObject.namespace",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "reason",
    "type",
    "source",
    "reportingComponent",
)


@dataclass(frozen=True)
class ResourceType:
    """One served resource; the flags encode the platform's behaviour for that type."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str = ""
    namespaced: bool = True
    status_subresource: bool = False
    generation: bool = True
    # Deletion is held until the controller releases it (Helm uninstall of the HelmRelease).
    graceful_delete: bool = False
    read_only: bool = False
    # Aggregated `apps.cozystack.io` rules: DNS-1035, <=42 chars, no `_` spec keys.
    aggregated_app: bool = False
    fields: tuple[str, ...] = ("metadata.name", "metadata.namespace")
    view_of: str | None = None
    present: Callable[[Obj], Obj] | None = None
    view_filter: Callable[[Obj], bool] | None = None
    # Read verbs when not get/list/watch (a computed resource that cannot be watched).
    verbs: tuple[str, ...] | None = None
    # Longest name an aggregated app accepts (its release prefix plus the name fit Helm's 53).
    name_max: int = KUBERNETES_NAME_MAX

    @property
    def key(self) -> str:
        return f"{self.api_version}/{self.plural}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`kuberneteses.apps.cozystack.io`, as in apiserver error messages."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def kind_qualified(self) -> str:
        return f"{self.kind}.{self.group}" if self.group else self.kind

    @property
    def backing_key(self) -> str:
        return self.view_of or self.key

    def show(self, obj: Obj) -> Obj:
        """What an API client sees for a stored object (defaults filled, view transformed)."""
        return self.present(obj) if self.present else obj

    def discovery(self) -> Obj:
        verbs = list(self.verbs or ("get", "list", "watch"))
        if not self.read_only:
            verbs += ["create", "update", "patch", "delete", "deletecollection"]
        return {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": verbs,
        }

    def check_create(self, name: str, body: Obj) -> None:
        """Name and spec rules enforced synchronously on create (everything else is async)."""
        if self.aggregated_app:
            self._check_app_name(name)
            self._check_app_spec(body)
        elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
            raise invalid(
                self.kind_qualified,
                self.kind,
                name,
                "metadata.name",
                name,
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric "
                "characters, '-' or '.', and must start and end with an alphanumeric character",
            )

    def _check_app_name(self, name: str) -> None:
        if not DNS1035.match(name):
            raise invalid(
                self.kind_qualified,
                self.kind,
                name,
                "metadata.name",
                name,
                "a DNS-1035 label must consist of lower case alphanumeric characters or '-', "
                "start with an alphabetic character, and end with an alphanumeric character "
                "(e.g. 'my-name',  or 'abc-123', regex used for validation is "
                "'[a-z]([-a-z0-9]*[a-z0-9])?')",
            )
        if len(name) > self.name_max:
            raise invalid(
                self.kind_qualified,
                self.kind,
                name,
                "metadata.name",
                name,
                f"must be no more than {self.name_max} characters",
            )

    def _check_app_spec(self, body: Obj) -> None:
        check_app_spec(body)


def check_app_spec(body: Obj) -> None:
    """The aggregated API refuses `_`-prefixed top-level keys (Helm-internal values) with 400."""
    spec = body.get("spec")
    if spec is None:
        return
    if not isinstance(spec, dict):
        raise ApiError(400, "spec must be an object", "BadRequest")
    for key in spec:
        if key.startswith("_"):
            raise ApiError(
                400,
                f'invalid spec: field "{key}" is reserved (keys starting with "_" are not allowed)',
                "BadRequest",
            )


def tenant_secret_view(secret: Obj) -> Obj:
    """TenantSecret = the Secret's data, plus `stringData` that *also* holds base64 (quirk)."""
    metadata = copy.deepcopy(secret.get("metadata") or {})
    metadata.pop("ownerReferences", None)
    data = dict(secret.get("data") or {})
    return {
        "apiVersion": "core.cozystack.io/v1alpha1",
        "kind": "TenantSecret",
        "metadata": metadata,
        "type": secret.get("type", "Opaque"),
        "data": data,
        "stringData": dict(data),
    }


def is_tenant_resource(secret: Obj) -> bool:
    labels = (secret.get("metadata") or {}).get("labels") or {}
    return labels.get(TENANT_RESOURCE_LABEL) == "true"


KUBERNETES = ResourceType(
    "apps.cozystack.io",
    "v1alpha1",
    "kuberneteses",
    "Kubernetes",
    singular="kubernetes",
    status_subresource=True,
    graceful_delete=True,
    aggregated_app=True,
)
# v1.6, optional: a worker pool attached to the cluster `spec.cluster`, named `<cluster>-<pool>`
# (row 24); served by releases that have it (`Release.serves_kubernetes_nodes`).
KUBERNETES_NODES = ResourceType(
    "apps.cozystack.io",
    "v1alpha1",
    "kubernetesnodes",
    "KubernetesNodes",
    singular="kubernetesnodes",
    status_subresource=True,
    graceful_delete=True,
    aggregated_app=True,
    name_max=KUBERNETES_NODES_NAME_MAX,
)
TENANT_SECRETS = ResourceType(
    "core.cozystack.io",
    "v1alpha1",
    "tenantsecrets",
    "TenantSecret",
    read_only=True,
    generation=False,
    view_of="v1/secrets",
    present=tenant_secret_view,
    view_filter=is_tenant_resource,
)
MACHINE_DEPLOYMENTS = ResourceType(
    "cluster.x-k8s.io",
    "v1beta1",
    "machinedeployments",
    "MachineDeployment",
    status_subresource=True,
)
APPLICATION_DEFINITIONS = ResourceType(
    "cozystack.io", "v1alpha1", "applicationdefinitions", "ApplicationDefinition", namespaced=False
)
SECRETS = ResourceType(
    "",
    "v1",
    "secrets",
    "Secret",
    generation=False,
    fields=("metadata.name", "metadata.namespace", "type"),
)
CONFIG_MAPS = ResourceType("", "v1", "configmaps", "ConfigMap", generation=False)
# The tenant's quotas (`tenant-quota` from the Tenant's resourceQuotas; from v1.6 also the
# hierarchical quota's `tenant-quota-allocated`): `spec.hard` is set, the controller writes
# `status.hard` and `status.used` (`quotas.py`).
RESOURCE_QUOTAS = ResourceType(
    "", "v1", "resourcequotas", "ResourceQuota", status_subresource=True, generation=False
)
EVENTS = ResourceType("", "v1", "events", "Event", generation=False, fields=EVENT_FIELDS)
OPTION_SOURCES = ("gpu", "instancetype", "storageclass")
# Computed on read from the platform's catalogues (never stored); served from v1.6 only.
OPTIONS = ResourceType(
    "core.cozystack.io",
    "v1alpha1",
    "options",
    "Option",
    read_only=True,
    generation=False,
    verbs=("get", "list"),
)


class Registry:
    """Lookup of served types by (group, version, plural) and by kind."""

    def __init__(self, types: list[ResourceType]) -> None:
        self.types: list[ResourceType] = []
        self._by_path: dict[tuple[str, str, str], ResourceType] = {}
        self._by_key: dict[str, ResourceType] = {}
        for rtype in types:
            self.add(rtype)

    def add(self, rtype: ResourceType) -> None:
        """Serve one more type (a platform upgrade can add an API); adding twice is a no-op."""
        if rtype.key in self._by_key:
            return
        self.types = [*self.types, rtype]
        self._by_path[(rtype.group, rtype.version, rtype.plural)] = rtype
        self._by_key[rtype.key] = rtype

    def has(self, rtype: ResourceType) -> bool:
        return rtype.key in self._by_key

    def find(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._by_path.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType:
        return self._by_key[key]

    def lookup(self, name: str) -> ResourceType:
        """Find by kind (`Kubernetes`), plural (`kuberneteses`) or key, for test helpers."""
        for rtype in self.types:
            if name in (rtype.kind, rtype.plural, rtype.key, rtype.kind.lower()):
                return rtype
        raise KeyError(f"unknown resource {name!r}")

    def groups(self) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        for rtype in self.types:
            versions = result.setdefault(rtype.group, [])
            if rtype.version not in versions:
                versions.append(rtype.version)
        return result

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [t for t in self.types if t.group == group and t.version == version]


def build_registry(present_kubernetes: Callable[[Obj], Obj]) -> Registry:
    """Types served by the simulated management cluster; `Kubernetes` GETs show defaults."""
    return Registry(
        [
            replace(KUBERNETES, present=present_kubernetes),
            TENANT_SECRETS,
            MACHINE_DEPLOYMENTS,
            APPLICATION_DEFINITIONS,
            SECRETS,
            CONFIG_MAPS,
            EVENTS,
            RESOURCE_QUOTAS,
        ]
    )
