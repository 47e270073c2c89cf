"""Clusters in the API's own words (snake_case), and the specs clients send.

Input field names are the portal's spec names, so the actions' error paths
(``node_groups[1].max_replicas``) point straight into the request body. Add-on keys are the
platform's in camelCase (``ingressNginx``); the API spells them in snake_case
(``ingress_nginx``) and translates both ways.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.urls import reverse
from django.utils.translation import gettext as _t
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from clusters import features
from clusters.models import (
    Cluster,
    ClusterEvent,
    NodeGroup,
    NodePool,
    Operation,
    auto_repair_from_json,
    oidc_users_from_json,
)
from clusters.offerings import default_storage_class
from clusters.platform_release import shown_dialect
from clusters.web.api.catalog import ADDON_API_KEYS
from clusters.web.presentation import values_error_text
from cozystack import catalog, limits
from cozystack import values as values_loader
from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
    NodeGroupSpec,
    OidcUserSpec,
)
from portal.api.fields import StrictSerializer, answer_cache

MAX_OIDC_USERS = 200
OIDC_ROLE_CHOICES = [("admin", "admin"), ("view", "view")]
STEP_STATES = [(s, s) for s in ("pending", "running", "done", "failed", "skipped")]


def _abs(request: Any, name: str, **kwargs: Any) -> str:
    return request.build_absolute_uri(reverse(f"api:{name}", kwargs=kwargs))


def _prefix(context: Mapping[str, Any], name: str, tenant_slug: str) -> str:
    """The absolute URL of a tenant's list ``name``, reversed once per answer (a list of 100
    clusters would otherwise reverse hundreds of URLs); object URLs append slug-safe names."""
    cache = answer_cache(context).setdefault("_url_prefixes", {})
    key = (name, tenant_slug)
    if key not in cache:
        cache[key] = _abs(context["request"], name, tenant_slug=tenant_slug)
    return cache[key]


def live_groups(cluster: Cluster) -> list[NodeGroup]:
    """The cluster's live node groups in order: those the API's cluster queryset prefetched
    (``api_groups``), else read now."""
    groups: list[NodeGroup] | None = getattr(cluster, "api_groups", None)
    if groups is None:
        groups = sorted(cluster.live_node_groups(), key=lambda g: (g.position, g.name))
    return groups


# --------------------------------------------------------------------------- input


def bounded_integer(bound: limits.Range, *, lo: int | None = None,
                    **kwargs: Any) -> serializers.IntegerField:
    """A whole number in ``bound`` (``limits``): the HTML forms and the platform rules use the
    same range, so a number the API accepts is one the portal can build a spec from."""
    return serializers.IntegerField(min_value=bound.lo if lo is None else lo,
                                    max_value=bound.hi, **kwargs)


class NodeGroupInputSerializer(StrictSerializer):
    name = serializers.CharField(
        max_length=63, help_text=_("Lowercase letters, digits and dashes; the first group is "
                                   "usually `md0`. Cannot be renamed."))
    instance_type = serializers.CharField(
        max_length=64, help_text=_("Node size, from "
                                   "`GET /api/v1/tenants/{tenant_slug}/catalog/instance-types/`: "
                                   "what the platform offers the tenant."))
    min_replicas = bounded_integer(
        limits.MIN_NODES, help_text=_("Fewest nodes the autoscaler keeps."))
    max_replicas = bounded_integer(
        limits.MAX_NODES, help_text=_("Most nodes the autoscaler may start."))
    disk_gib = bounded_integer(
        limits.DISK_GIB, required=False,
        help_text=_("The node's disk in GiB (10–2048): on Cozystack v1.6 its one persistent "
                    "disk, holding the operating system, the kubelet's state and local volumes "
                    "(default 20); on v1.3 its scratch disk (default 50)."))
    ephemeral_storage_gib = bounded_integer(
        limits.DISK_GIB, required=False, help_text=_("Deprecated name of `disk_gib`."))
    storage_class = serializers.CharField(
        max_length=63, required=False, allow_blank=True,
        help_text=_("Storage class of the nodes' disks, from "
                    "`GET /api/v1/tenants/{tenant_slug}/catalog/storage-classes/` (a replicated "
                    "one); empty: the "
                    "cluster's. Only where the platform offers it (Cozystack v1.6). Changing it "
                    "replaces the group's nodes."))
    max_unhealthy = serializers.CharField(
        max_length=8, required=False, allow_blank=True,
        help_text=_("Auto-repair: unhealthy nodes tolerated in this group before repairs "
                    "pause, a count (`\"1\"`) or a share (`\"50%\"`); empty: the cluster's "
                    "setting. 50% never repairs a one-node group. Cozystack v1.6."))
    node_startup_timeout = serializers.CharField(
        max_length=16, required=False, allow_blank=True,
        help_text=_("Auto-repair: how long a new node of this group may take to become ready "
                    "before it is replaced (`10m`, `1h`); empty: the cluster's setting. "
                    "Cozystack v1.6."))
    roles = serializers.ListField(
        child=serializers.CharField(max_length=63), max_length=limits.NODE_ROLES, required=False,
        help_text=_("Node roles, from `GET /api/v1/catalog/node-roles/` (e.g. "
                    "`ingress-nginx`)."))
    gpu_model = serializers.CharField(
        max_length=100, allow_null=True, allow_blank=True, required=False,
        help_text=_("GPU passed through to every node, from "
                    "`GET /api/v1/tenants/{tenant_slug}/catalog/gpu-models/`; null for none."))
    gpus_per_node = bounded_integer(
        limits.GPUS_PER_NODE, lo=0, required=False,
        help_text=_("GPUs of `gpu_model` per node (default 1 when a model is given)."))


def group_spec(data: dict[str, Any], base: NodeGroupSpec | None = None, *,
               path: str = "") -> NodeGroupSpec:
    """A NodeGroupSpec from validated input, fields not given taken from ``base``.

    ``path`` prefixes error fields (``node_groups[2].``) so they point into the request.
    """
    gpu_model = data.get("gpu_model", base.gpus[0] if base and base.gpus else None) or ""
    default_count = len(base.gpus) if base and base.gpus else (1 if gpu_model else 0)
    count = data.get("gpus_per_node", default_count) if gpu_model else 0
    if not gpu_model and data.get("gpus_per_node"):
        raise DjangoValidationError({f"{path}gpu_model": DjangoValidationError(
            _t("Choose the GPU model for the GPUs of each node."), code="required")})
    if "disk_gib" in data and "ephemeral_storage_gib" in data and \
            data["disk_gib"] != data["ephemeral_storage_gib"]:
        raise DjangoValidationError({f"{path}disk_gib": DjangoValidationError(
            _t("Give the disk once, as disk_gib (ephemeral_storage_gib is its former name)."),
            code="conflicting")})
    disk = data.get("disk_gib", data.get("ephemeral_storage_gib"))
    # One entry per GPU: multiply out only a count in range (the serializer refused others).
    count = count if 0 <= count <= limits.GPUS_PER_NODE.hi else 0
    return NodeGroupSpec(
        name=data.get("name", base.name if base else ""),
        instance_type=data.get("instance_type", base.instance_type if base else ""),
        min_replicas=data.get("min_replicas", base.min_replicas if base else 0),
        max_replicas=data.get("max_replicas", base.max_replicas if base else 0),
        disk_gib=disk if disk is not None else (
            base.disk_gib if base else features.default_disk_gib()),
        roles=tuple(data.get("roles", base.roles if base else ())),
        gpus=(gpu_model,) * count,
        storage_class=data.get("storage_class", base.storage_class if base else ""),
        max_unhealthy=data.get("max_unhealthy", base.max_unhealthy if base else ""),
        node_startup_timeout=data.get("node_startup_timeout",
                                      base.node_startup_timeout if base else ""),
        kubelet=base.kubelet if base else KubeletSpec(),
    )


class ControlPlaneInputSerializer(StrictSerializer):
    replicas = bounded_integer(
        limits.CONTROL_PLANE_REPLICAS, required=False,
        help_text=_("API-server replicas (1–5, default %(d)d).")
        % {"d": catalog.DEFAULT_CONTROL_PLANE_REPLICAS})
    api_server_preset = serializers.CharField(
        max_length=16, required=False,
        help_text=_("API-server size, from `GET /api/v1/catalog/control-plane-presets/` "
                    "(default `c1.medium`). A size, not an instance type."))


class AutoRepairSerializer(StrictSerializer):
    enabled = serializers.BooleanField(
        required=False, help_text=_("Replace unhealthy nodes (default true)."))
    max_unhealthy = serializers.CharField(
        max_length=8, required=False,
        help_text=_("Unhealthy nodes tolerated per group before repairs pause: a count "
                    "(`\"1\"`) or a share (`\"50%\"`, the default). 50% never repairs a "
                    "one-node group."))
    node_startup_timeout = serializers.CharField(
        max_length=16, required=False,
        help_text=_("How long a new node may take to become ready before it is replaced "
                    "(`10m`, the default)."))


class OidcUserSerializer(StrictSerializer):
    email = serializers.EmailField(
        max_length=254, help_text=_("A member of the tenant, by the email they sign in with."))
    role = serializers.ChoiceField(
        choices=OIDC_ROLE_CHOICES,
        help_text=_("`admin` (cluster-admin) or `view` (read only); viewers of the tenant may "
                    "have `view` only."))


@extend_schema_field({"type": "object", "additionalProperties": True})
class ValuesOverrideField(serializers.JSONField):
    """A JSON object of Helm values, checked by the same values loader as the pages' YAML
    boxes (size, depth, finite numbers, 64-bit integers, no NUL characters)."""

    default_error_messages = {
        "not_object": _("Must be a JSON object (a mapping of keys to values)."),
    }

    def to_internal_value(self, data: Any) -> Any:

        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            self.fail("not_object")
        try:
            values_loader.check_document(value)
        except values_loader.ValuesError as exc:
            raise serializers.ValidationError(values_error_text(exc), code=exc.code) from None
        return value


def _addon_serializer(addon: catalog.Addon, *, for_input: bool) -> type[serializers.Serializer]:
    fields: dict[str, serializers.Field] = {}
    kwargs: dict[str, Any] = {"required": False} if for_input else {}
    if addon.has_enabled or not for_input:
        fields["enabled"] = serializers.BooleanField(
            help_text=_("Installed in the cluster.") if not for_input else
            _("Install it (default false)."), **kwargs)
    if addon.has_values_override:
        fields["values_override"] = ValuesOverrideField(
            help_text=_("Helm values merged over the platform's; top-level keys must be one "
                        "of: %(roots)s.") % {"roots": ", ".join(addon.value_roots)}, **kwargs)
    if addon.key == catalog.INGRESS_NGINX:
        fields["expose_method"] = serializers.ChoiceField(
            choices=[m.name for m in catalog.expose_methods()],
            help_text=_("`Proxied` (through the platform ingress, default) or `LoadBalancer` "
                        "(own public IP)."), **kwargs)
        fields["hosts"] = serializers.ListField(
            child=serializers.CharField(max_length=253), max_length=limits.INGRESS_HOSTS,
            help_text=_("Host names routed to the cluster with `Proxied`."), **kwargs)
    base = StrictSerializer if for_input else serializers.Serializer
    name = "".join(part.capitalize() for part in ADDON_API_KEYS[addon.key].split("_"))
    suffix = "AddonChange" if for_input else "Addon"
    serializer = type(f"{name}{suffix}Serializer", (base,), {
        **fields, "__doc__": f"{addon.label}: {addon.description}"})
    return extend_schema_serializer(component_name=f"{name}{suffix}")(serializer)


def _addons_serializer(*, for_input: bool) -> type[serializers.Serializer]:
    fields = {}
    for addon in catalog.addons():
        child = _addon_serializer(addon, for_input=for_input)
        text = f"{addon.label}: {addon.description}"
        fields[ADDON_API_KEYS[addon.key]] = (child(required=False, help_text=text) if for_input
                                             else child(help_text=text))
    base = StrictSerializer if for_input else serializers.Serializer
    name = "AddonChanges" if for_input else "Addons"
    doc = ("Add-ons to change; those not given keep their setting (off on a new cluster)."
           if for_input else "Every add-on and its setting.")
    serializer = type(f"{name}Serializer", (base,), {**fields, "__doc__": doc})
    return extend_schema_serializer(component_name=name)(serializer)


_ADDON_KEYS = [(addon, ADDON_API_KEYS[addon.key]) for addon in catalog.addons()]
AddonsInputSerializer = _addons_serializer(for_input=True)
AddonsSerializer = _addons_serializer(for_input=False)


def addon_specs(data: dict[str, Any], current: tuple[AddonSpec, ...] = ()) -> tuple[AddonSpec, ...]:
    """``current`` add-ons with the given ones changed field by field."""
    by_key = {a.key: a for a in current}
    for api_key, values in data.items():
        platform_key = next(k for k, v in ADDON_API_KEYS.items() if v == api_key)
        addon = catalog.get_addon(platform_key)
        base = by_key.get(platform_key) or AddonSpec(
            key=platform_key, enabled=bool(addon and addon.always_installed))
        by_key[platform_key] = dataclasses.replace(
            base,
            enabled=values.get("enabled", base.enabled),
            values_override=values.get("values_override", base.values_override),
            expose_method=values.get("expose_method", base.expose_method),
            hosts=tuple(values.get("hosts", base.hosts)),
        )
    order = [a.key for a in catalog.addons()]
    return tuple(sorted(by_key.values(), key=lambda a: order.index(a.key)
                        if a.key in order else len(order)))


class ClusterSpecInputSerializer(StrictSerializer):
    version = serializers.CharField(
        max_length=16, required=False,
        help_text=_("Kubernetes major.minor from `GET /api/v1/catalog/versions/` (default: "
                    "the platform's default)."))
    control_plane = ControlPlaneInputSerializer(
        required=False, help_text=_("Control-plane size (default: 2 replicas, `c1.medium`)."))
    node_groups = NodeGroupInputSerializer(  # type: ignore[call-arg]  # with many=True, max_length goes to its ListSerializer; the stubs miss it
        many=True, max_length=limits.NODE_GROUPS.hi,
        help_text=_("Worker node groups, at least one."))
    addons = AddonsInputSerializer(
        required=False, help_text=_("Add-ons by key; those left out stay as they are (off "
                                    "on a new cluster)."))
    auto_repair = AutoRepairSerializer(
        required=False, allow_null=True,
        help_text=_("Node auto-repair: the platform replaces a node that stays unhealthy or "
                    "never becomes ready. Null: the platform's default (on, 50%, 10m). "
                    "Cozystack v1.6."))
    oidc_users = OidcUserSerializer(  # type: ignore[call-arg]  # with many=True, max_length goes to its ListSerializer; the stubs miss it
        many=True, max_length=MAX_OIDC_USERS, required=False,
        help_text=_("Members who sign in to the cluster as themselves (single sign-on), each "
                    "`admin` or `view`; changing it needs an owner or admin. Cozystack v1.6."))


class ClusterCreateSerializer(ClusterSpecInputSerializer):
    name = serializers.CharField(
        max_length=63, help_text=_("Lowercase letters, digits and dashes, starting with a "
                                   "letter, at most 42 characters. Cannot change."))
    storage_class = serializers.CharField(
        max_length=32, required=False,
        help_text=_("From `GET /api/v1/tenants/{tenant_slug}/catalog/storage-classes/` "
                    "(default `replicated`, or the platform's default where it does not offer "
                    "`replicated`). Cannot change."))
    host = serializers.CharField(
        max_length=253, required=False, allow_blank=True,
        help_text=_("API host name; empty for the platform's default. Cannot change."))

    # Issue 16, part C: an optional expiry (required of members when the tenant has a maximum).
    expires_at = serializers.DateTimeField(
        required=False, help_text=_("Delete the cluster at this time (1 hour to 90 days "
                                    "ahead); reminders go out 24 hours and 1 hour before."))
    after_hours = serializers.IntegerField(
        required=False, min_value=1, max_value=2160,
        help_text=_("Or: delete the cluster after this many hours (1 to 2160)."))

    class Meta:
        fields = ("name", "version", "storage_class", "host", "control_plane", "node_groups",
                  "addons", "expires_at", "after_hours")


class ClusterReplaceSerializer(ClusterSpecInputSerializer):
    """The whole desired configuration (PUT): what is left out takes its default (add-ons off,
    the default control plane). Create-time settings (name, storage class, host) stay."""

    version = serializers.CharField(
        max_length=16, help_text=_("Kubernetes major.minor: the current one, or the next "
                                   "minor to upgrade."))


class ClusterPatchSerializer(ClusterSpecInputSerializer):
    """Only the settings to change (PATCH): add-ons merge key by key; `node_groups`, when
    given, is the whole new list."""

    node_groups = NodeGroupInputSerializer(  # type: ignore[call-arg]  # with many=True, max_length goes to its ListSerializer; the stubs miss it
        many=True, max_length=limits.NODE_GROUPS.hi, required=False,
        help_text=_("The whole new list of node groups (groups left out are removed)."))


def control_plane_spec(data: dict[str, Any] | None,
                       base: ControlPlaneSpec | None = None) -> ControlPlaneSpec:
    base = base or ControlPlaneSpec()
    data = data or {}
    return dataclasses.replace(base, replicas=data.get("replicas", base.replicas),
                               api_server_preset=data.get("api_server_preset",
                                                          base.api_server_preset))


def auto_repair_spec(data: dict[str, Any] | None) -> AutoRepairSpec | None:
    if data is None:
        return None
    default = AutoRepairSpec()
    return AutoRepairSpec(enabled=data.get("enabled", default.enabled),
                          max_unhealthy=data.get("max_unhealthy", default.max_unhealthy),
                          node_startup_timeout=data.get("node_startup_timeout",
                                                        default.node_startup_timeout))


def oidc_user_specs(data: list[dict[str, Any]]) -> tuple[OidcUserSpec, ...]:
    return tuple(OidcUserSpec(u["email"].strip().lower(), u["role"]) for u in data)


def create_spec(data: dict[str, Any], namespace: str) -> ClusterSpec:
    return ClusterSpec(
        name=data["name"],
        namespace=namespace,
        version=data.get("version") or shown_dialect().catalogue.default_version().name,
        storage_class=data.get("storage_class") or default_storage_class(namespace),
        host=data.get("host", ""),
        **_whole_configuration(data),
    )


def replace_spec(data: dict[str, Any], current: ClusterSpec) -> ClusterSpec:
    return dataclasses.replace(current, version=data["version"], **_whole_configuration(data))


def _whole_configuration(data: dict[str, Any]) -> dict[str, Any]:
    """What a create and a whole-configuration PUT both state in full (left out = default)."""
    return {
        "control_plane": control_plane_spec(data.get("control_plane")),
        "node_groups": tuple(group_spec(g, path=f"node_groups[{i}].")
                             for i, g in enumerate(data["node_groups"])),
        "addons": addon_specs(data.get("addons") or {}),
        "auto_repair": auto_repair_spec(data.get("auto_repair")),
        "oidc_users": oidc_user_specs(data.get("oidc_users") or []),
    }


def patched_spec(data: dict[str, Any], current: ClusterSpec) -> ClusterSpec:
    return dataclasses.replace(
        current,
        version=data.get("version", current.version),
        control_plane=control_plane_spec(data.get("control_plane"), current.control_plane),
        node_groups=tuple(group_spec(g, path=f"node_groups[{i}].")
                          for i, g in enumerate(data["node_groups"]))
        if "node_groups" in data else current.node_groups,
        addons=addon_specs(data["addons"], current.addons) if "addons" in data
        else current.addons,
        auto_repair=auto_repair_spec(data["auto_repair"]) if "auto_repair" in data
        else current.auto_repair,
        oidc_users=oidc_user_specs(data["oidc_users"]) if "oidc_users" in data
        else current.oidc_users,
    )


class UpgradeSerializer(StrictSerializer):
    version = serializers.CharField(
        max_length=16, required=False,
        help_text=_("The next minor version; leave out to take it from the catalogue."))


class KubeconfigChoiceSerializer(StrictSerializer):
    kind = serializers.ChoiceField(
        choices=[("admin", "admin"), ("super_admin", "super_admin")], required=False,
        help_text=_("`admin` (cluster-admin, default) or `super_admin` (break-glass, RBAC "
                    "bypass; owners and admins only)."))


# --------------------------------------------------------------------------- output


class NodeCountsSerializer(serializers.Serializer):
    desired = serializers.IntegerField(help_text=_("The autoscaler's current target."))
    observed = serializers.IntegerField(help_text=_("Machines that exist."))
    ready = serializers.IntegerField(help_text=_("Nodes that are Ready."))
    updated = serializers.IntegerField(help_text=_("Nodes on the current template."))


class NodeGroupSerializer(serializers.ModelSerializer):
    name = serializers.CharField(help_text=_("The group's name, unique in the cluster."))
    instance_type = serializers.CharField(help_text=_("Node size (see the catalogue)."))
    min_replicas = serializers.IntegerField(help_text=_("Fewest nodes the autoscaler keeps."))
    max_replicas = serializers.IntegerField(help_text=_("Most nodes the autoscaler may start."))
    gpus_per_node = serializers.IntegerField(help_text=_("GPUs of `gpu_model` per node."))
    last_observed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the platform was last read for this group."))
    disk_gib = serializers.IntegerField(help_text=_("The node's disk in GiB."))
    ephemeral_storage_gib = serializers.IntegerField(
        source="disk_gib", help_text=_("Deprecated name of `disk_gib`."))
    storage_class = serializers.CharField(
        allow_blank=True, help_text=_("Storage class of the nodes' disks; empty: the "
                                      "cluster's."))
    max_unhealthy = serializers.CharField(
        allow_blank=True, help_text=_("Auto-repair: unhealthy nodes tolerated in this group; "
                                      "empty: the cluster's setting."))
    node_startup_timeout = serializers.CharField(
        allow_blank=True, help_text=_("Auto-repair: start-up timeout of this group's nodes; "
                                      "empty: the cluster's setting."))
    gpu_model = serializers.SerializerMethodField(help_text=_("GPU model, or null."))
    roles = serializers.ListField(child=serializers.CharField(),
                                  help_text=_("Node roles, e.g. `ingress-nginx`."))
    nodes = serializers.SerializerMethodField(help_text=_("Node counts last observed."))
    observed_phase = serializers.CharField(help_text=_("The platform's phase for the group."))
    url = serializers.SerializerMethodField()

    class Meta:
        model = NodeGroup
        fields = ("name", "url", "instance_type", "min_replicas", "max_replicas", "disk_gib",
                  "ephemeral_storage_gib", "storage_class", "max_unhealthy",
                  "node_startup_timeout", "roles", "gpu_model", "gpus_per_node", "nodes",
                  "observed_phase", "last_observed_at")

    def get_gpu_model(self, group: NodeGroup) -> str | None:
        return group.gpu_model or None

    @extend_schema_field(NodeCountsSerializer)
    def get_nodes(self, group: NodeGroup) -> dict[str, int]:
        return {"desired": group.desired_nodes, "observed": group.observed_nodes,
                "ready": group.ready_nodes, "updated": group.updated_nodes}

    def get_url(self, group: NodeGroup) -> str:
        cluster = group.cluster
        return (f"{_prefix(self.context, 'clusters', cluster.tenant.slug)}{cluster.name}/"
                f"node-groups/{group.name}/")


class NodePoolSerializer(serializers.ModelSerializer):
    """A worker pool the platform runs for the cluster outside its spec (a Cozystack v1.6
    ``KubernetesNodes`` object ``<cluster>-<pool>``). Read-only: it is not one of the
    cluster's node groups, a cluster's PUT or PATCH never names it (sending `node_pools` is
    refused), and the portal never scales or changes it. Its nodes are metered like the
    cluster's own."""

    name = serializers.CharField(help_text=_("The pool's name (after `<cluster>-`)."))
    instance_type = serializers.CharField(
        allow_blank=True, help_text=_("Node size; empty for a custom size, or while the "
                                      "platform's object has not been read."))
    custom_size = serializers.SerializerMethodField(
        help_text=_("`{cpu, memory}` of a custom-sized node, else null."))
    min_replicas = serializers.IntegerField(help_text=_("Fewest nodes its autoscaler keeps."))
    max_replicas = serializers.IntegerField(help_text=_("Most nodes its autoscaler may start."))
    disk_gib = serializers.IntegerField(help_text=_("The node's disk in GiB."))
    gpu_model = serializers.SerializerMethodField(help_text=_("GPU model, or null."))
    gpus_per_node = serializers.IntegerField(help_text=_("GPUs of `gpu_model` per node."))
    nodes = serializers.SerializerMethodField(help_text=_("Node counts last observed."))
    observed_phase = serializers.CharField(help_text=_("The platform's phase for the pool."))
    status_message = serializers.CharField(
        allow_blank=True, help_text=_("The platform's word when the pool is not ready."))
    size_known = serializers.BooleanField(
        source="sized", help_text=_("The pool's size is known (its nodes are metered)."))
    last_observed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the platform was last read for this pool."))

    class Meta:
        model = NodePool
        fields = ("name", "instance_type", "custom_size", "min_replicas", "max_replicas",
                  "disk_gib", "gpu_model", "gpus_per_node", "nodes", "observed_phase",
                  "status_message", "size_known", "last_observed_at")
        read_only_fields = fields

    @extend_schema_field({"type": ["object", "null"], "properties": {
        "cpu": {"type": "string"}, "memory": {"type": "string"}}})
    def get_custom_size(self, pool: NodePool) -> dict[str, str] | None:
        return {"cpu": pool.cpu, "memory": pool.memory} if pool.cpu and pool.memory else None

    def get_gpu_model(self, pool: NodePool) -> str | None:
        return pool.gpu_model or None

    @extend_schema_field(NodeCountsSerializer)
    def get_nodes(self, pool: NodePool) -> dict[str, int]:
        return {"desired": pool.desired_nodes, "observed": pool.observed_nodes,
                "ready": pool.ready_nodes, "updated": pool.updated_nodes}


def live_pools(cluster: Cluster) -> list[NodePool]:
    """The cluster's pools on the platform: those the API's queryset prefetched
    (``api_pools``), else read now."""
    pools: list[NodePool] | None = getattr(cluster, "api_pools", None)
    if pools is None:
        pools = list(cluster.node_pools.filter(removed_at__isnull=True).order_by("name"))
    return pools


class ControlPlaneSerializer(serializers.Serializer):
    replicas = serializers.IntegerField(help_text=_("API-server replicas."))
    api_server_preset = serializers.CharField(help_text=_("API-server size."))


class AutoRepairOutputSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text=_("Unhealthy nodes are replaced."))
    max_unhealthy = serializers.CharField(
        help_text=_("Unhealthy nodes tolerated per group before repairs pause."))
    node_startup_timeout = serializers.CharField(
        help_text=_("How long a new node may take to become ready."))


class OidcUserOutputSerializer(serializers.Serializer):
    email = serializers.CharField(help_text=_("The member's email."))
    role = serializers.CharField(help_text=_("`admin` or `view`."))


class ConditionSerializer(serializers.Serializer):
    type = serializers.CharField(help_text=_("`Ready`, `Released`, `WorkloadsReady`…"))
    status = serializers.CharField(help_text=_("`True`, `False` or `Unknown`."))
    reason = serializers.CharField(allow_blank=True,
                                   help_text=_("Machine reason, e.g. `InstallSucceeded`."))
    message = serializers.CharField(allow_blank=True, help_text=_("The platform's message."))
    last_transition_time = serializers.CharField(
        allow_blank=True, allow_null=True, help_text=_("When the status last changed (RFC 3339)."))


class OperationRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text=_("The operation's id."))
    kind = serializers.ChoiceField(choices=Operation.Kind.choices,
                                   help_text=_("What it changes."))
    state = serializers.ChoiceField(choices=Operation.State.choices,
                                    help_text=_("Where it stands."))
    url = serializers.CharField(help_text=_("Poll this until the operation has finished."))


class ClusterSerializer(serializers.ModelSerializer):
    name = serializers.CharField(help_text=_("The cluster's name, unique in the tenant."))
    version = serializers.CharField(help_text=_("Kubernetes major.minor, e.g. `v1.34`."))
    storage_class = serializers.CharField(
        help_text=_("Where persistent volumes live (set at creation)."))
    host = serializers.CharField(
        allow_blank=True, help_text=_("API host name; empty for the platform's default."))
    phase = serializers.ChoiceField(choices=Cluster.Phase.choices,
                                    help_text=_("Where the cluster stands as a whole."))
    status_message = serializers.CharField(allow_blank=True,
                                           help_text=_("The latest status, in words."))
    last_error = serializers.CharField(allow_blank=True,
                                       help_text=_("The last failure, if any, in words."))
    last_observed_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the platform was last read for this cluster."))
    url = serializers.SerializerMethodField()
    upgrade_to = serializers.SerializerMethodField(
        help_text=_("The version this cluster may upgrade to next, or null."))
    control_plane = serializers.SerializerMethodField(help_text=_("Control-plane size."))
    node_groups = serializers.SerializerMethodField(help_text=_("Worker node groups, in order."))
    node_pools = serializers.SerializerMethodField(
        help_text=_("Read-only: worker pools the platform runs for the cluster outside its "
                    "spec (Cozystack v1.6 KubernetesNodes), as it reports them. Not node "
                    "groups: never sent back to the platform, never scaled by the portal, and "
                    "refused in a PUT or PATCH. Their nodes are billed like the cluster's own."))
    addons = serializers.SerializerMethodField(help_text=_("Every add-on and its setting."))
    auto_repair = serializers.SerializerMethodField(
        help_text=_("Node auto-repair as set; null: the platform's default."))
    oidc_users = serializers.SerializerMethodField(
        help_text=_("Members who sign in to the cluster as themselves, with their role."))
    ready = serializers.BooleanField(source="platform_ready",
                                     help_text=_("The platform reports the cluster Ready."))
    kubeconfig_ready = serializers.BooleanField(
        help_text=_("The platform has issued its kubeconfig."))
    conditions = serializers.SerializerMethodField(
        help_text=_("The platform's conditions on the cluster object."))
    current_operation = serializers.SerializerMethodField(
        help_text=_("The change in flight, if any (at most one at a time)."))

    class Meta:
        model = Cluster
        fields = ("name", "url", "version", "upgrade_to", "storage_class", "host",
                  "control_plane", "node_groups", "node_pools", "addons", "auto_repair",
                  "oidc_users",
                  "phase", "status_message", "ready",
                  "kubeconfig_ready", "conditions", "last_error", "current_operation",
                  "created_at", "updated_at", "last_observed_at")

    def get_url(self, cluster: Cluster) -> str:
        return f"{_prefix(self.context, 'clusters', cluster.tenant.slug)}{cluster.name}/"

    def get_upgrade_to(self, cluster: Cluster) -> str | None:
        offer = self.context.get("_catalogue")
        if offer is None:
            offer = answer_cache(self.context)["_catalogue"] = shown_dialect().catalogue
        return offer.next_minor(cluster.version)

    @extend_schema_field(ControlPlaneSerializer)
    def get_control_plane(self, cluster: Cluster) -> dict[str, Any]:
        return {"replicas": cluster.control_plane_replicas,
                "api_server_preset": cluster.control_plane_preset}

    @extend_schema_field(NodeGroupSerializer(many=True))
    def get_node_groups(self, cluster: Cluster) -> list[dict[str, Any]]:
        groups = live_groups(cluster)
        # One group serializer for the whole answer: building one per cluster costs more than
        # the rest of the representation.
        child = self.context.get("_node_group_serializer")
        if child is None:
            child = answer_cache(self.context)["_node_group_serializer"] = NodeGroupSerializer(
                context=self.context)
        result = []
        for group in groups:
            group.cluster = cluster  # no query per group for its URL
            result.append(child.to_representation(group))
        return result

    @extend_schema_field(NodePoolSerializer(many=True))
    def get_node_pools(self, cluster: Cluster) -> list[dict[str, Any]]:
        pools = live_pools(cluster)
        if not pools:
            return []
        child = self.context.get("_node_pool_serializer")
        if child is None:
            child = answer_cache(self.context)["_node_pool_serializer"] = NodePoolSerializer(
                context=self.context)
        return [child.to_representation(pool) for pool in pools]

    @extend_schema_field(AddonsSerializer)
    def get_addons(self, cluster: Cluster) -> dict[str, Any]:
        # Read straight from the stored JSON (as ``ClusterSpec.addon_enabled`` decides):
        # building a spec per cluster dominated the list's cost.
        stored = cluster.addons or {}
        monitoring = bool((stored.get(catalog.MONITORING_AGENTS) or {}).get("enabled"))
        result = {}
        for addon, api_key in _ADDON_KEYS:
            given = stored.get(addon.key) or {}
            if addon.has_enabled:
                enabled = bool(given.get("enabled", addon.always_installed))
            else:
                enabled = addon.always_installed or (
                    addon.key == catalog.VERTICAL_POD_AUTOSCALER and monitoring)
            entry: dict[str, Any] = {"enabled": enabled}
            if addon.has_values_override:
                entry["values_override"] = given.get("values_override") or {}
            if addon.key == catalog.INGRESS_NGINX:
                entry["expose_method"] = given.get("expose_method") or \
                    catalog.DEFAULT_EXPOSE_METHOD
                entry["hosts"] = list(given.get("hosts") or ())
            result[api_key] = entry
        return result

    @extend_schema_field(AutoRepairOutputSerializer(allow_null=True))
    def get_auto_repair(self, cluster: Cluster) -> dict[str, Any] | None:
        repair = auto_repair_from_json(cluster.auto_repair)
        return dataclasses.asdict(repair) if repair is not None else None

    @extend_schema_field(OidcUserOutputSerializer(many=True))
    def get_oidc_users(self, cluster: Cluster) -> list[dict[str, str]]:
        return [{"email": u.email, "role": u.role}
                for u in oidc_users_from_json(cluster.oidc_users)]

    @extend_schema_field(ConditionSerializer(many=True))
    def get_conditions(self, cluster: Cluster) -> list[dict[str, Any]]:
        return [{"type": str(c.get("type", "")), "status": str(c.get("status", "")),
                 "reason": str(c.get("reason") or ""), "message": str(c.get("message") or ""),
                 "last_transition_time": c.get("lastTransitionTime")}
                for c in cluster.conditions or [] if isinstance(c, dict)]

    @extend_schema_field(OperationRefSerializer(allow_null=True))
    def get_current_operation(self, cluster: Cluster) -> dict[str, Any] | None:
        active = getattr(cluster, "api_active_operations", None)
        if active is None:
            active = list(cluster.operations.filter(state__in=Operation.ACTIVE_STATES))
        if not active:
            return None
        operation = active[0]
        return {"id": operation.pk, "kind": operation.kind, "state": operation.state,
                "url": f"{_prefix(self.context, 'operations', cluster.tenant.slug)}"
                       f"{operation.pk}/"}


class StepSerializer(serializers.Serializer):
    key = serializers.CharField(help_text=_("Stable step name, e.g. `control_plane`."))
    label = serializers.SerializerMethodField(help_text=_("The step, in words."))  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
    state = serializers.ChoiceField(choices=STEP_STATES, help_text=_("Where the step stands."))
    detail = serializers.CharField(allow_blank=True,
                                   help_text=_("What the step is waiting for or did."))
    started_at = serializers.DateTimeField(allow_null=True, help_text=_("When it started."))
    finished_at = serializers.DateTimeField(allow_null=True, help_text=_("When it ended."))

    def get_label(self, step: dict[str, Any]) -> str:
        return _t(step.get("label") or step.get("key", ""))


class OperationErrorSerializer(serializers.Serializer):
    code = serializers.ChoiceField(
        choices=[c for c in Operation.ErrorClass.values if c],
        help_text=_("What kind of failure: invalid_spec, quota, platform_unavailable, "
                    "platform_error, timeout or conflict."))
    title = serializers.CharField(help_text=_("The kind of failure, in words."))
    message = serializers.CharField(help_text=_("What happened and what to do."))


class OperationSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(help_text=_("The operation's id."))
    kind = serializers.ChoiceField(choices=Operation.Kind.choices,
                                   help_text=_("What it changes."))
    state = serializers.ChoiceField(
        choices=Operation.State.choices,
        help_text=_("`queued` → `running` → `succeeded`, `failed` or `cancelled`."))
    attempts = serializers.IntegerField(help_text=_("How many times a worker has run it."))
    requested_via = serializers.CharField(help_text=_("`web`, `api`, `admin` or `system`."))
    created_at = serializers.DateTimeField(help_text=_("When it was requested."))
    started_at = serializers.DateTimeField(allow_null=True,
                                           help_text=_("When a worker first took it."))
    submitted_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When the platform received the change."))
    finished_at = serializers.DateTimeField(allow_null=True, help_text=_("When it ended."))
    deadline_at = serializers.DateTimeField(
        allow_null=True, help_text=_("When it is declared failed if still not done."))
    url = serializers.SerializerMethodField()
    cluster = serializers.SerializerMethodField(help_text=_("The cluster's name."))
    steps = serializers.SerializerMethodField(help_text=_("Progress, step by step."))
    error = serializers.SerializerMethodField(
        help_text=_("Why it failed or was cancelled; null otherwise."))
    node_group = serializers.SerializerMethodField(
        help_text=_("The node group it changes, if it is about one."))
    target_version = serializers.SerializerMethodField(
        help_text=_("The version it upgrades to, for upgrades."))
    retry_of = serializers.SerializerMethodField(
        help_text=_("The failed operation this one retries, if any."))
    requested_by = serializers.SerializerMethodField(
        help_text=_("Email of the person who asked; null for the system."))
    can_retry = serializers.BooleanField(help_text=_("It failed or was cancelled: `retry` "
                                                     "runs it again."))
    can_cancel = serializers.BooleanField(help_text=_("The platform does not have it yet: "
                                                      "`cancel` undoes it."))

    class Meta:
        model = Operation
        fields = ("id", "url", "cluster", "kind", "state", "steps", "error", "node_group",
                  "target_version", "retry_of", "attempts", "can_retry", "can_cancel",
                  "requested_by", "requested_via", "created_at", "started_at",
                  "submitted_at", "finished_at", "deadline_at")

    def get_url(self, operation: Operation) -> str:
        return f"{_prefix(self.context, 'operations', self.context['ctx'].tenant.slug)}" \
               f"{operation.pk}/"

    def get_cluster(self, operation: Operation) -> str:
        return operation.cluster.name

    @extend_schema_field(StepSerializer(many=True))
    def get_steps(self, operation: Operation) -> list[dict[str, Any]]:
        return StepSerializer(  # type: ignore[return-value]  # many=True gives a ListSerializer, whose data is a list; the stubs miss it
            [s for s in operation.steps or [] if isinstance(s, dict)],
            many=True, context=self.context).data

    @extend_schema_field(OperationErrorSerializer(allow_null=True))
    def get_error(self, operation: Operation) -> dict[str, Any] | None:
        if operation.state == Operation.State.CANCELLED and not operation.error_class:
            return None
        if not operation.error_class:
            return None
        return {"code": operation.error_class, "title": operation.get_error_class_display(),
                "message": operation.error_message}

    def get_node_group(self, operation: Operation) -> str | None:
        return (operation.params or {}).get("node_group")

    def get_target_version(self, operation: Operation) -> str | None:
        return (operation.params or {}).get("version")

    def get_retry_of(self, operation: Operation) -> int | None:
        value = (operation.params or {}).get("retry_of")
        return int(value) if isinstance(value, int) else None

    def get_requested_by(self, operation: Operation) -> str | None:
        user = operation.requested_by
        return getattr(user, "email", None) if user is not None else None


class ClusterEventSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(help_text=_("The event's id."))
    at = serializers.DateTimeField(help_text=_("When it happened."))
    source = serializers.ChoiceField(  # type: ignore[assignment]  # a declared field: DRF's metaclass takes it off the class
                                     choices=ClusterEvent.Source.choices,
                                     help_text=_("`portal` or `platform`."))
    severity = serializers.ChoiceField(choices=ClusterEvent.Severity.choices,
                                       help_text=_("`info`, `warning` or `error`."))
    reason = serializers.CharField(help_text=_("Machine reason, e.g. `operation.create`."))
    message = serializers.CharField(help_text=_("What happened, in words."))
    actor = serializers.CharField(source="actor_label",
                                  help_text=_("Who caused it, when it was a person."))
    operation = serializers.SerializerMethodField(help_text=_("The operation's id, if any."))

    class Meta:
        model = ClusterEvent
        fields = ("id", "at", "source", "severity", "reason", "message", "actor", "operation")

    def get_operation(self, event: ClusterEvent) -> int | None:
        return event.operation_id


class ClusterFilterSerializer(serializers.Serializer):
    phase = serializers.ChoiceField(choices=Cluster.Phase.choices, required=False,
                                    help_text=_("Only clusters in this phase."))
    version = serializers.CharField(max_length=16, required=False,
                                    help_text=_("Only clusters on this version."))
    search = serializers.CharField(max_length=42, required=False,
                                   help_text=_("Only clusters whose name contains this."))


class OperationFilterSerializer(serializers.Serializer):
    state = serializers.ChoiceField(choices=Operation.State.choices, required=False,
                                    help_text=_("Only operations in this state."))
    kind = serializers.ChoiceField(choices=Operation.Kind.choices, required=False,
                                   help_text=_("Only operations of this kind."))
    cluster = serializers.CharField(max_length=42, required=False,
                                    help_text=_("Only operations on this cluster."))


class NodeGroupReplaceSerializer(NodeGroupInputSerializer):
    """A node group's whole template and limits (PUT); the name cannot change."""

    name = serializers.CharField(max_length=63, required=False,
                                 help_text=_("If given, must be the group's name."))


class NodeGroupPatchSerializer(NodeGroupInputSerializer):
    """Only the settings to change (PATCH). Changing only the limits replaces no node."""

    name = serializers.CharField(max_length=63, required=False,
                                 help_text=_("If given, must be the group's name."))
    instance_type = serializers.CharField(
        max_length=64, required=False,
        help_text=_("A new node size: every node of the group is replaced."))
    min_replicas = bounded_integer(limits.MIN_NODES, required=False,
                                   help_text=_("Fewest nodes the autoscaler keeps."))
    max_replicas = bounded_integer(limits.MAX_NODES, required=False,
                                   help_text=_("Most nodes the autoscaler may start."))


# --------------------------------------------------------------------------- the platform's quota


class PlatformQuotaResourceSerializer(serializers.Serializer):
    resource = serializers.CharField(
        help_text=_("The ResourceQuota key, e.g. `limits.cpu`, `requests.memory`, `pods`."))
    hard = serializers.CharField(help_text=_("The smaller limit of the two quotas."))
    used = serializers.CharField(help_text=_("In use, as the quota that binds counts it."))
    remaining = serializers.CharField(help_text=_("The smaller headroom of the two quotas."))
    unit = serializers.ChoiceField(choices=["cores", "bytes", "count"],
                                   help_text=_("The unit of the amounts."))
    hard_quota = serializers.CharField(help_text=_("The quota with the smaller limit."))
    binding_quota = serializers.CharField(help_text=_("The quota with the smaller headroom."))


class PlatformQuotaSerializer(serializers.Serializer):
    state = serializers.ChoiceField(
        choices=["read", "none", "unknown"],
        help_text=_("`none`: the platform sets no quota; `unknown`: it could not be read."))
    quotas = serializers.ListField(child=serializers.CharField(),
                                   help_text=_("The ResourceQuotas found."))
    resources = PlatformQuotaResourceSerializer(
        many=True, help_text=_("Every resource the platform limits, both quotas combined."))


class PlatformQuotaWarningSerializer(serializers.Serializer):
    code = serializers.CharField(help_text=_("`platform_quota`."))
    resource = serializers.CharField(help_text=_("The limit the new nodes would exceed."))
    quota = serializers.CharField(help_text=_("The quota that binds."))
    needed = serializers.CharField(help_text=_("What the nodes that start now need."))
    remaining = serializers.CharField(help_text=_("What the quota leaves."))
    hard = serializers.CharField(help_text=_("The quota's limit."))
    used = serializers.CharField(help_text=_("In use."))
    unit = serializers.ChoiceField(choices=["cores", "bytes", "count"],
                                   help_text=_("The unit of the amounts."))
    message = serializers.CharField(help_text=_("The warning in words."))


WARNINGS_HELP = _("Where the nodes that start now need more vCPU or memory than the tenant's "
                  "quota on the platform leaves: the platform accepts the change, but those "
                  "nodes do not start. Empty when everything fits or the quota is unknown.")


class ClusterCreatedSerializer(ClusterSerializer):
    platform_quota_warnings = PlatformQuotaWarningSerializer(many=True, read_only=True,
                                                             help_text=WARNINGS_HELP)

    class Meta(ClusterSerializer.Meta):
        fields = (*ClusterSerializer.Meta.fields, "platform_quota_warnings")  # type: ignore[assignment]  # one more field than the base's tuple


class OperationAcceptedSerializer(OperationSerializer):
    platform_quota_warnings = PlatformQuotaWarningSerializer(many=True, read_only=True,
                                                             help_text=WARNINGS_HELP)

    class Meta(OperationSerializer.Meta):
        fields = (*OperationSerializer.Meta.fields, "platform_quota_warnings")  # type: ignore[assignment]  # one more field than the base's tuple
