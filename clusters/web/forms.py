"""Forms for the cluster pages: the create form (cluster, node-group rows, add-ons) and the small
action forms of the detail page.

Django only parses here: numbers within their ranges (``cozystack.limits``, so no
number outside them reaches a spec) and YAML through the one values loader
(``cozystack.values``). Every rule about what the platform accepts lives in
``clusters.actions.check_spec``, whose errors (``node_groups[1].max_replicas``, ``quota`` …)
``SpecForm.apply_errors`` puts beside the field they are about. So the create page, the
validate-as-you-type endpoint and the actions all say the same sentence for the same mistake.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import yaml
from django import forms
from django.core.exceptions import ValidationError
from django.forms import BoundField, Form
from django.utils.choices import BaseChoiceIterator
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clusters import features, spec_rules
from clusters.offerings import (
    availability_words,
    default_storage_class,
    end_of_life_dates,
    offered_gpu_models,
    offered_instance_types,
    offered_storage_classes,
)
from clusters.platform_release import UNKNOWN_CODE, shown_dialect
from clusters.web.kubeconfig import Kind
from clusters.web.presentation import values_error_text
from cozystack import catalog, limits, values
from cozystack.rules import FieldError
from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
    NodeGroupSpec,
    OidcUserSpec,
)
from portal.forms import declared_field

DEFAULT_INSTANCE_TYPE = "u1.medium"
DEFAULT_MIN_NODES, DEFAULT_MAX_NODES = 1, 3
MAX_GROUP_ROWS = limits.NODE_GROUPS.hi
ROWS_FIELD = "groups"  # hidden inputs naming the node-group rows, in order
_ROW_KEY = re.compile(r"[0-9]{1,6}")  # a row key as the page writes it (and no 5,000 digits)


def bounded_integer(bound: limits.Range, **kwargs: Any) -> forms.IntegerField:
    """A whole-number field refusing what ``bound`` refuses (``limits``), so no number outside
    the range reaches a spec; the browser's number input gets the same range."""
    return forms.IntegerField(
        min_value=bound.lo, max_value=bound.hi,
        widget=forms.NumberInput(attrs={"min": bound.lo, "max": bound.hi}), **kwargs)


def row_key(raw: Any) -> int | None:
    """A posted node-group row key (``groups``, ``_remove``) as a number, or None."""
    text = str(raw)
    return int(text) if _ROW_KEY.fullmatch(text) else None


class LenientChoiceField(forms.CharField):
    """A select whose value the platform rules check (they say which values exist, in words)."""

    def __init__(self, *, choices: Iterable[tuple[str, str]] = (), **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(widget=forms.Select(choices=list(choices)), **kwargs)


def version_choices(versions: Iterable[str]) -> list[tuple[str, str]]:

    retired = end_of_life_dates()
    offer = shown_dialect().catalogue
    choices = []
    for name in versions:
        known = offer.get_version(name)
        label = name
        if known and known.patch:
            label = f"{name} ({known.patch})"
        if name in retired:
            label = _("%(v)s, end of life since %(d)s") % {
                "v": label, "d": retired[name].isoformat()}
        elif known and known.is_default:
            label = _("%(v)s, recommended") % {"v": label}
        choices.append((name, label))
    return choices


def preset_choices() -> list[tuple[str, Any]]:
    """The control-plane sizes the platform's release offers, each with its CPU and memory,
    grouped by family (sizes, never instance types)."""
    def option(p: catalog.ControlPlanePreset) -> tuple[str, str]:
        return (p.name, _("%(name)s · %(cpu)s CPU · %(mem)s RAM")
                % {"name": p.name, "cpu": p.cpu, "mem": p.memory})

    presets = features.control_plane_presets()
    return [(_(family.label), [option(p) for p in presets if p.family == family.key])
            for family in features.preset_families()
            if any(p.family == family.key for p in presets)]


def offered_addons() -> tuple[catalog.Addon, ...]:
    """The add-ons of the platform's release the portal offers, in manifest order
    (ouroboros only where the platform speaks the PROXY protocol)."""
    return tuple(a for a in shown_dialect().catalogue.addons if features.addon_offered(a.key))


def storage_choices(namespace: str | None = None,
                    keep: Iterable[Any] = ()) -> list[tuple[str, str]]:
    """The storage classes the platform offers the tenant (``namespace``), plus ``keep``."""
    return [(s.name, s.label) for s in offered_storage_classes(namespace=namespace,
                                                               keep=_kept(keep))]


def _kept(values: Iterable[Any]) -> frozenset[str]:
    return frozenset(str(v) for v in values if v)


def gpu_label(gpu: catalog.GpuModel) -> str:
    """A GPU as the picker shows it: the model, and the platform's word on its stock."""
    if not gpu.availability:
        return gpu.label
    return _("%(gpu)s — %(stock)s") % {"gpu": gpu.label,
                                       "stock": availability_words(gpu.availability)}


def gpu_choices(keep: Iterable[Any] = (), namespace: str | None = None
                ) -> list[tuple[str, str]]:
    """The GPU models the platform offers the tenant and staff do not hide, with how many are
    available, plus ``keep`` (what the group being edited already has)."""

    return [("", _("No GPU"))] + [(g.name, gpu_label(g)) for g in offered_gpu_models(
        namespace=namespace, keep=_kept(keep))]


def instance_type_choices(keep: Iterable[Any] = (), namespace: str | None = None
                          ) -> list[tuple[str, str]]:
    """The instance types the platform offers the tenant and staff do not hide, plus
    ``keep`` (what the group being edited runs)."""

    return [(t.name, t.label) for t in offered_instance_types(
        namespace=namespace, keep=_kept(keep))] + [("", _("Custom size (set CPU and memory)"))]


def default_instance_type(namespace: str | None = None) -> str:
    """``u1.medium`` while it is offered, else the smallest offered type like it (a hidden
    default must not be preselected: the picker keeps whatever value a form starts with)."""

    offered = offered_instance_types(namespace=namespace)
    names = [t.name for t in offered]
    if DEFAULT_INSTANCE_TYPE in names:
        return DEFAULT_INSTANCE_TYPE
    series = DEFAULT_INSTANCE_TYPE.split(".", 1)[0]
    for candidates in ([t for t in offered if t.documented and t.series == series],
                       [t for t in offered if t.documented], offered):
        if candidates:
            return candidates[0].name
    return ""  # nothing offered: a custom size


def expose_choices() -> list[tuple[str, str]]:
    return [(m.name, m.label) for m in catalog.expose_methods()]


class _LazyChoices(BaseChoiceIterator):
    """Choices computed on first use and then kept: a select reads them more than once."""

    def __init__(self, load: Callable[[], list[tuple[str, str]]]) -> None:
        self.load = load
        self.loaded: list[tuple[str, str]] | None = None

    def __iter__(self) -> Iterator[tuple[str, str]]:
        if self.loaded is None:
            self.loaded = self.load()
        return iter(self.loaded)


# --------------------------------------------------------------------------- the cluster


class ClusterForm(forms.Form):
    name = forms.CharField(
        label=gettext_lazy("Name"), required=False, max_length=200,
        help_text=gettext_lazy("Lowercase letters, digits and dashes; at most 42 characters. "
                               "Cannot change later."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "placeholder": "my-cluster", "autofocus": True}))
    version = LenientChoiceField(label=gettext_lazy("Kubernetes version"))
    control_plane_replicas = bounded_integer(
        limits.CONTROL_PLANE_REPLICAS,
        label=gettext_lazy("Control-plane replicas"),
        initial=catalog.DEFAULT_CONTROL_PLANE_REPLICAS,
        help_text=gettext_lazy("API-server pods run by the platform (1 to 5). Two survive the "
                               "loss of one."))
    control_plane_preset = LenientChoiceField(
        label=gettext_lazy("API-server size"), initial=catalog.DEFAULT_API_SERVER_PRESET,
        help_text=gettext_lazy("CPU and memory of each API-server pod on the platform. These "
                               "sizes are not instance types: preset u1.medium is 2 CPU and "
                               "8 GiB, the u1.medium node 1 vCPU and 4 GiB."))
    storage_class = LenientChoiceField(
        label=gettext_lazy("Storage class"), initial=catalog.DEFAULT_STORAGE_CLASS,
        help_text=gettext_lazy("Where the cluster's persistent volumes live. Cannot change "
                               "later."))
    host = forms.CharField(
        label=gettext_lazy("API host name (optional)"), required=False, max_length=300,
        help_text=gettext_lazy("Leave empty for kubernetes-<name>.<tenant domain>. A custom "
                               "name needs a DNS record pointing at the platform ingress. "
                               "Cannot change later."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false",
                                      "placeholder": "api.example.com"}))

    def __init__(self, *args: Any, versions: Iterable[str], namespace: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.namespace = namespace
        versions = list(versions)
        self.fields["version"].widget.choices = version_choices(versions)
        default = shown_dialect().catalogue.default_version().name
        self.fields["version"].initial = default if default in versions else (
            versions[0] if versions else default)
        self.fields["control_plane_preset"].widget.choices = preset_choices()
        self.fields["control_plane_preset"].initial = features.default_api_server_preset()
        self.fields["storage_class"].widget.choices = storage_choices(namespace)
        self.fields["storage_class"].initial = default_storage_class(namespace)
        add_auto_repair_fields(self)

    def auto_repair(self) -> AutoRepairSpec | None:
        return auto_repair_value(self)


# --------------------------------------------------------------------------- auto-repair

AUTO_REPAIR_DEFAULT, AUTO_REPAIR_ON, AUTO_REPAIR_OFF = "", "on", "off"


def add_auto_repair_fields(form: forms.Form) -> None:
    """The cluster's auto-repair setting: the platform default, on with its two values, off."""
    default = AutoRepairSpec()
    form.fields["auto_repair"] = forms.ChoiceField(
        label=_("Node auto-repair"), required=False, initial=AUTO_REPAIR_DEFAULT,
        choices=[(AUTO_REPAIR_DEFAULT, _("The platform's default (on: 50%, 10 minutes)")),
                 (AUTO_REPAIR_ON, _("On, with the settings below")),
                 (AUTO_REPAIR_OFF, _("Off: unhealthy nodes stay until someone acts"))],
        help_text=_("The platform replaces a node that stops reporting healthy, or that never "
                    "becomes ready within the start-up timeout, with a new one."))
    form.fields["repair_max_unhealthy"] = forms.CharField(
        label=_("Unhealthy nodes tolerated per group"), required=False, max_length=8,
        initial=default.max_unhealthy,
        widget=forms.TextInput(attrs={"placeholder": default.max_unhealthy,
                                      "spellcheck": "false"}),
        help_text=_("A number of nodes (“1”) or a share of the group (“50%”). When more nodes "
                    "of a group are unhealthy at once, repairs pause: something bigger is "
                    "wrong. 50% never repairs a one-node group (half of one node rounds down "
                    "to none): use “1” for such groups."))
    form.fields["repair_node_startup_timeout"] = forms.CharField(
        label=_("Start-up timeout"), required=False, max_length=16,
        initial=default.node_startup_timeout,
        widget=forms.TextInput(attrs={"placeholder": default.node_startup_timeout,
                                      "spellcheck": "false"}),
        help_text=_("How long a new node may take to become ready before it is replaced, "
                    "such as “10m” or “1h”."))


def auto_repair_initial(repair: AutoRepairSpec | None) -> dict[str, Any]:
    if repair is None:
        return {"auto_repair": AUTO_REPAIR_DEFAULT}
    return {"auto_repair": AUTO_REPAIR_ON if repair.enabled else AUTO_REPAIR_OFF,
            "repair_max_unhealthy": repair.max_unhealthy,
            "repair_node_startup_timeout": repair.node_startup_timeout}


def auto_repair_value(form: forms.Form) -> AutoRepairSpec | None:
    """The setting as posted (as far as it parses), or as the form started."""
    def text(name: str) -> str:
        if form.is_bound:
            return str(form.data.get(form.add_prefix(name)) or "").strip()
        return str(form.initial.get(name, form.fields[name].initial) or "").strip()

    mode = text("auto_repair")
    if mode not in (AUTO_REPAIR_ON, AUTO_REPAIR_OFF):
        return None
    default = AutoRepairSpec()
    return AutoRepairSpec(enabled=mode == AUTO_REPAIR_ON,
                          max_unhealthy=text("repair_max_unhealthy") or default.max_unhealthy,
                          node_startup_timeout=text("repair_node_startup_timeout")
                          or default.node_startup_timeout)


class AutoRepairForm(forms.Form):
    """The detail page's auto-repair action: the cluster's setting and each group's own."""

    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, groups: Iterable[NodeGroupSpec], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        add_auto_repair_fields(self)
        self.group_names = [g.name for g in groups]
        for name in self.group_names:
            self.fields[f"{name}__max_unhealthy"] = forms.CharField(
                label=_("%(group)s: unhealthy nodes tolerated") % {"group": name},
                required=False, max_length=8,
                widget=forms.TextInput(attrs={"placeholder": _("the cluster's"),
                                              "spellcheck": "false"}))
            self.fields[f"{name}__node_startup_timeout"] = forms.CharField(
                label=_("%(group)s: start-up timeout") % {"group": name}, required=False,
                max_length=16, widget=forms.TextInput(attrs={"placeholder": _("the cluster's"),
                                                             "spellcheck": "false"}))

    def group_rows(self) -> list[tuple[str, BoundField, BoundField]]:
        return [(name, self[f"{name}__max_unhealthy"], self[f"{name}__node_startup_timeout"])
                for name in self.group_names]

    def field_for_error(self, path: str) -> str | None:
        """``auto_repair.max_unhealthy`` → ``repair_max_unhealthy``;
        ``node_groups[1].node_startup_timeout`` → ``<second group>__node_startup_timeout``."""
        if path.startswith("auto_repair"):
            leaf = path.split(".", 1)[1] if "." in path else ""
            return f"repair_{leaf}" if leaf else "auto_repair"
        match = _GROUP_PATH.match(path)
        if match and match.group(2) in ("max_unhealthy", "node_startup_timeout"):
            index = int(match.group(1))
            if index < len(self.group_names):
                return f"{self.group_names[index]}__{match.group(2)}"
        return None

    def to_groups(self) -> dict[str, tuple[str, str]]:
        data = getattr(self, "cleaned_data", {})
        return {name: (str(data.get(f"{name}__max_unhealthy") or "").strip(),
                       str(data.get(f"{name}__node_startup_timeout") or "").strip())
                for name in self.group_names}


def auto_repair_form_initial(spec: ClusterSpec) -> dict[str, Any]:
    initial = auto_repair_initial(spec.auto_repair)
    for group in spec.node_groups:
        initial[f"{group.name}__max_unhealthy"] = group.max_unhealthy
        initial[f"{group.name}__node_startup_timeout"] = group.node_startup_timeout
    return initial


# --------------------------------------------------------------------------- access


class AccessForm(forms.Form):
    """Who gets into the cluster through single sign-on: per member of the tenant, no access
    or a cluster role their portal role allows. People the cluster still lists who are no
    longer members (``departed``) lose their access when this is saved."""

    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)

    def __init__(self, *args: Any, members: Iterable[Any],
                 granted: Iterable[OidcUserSpec] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.members = [m for m in members if m.roles]
        current = {u.email.lower(): u.role for u in granted}
        labels = {"admin": _("Admin: cluster-admin"), "view": _("View: read only")}
        for member in self.members:
            self.fields[member.field] = forms.ChoiceField(
                label=member.name, required=False, initial=current.get(member.email, ""),
                choices=[("", _("No access"))] + [(r, labels[r]) for r in member.roles])
        known = {m.email for m in self.members}
        self.departed = [u for u in granted if u.email.lower() not in known]

    def to_users(self) -> tuple[OidcUserSpec, ...]:
        data = getattr(self, "cleaned_data", {})
        users = []
        for member in self.members:
            role = data.get(member.field) if data else (
                self.data.get(self.add_prefix(member.field)) if self.is_bound
                else self.initial.get(member.field, self.fields[member.field].initial))
            if role in spec_rules.OIDC_ROLES:
                users.append(OidcUserSpec(member.email, str(role)))
        return tuple(users)

    def field_for(self, email: str) -> str | None:
        return next((m.field for m in self.members if m.email == email.lower()), None)

    def field_for_error(self, path: str) -> str | None:
        """``oidc_users[i].role`` → the field of the i-th person given access (by email)."""
        match = _USER_PATH.match(path)
        users = sorted(self.to_users(), key=lambda u: u.email)
        if match and int(match.group(1)) < len(users):
            return self.field_for(users[int(match.group(1))].email)
        return None

    def rows(self) -> list[tuple[Any, BoundField]]:
        return [(member, self[member.field]) for member in self.members]


def access_initial(members: Iterable[Any], users: Iterable[OidcUserSpec]) -> dict[str, str]:
    current = {u.email.lower(): u.role for u in users}
    return {m.field: current.get(m.email, "") for m in members}


# --------------------------------------------------------------------------- node groups


class NodeGroupForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Group name"), required=False, max_length=200,
                           widget=forms.TextInput(attrs={"autocomplete": "off",
                                                         "spellcheck": "false"}))
    instance_type = LenientChoiceField(label=gettext_lazy("Instance type"),
                                       initial=DEFAULT_INSTANCE_TYPE)
    cpu = forms.CharField(label=gettext_lazy("CPU (custom size)"), required=False,
                          max_length=20, widget=forms.TextInput(attrs={"placeholder": "4"}))
    memory = forms.CharField(label=gettext_lazy("Memory (custom size)"), required=False,
                             max_length=20, widget=forms.TextInput(attrs={"placeholder": "16Gi"}))
    min_replicas = bounded_integer(limits.MIN_NODES, label=gettext_lazy("Minimum nodes"),
                                   initial=DEFAULT_MIN_NODES)
    max_replicas = bounded_integer(limits.MAX_NODES, label=gettext_lazy("Maximum nodes"),
                                   initial=DEFAULT_MAX_NODES)
    disk_gib = bounded_integer(limits.DISK_GIB, label=gettext_lazy("Disk per node (GiB)"),
                               initial=catalog.DEFAULT_DISK_GIB)
    ingress = forms.BooleanField(label=gettext_lazy("Ingress nodes (role ingress-nginx)"),
                                 required=False)
    gpu_model = LenientChoiceField(label=gettext_lazy("GPU model"), initial="")
    gpu_count = bounded_integer(limits.GPUS_PER_NODE, label=gettext_lazy("GPUs per node"),
                                initial=1, required=False)
    storage_class = LenientChoiceField(
        label=gettext_lazy("Storage class of the nodes' disks"), initial="",
        help_text=gettext_lazy("Where this group's node disks live; by default the cluster's "
                               "storage class. Nodes move between servers while running, so "
                               "only replicated classes fit. Changing it replaces the nodes."))
    max_unhealthy = forms.CharField(
        label=gettext_lazy("Unhealthy nodes tolerated (auto-repair)"), required=False,
        max_length=8, widget=forms.TextInput(attrs={"placeholder": "50%",
                                                    "spellcheck": "false"}),
        help_text=gettext_lazy("Empty: the cluster's setting. Above this many unhealthy nodes "
                               "at once, repairs pause."))
    node_startup_timeout = forms.CharField(
        label=gettext_lazy("Start-up timeout (auto-repair)"), required=False, max_length=16,
        widget=forms.TextInput(attrs={"placeholder": "10m", "spellcheck": "false"}),
        help_text=gettext_lazy("Empty: the cluster's setting."))

    def __init__(self, *args: Any, namespace: str | None = None, **kwargs: Any) -> None:
        """``namespace``: the tenant's, whose platform options the pickers offer."""
        super().__init__(*args, **kwargs)
        self.namespace = namespace
        disk = self.fields["disk_gib"]
        disk.initial = features.default_disk_gib()
        disk.help_text = _("The node's persistent disk: it holds the operating system, the "
                           "kubelet's state and container images, and local volumes.") \
            if features.supports(features.DISK_SIZE) else \
            _("Scratch disk per node for container images and the kubelet's state.")
        # Only what the platform offers the tenant and staff offer, plus the value this form
        # starts from or was posted with, so a group keeps showing a type, GPU or class that
        # was hidden or dropped after it was created. Lazy: the lists are read only when the
        # select is rendered.
        keep_class = (self.initial.get("storage_class"),
                      self.data.get(self.add_prefix("storage_class")))
        self.fields["storage_class"].widget.choices = _LazyChoices(lambda: [
            ("", _("The cluster's storage class")), *storage_choices(namespace, keep_class)])
        for name, choices in (("instance_type", instance_type_choices),
                              ("gpu_model", gpu_choices)):
            keep = (self.initial.get(name), self.data.get(self.add_prefix(name)))
            self.fields[name].widget.choices = _LazyChoices(
                functools.partial(choices, keep, namespace))

    def value(self, name: str) -> Any:
        """The cleaned value, or the initial one when the field did not parse (for previews)."""
        data = getattr(self, "cleaned_data", {})
        if name in data and data[name] is not None:
            return data[name]
        if name in _TEXT_FIELDS and self.is_bound:
            return (self.data.get(self.add_prefix(name)) or "").strip()
        initial = self.initial.get(name, self.fields[name].initial)
        return initial if initial is not None else ""

    def to_spec(self, name: str | None = None, *, keep: NodeGroupSpec | None = None
                ) -> NodeGroupSpec:
        """The group as far as it parses. ``keep``: the group as it is, whose auto-repair
        overrides stay when the form does not carry them (the node change form), and whose
        kubelet reservations (which no form shows) stay."""
        gpu_model = self.value("gpu_model")
        count = self.value("gpu_count")
        # The list has one entry per GPU: only a count in range is ever multiplied out (a
        # count that did not parse, or is out of range, has its error beside the field).
        count = count if limits.GPUS_PER_NODE.allows(count) else limits.GPUS_PER_NODE.lo
        instance_type = self.value("instance_type")
        return NodeGroupSpec(
            name=name if name is not None else self.value("name"),
            instance_type=instance_type,
            min_replicas=_int(self.value("min_replicas"), DEFAULT_MIN_NODES),
            max_replicas=_int(self.value("max_replicas"), DEFAULT_MAX_NODES),
            disk_gib=_int(self.value("disk_gib"), features.default_disk_gib()),
            roles=(catalog.INGRESS_NGINX_ROLE,) if self.value("ingress") else (),
            gpus=(gpu_model,) * count if gpu_model else (),
            cpu=self.value("cpu") or None if not instance_type else None,
            memory=self.value("memory") or None if not instance_type else None,
            storage_class=self.value("storage_class"),
            max_unhealthy=self._kept("max_unhealthy", keep),
            node_startup_timeout=self._kept("node_startup_timeout", keep),
            kubelet=keep.kubelet if keep is not None else KubeletSpec(),
        )

    def _kept(self, name: str, keep: NodeGroupSpec | None) -> str:
        if keep is not None and self.is_bound and self.add_prefix(name) not in self.data:
            return str(getattr(keep, name))
        return str(self.value(name))


_TEXT_FIELDS = ("name", "instance_type", "cpu", "memory", "gpu_model", "storage_class",
                "max_unhealthy", "node_startup_timeout")


def group_initial(group: NodeGroupSpec) -> dict[str, Any]:
    return {"name": group.name, "instance_type": group.instance_type, "cpu": group.cpu or "",
            "memory": group.memory or "", "min_replicas": group.min_replicas,
            "max_replicas": group.max_replicas, "disk_gib": group.disk_gib,
            "ingress": catalog.INGRESS_NGINX_ROLE in group.roles,
            "gpu_model": group.gpus[0] if group.gpus else "",
            "gpu_count": len(group.gpus) or 1, "storage_class": group.storage_class,
            "max_unhealthy": group.max_unhealthy,
            "node_startup_timeout": group.node_startup_timeout}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


# --------------------------------------------------------------------------- add-ons


def _values_field(key: str) -> str:
    return f"{key}_values"


class AddonsForm(forms.Form):
    """A toggle per add-on, Ingress NGINX's options, and an advanced YAML values box each."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Only what the live platform offers (fractional GPUs and ouroboros are v1.6 ones).
        self.offered = offered_addons()
        for addon in self.offered:
            if addon.has_enabled:
                self.fields[f"{addon.key}_enabled"] = forms.BooleanField(
                    label=addon.label, required=False, help_text=addon.description)
            if addon.key == catalog.INGRESS_NGINX:
                self.fields[f"{addon.key}_expose_method"] = LenientChoiceField(
                    label=_("Expose method"), choices=expose_choices(),
                    initial=catalog.DEFAULT_EXPOSE_METHOD)
                self.fields[f"{addon.key}_hosts"] = forms.CharField(
                    label=_("Hosts routed to the cluster"), required=False, max_length=4000,
                    help_text=_("One DNS name per line (Proxied only)."),
                    widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false",
                                                 "placeholder": "app.example.com"}))
            if addon.has_values_override:
                roots = ", ".join(f"{r}:" for r in addon.value_roots)
                # No max_length: the values loader refuses more than its byte limit.
                self.fields[_values_field(addon.key)] = forms.CharField(
                    label=_("Advanced values for %(addon)s (YAML)") % {"addon": addon.label},
                    required=False,
                    help_text=_("Nest everything under %(roots)s; other keys are ignored by "
                                "the platform.") % {"roots": roots},
                    widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false",
                                                 "class": "font-monospace"}))

    def sections(self) -> list[dict[str, Any]]:
        """The fields of each add-on, for the template."""
        result = []
        for addon in self.offered:
            fields: dict[str, Any] = {"addon": addon}
            for suffix, key in (("enabled", "enabled"), ("expose_method", "expose_method"),
                                ("hosts", "hosts"), ("values", "yaml")):
                name = f"{addon.key}_{suffix}"
                if name in self.fields:
                    fields[key] = self[name]
            result.append(fields)
        return result

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for addon in self.offered:
            name = _values_field(addon.key)
            if name not in self.fields:
                continue
            data[f"{addon.key}_parsed"] = self._parse_yaml(name, data.get(name) or "")
        return data

    def _parse_yaml(self, name: str, text: str) -> Any:
        """The box's document through the one values loader; a refusal goes beside the box
        and leaves nothing parsed (the spec keeps no values from it)."""

        if not text.strip():
            return {}
        try:
            parsed = values.load_yaml(text)
        except values.ValuesError as exc:
            self.add_error(name, values_error_text(exc))
            return None
        return {} if parsed is None else parsed

    def to_addons(self) -> tuple[AddonSpec, ...]:
        data = getattr(self, "cleaned_data", {})
        raw = self.data if self.is_bound else {}
        specs = []
        for addon in self.offered:
            enabled_name = f"{addon.key}_enabled"
            if self.is_bound:
                enabled = bool(data.get(enabled_name)) if enabled_name in data else \
                    bool(raw.get(self.add_prefix(enabled_name)))
            else:
                enabled = bool(self.initial.get(enabled_name))
            values = data.get(f"{addon.key}_parsed")
            if values is None:
                values = self.initial.get(f"{addon.key}_parsed") or {}
            expose = catalog.DEFAULT_EXPOSE_METHOD
            hosts: tuple[str, ...] = ()
            if addon.key == catalog.INGRESS_NGINX:
                expose = self._text(f"{addon.key}_expose_method") or expose
                hosts = tuple(h for h in re.split(r"[\s,]+", self._text(f"{addon.key}_hosts"))
                              if h)
            specs.append(AddonSpec(key=addon.key, enabled=enabled and addon.has_enabled,
                                   values_override=values if values is not None else {},
                                   expose_method=expose, hosts=hosts))
        return tuple(specs)

    def _text(self, name: str) -> str:
        if self.is_bound:
            return str(self.data.get(self.add_prefix(name)) or "").strip()
        return str(self.initial.get(name) or "").strip()


def addons_initial(addons: Iterable[AddonSpec]) -> dict[str, Any]:
    initial: dict[str, Any] = {}
    for addon in addons:
        initial[f"{addon.key}_enabled"] = addon.enabled
        if addon.values_override:
            initial[_values_field(addon.key)] = yaml.safe_dump(
                addon.values_override, sort_keys=False, default_flow_style=False)
            initial[f"{addon.key}_parsed"] = addon.values_override
        if addon.key == catalog.INGRESS_NGINX:
            initial[f"{addon.key}_expose_method"] = addon.expose_method
            initial[f"{addon.key}_hosts"] = "\n".join(addon.hosts)
    return initial


def addon_errors_field(path: str) -> str | None:
    """``addons.ingressNginx.hosts[0]`` → the add-ons form field ``ingressNginx_hosts``."""
    match = re.match(r"^addons\.(\w+)(?:\.(\w+))?", path)
    if not match:
        return None
    key, part = match.group(1), match.group(2) or "enabled"
    suffix = {"enabled": "enabled", "expose_method": "expose_method", "hosts": "hosts",
              "values_override": "values"}.get(part)
    return f"{key}_{suffix}" if suffix else None


# --------------------------------------------------------------------------- the whole spec

_GROUP_PATH = re.compile(r"^node_groups\[(\d+)\](?:\.(\w+))?")
_GROUP_FIELDS = {"name": "name", "instance_type": "instance_type", "cpu": "cpu",
                 "memory": "memory", "min_replicas": "min_replicas",
                 "max_replicas": "max_replicas", "disk_gib": "disk_gib",
                 "roles": "ingress", "gpus": "gpu_model", "storage_class": "storage_class",
                 "max_unhealthy": "max_unhealthy",
                 "node_startup_timeout": "node_startup_timeout"}
_CLUSTER_FIELDS = {"name": "name", "version": "version", "storage_class": "storage_class",
                   "host": "host", "control_plane.replicas": "control_plane_replicas",
                   "control_plane.api_server_preset": "control_plane_preset",
                   "control_plane": "control_plane_preset", "auto_repair": "auto_repair",
                   "auto_repair.max_unhealthy": "repair_max_unhealthy",
                   "auto_repair.node_startup_timeout": "repair_node_startup_timeout"}
_USER_PATH = re.compile(r"^oidc_users\[(\d+)\]")


def row_keys(data: Any) -> list[int]:
    """The node-group row keys a bound form posted, in order, without duplicates."""
    keys: list[int] = []
    for raw in data.getlist(ROWS_FIELD) if hasattr(data, "getlist") else data.get(ROWS_FIELD, []):
        key = row_key(raw)
        if key is not None and key not in keys and len(keys) < MAX_GROUP_ROWS:
            keys.append(key)
    return keys


def next_group_name(names: Iterable[str]) -> str:
    taken = set(names)
    return next(f"md{i}" for i in range(100) if f"md{i}" not in taken)


class SpecForm:
    """The create form as one object: cluster fields, node-group rows and add-ons.

    Node-group rows have stable keys (prefix ``ng-<key>``) so a row can be added or removed in
    place; ``node_groups[i]`` in an error means the i-th posted row.
    """

    def __init__(self, data: Any = None, *, versions: Iterable[str],
                 add_row: bool = False, remove_row: int | None = None,
                 access_members: Iterable[Any] | None = None,
                 namespace: str | None = None) -> None:
        """``access_members``: the tenant's members to choose single sign-on access from
        (None: the access section is not offered, to this person or by this platform);
        ``namespace``: the tenant's, whose platform options the pickers offer."""
        self.is_bound = data is not None
        self.namespace = namespace
        self.cluster = ClusterForm(data, versions=versions, namespace=namespace)
        keys = row_keys(data) if data is not None else [0]
        if data is not None and not keys:
            keys = [0]
        self.rows: list[tuple[int, NodeGroupForm]] = []
        for key in keys:
            if key == remove_row and len(keys) > 1:
                continue
            initial = group_initial(self._default_group("md0", namespace)) if key == 0 and \
                data is None else {}
            self.rows.append((key, NodeGroupForm(data, prefix=f"ng-{key}", initial=initial,
                                                 namespace=namespace)))
        if add_row and len(self.rows) < MAX_GROUP_ROWS:
            key = max(k for k, _f in self.rows) + 1 if self.rows else 0
            names = [f.value("name") for _k, f in self.rows]
            initial = group_initial(dataclasses.replace(
                self._default_group(next_group_name(names), namespace), roles=()))
            self.rows.append((key, NodeGroupForm(prefix=f"ng-{key}", initial=initial,
                                                 namespace=namespace)))
        self.addons = AddonsForm(data, prefix="addon")
        self.access = AccessForm(data, prefix="access", members=access_members) \
            if access_members is not None else None
        self._users: tuple[OidcUserSpec, ...] = ()
        self.quota_errors: list[str] = []
        self.other_errors: list[str] = []
        self.group_errors: list[str] = []
        self._valid: bool | None = None

    @staticmethod
    def _default_group(name: str, namespace: str | None = None) -> NodeGroupSpec:
        return NodeGroupSpec(name=name, instance_type=default_instance_type(namespace),
                             min_replicas=DEFAULT_MIN_NODES, max_replicas=DEFAULT_MAX_NODES,
                             disk_gib=features.default_disk_gib(),
                             roles=(catalog.INGRESS_NGINX_ROLE,))

    def forms(self) -> Iterator[forms.Form]:
        yield self.cluster
        for _key, form in self.rows:
            yield form
        yield self.addons
        if self.access is not None:
            yield self.access

    def is_valid(self) -> bool:
        """Django-level parsing only (numbers, YAML); the platform rules come from the action."""
        if self._valid is None:
            self._valid = all([form.is_valid() for form in self.forms()])
        return self._valid

    def cluster_value(self, name: str) -> Any:
        data = getattr(self.cluster, "cleaned_data", {})
        if data.get(name) not in (None, ""):
            return data[name]
        if self.is_bound and name not in ("control_plane_replicas",):
            posted = str(self.cluster.data.get(name) or "").strip()
            if posted or name in ("name", "host"):
                return posted
        return self.cluster.fields[name].initial

    def to_spec(self, namespace: str) -> ClusterSpec:
        """The spec as far as it parses; fields that did not parse keep their defaults."""
        self.is_valid()
        replicas = self.cluster_value("control_plane_replicas")
        self._users = self.access.to_users() if self.access is not None else ()
        return ClusterSpec(
            name=str(self.cluster_value("name") or ""),
            namespace=namespace,
            version=str(self.cluster_value("version") or ""),
            storage_class=str(self.cluster_value("storage_class") or ""),
            host=str(self.cluster_value("host") or ""),
            control_plane=ControlPlaneSpec(
                replicas=_int(replicas, catalog.DEFAULT_CONTROL_PLANE_REPLICAS),
                api_server_preset=str(self.cluster_value("control_plane_preset")
                                      or catalog.DEFAULT_API_SERVER_PRESET)),
            node_groups=tuple(form.to_spec() for _key, form in self.rows),
            addons=self.addons.to_addons(),
            auto_repair=self.cluster.auto_repair(),
            oidc_users=self._users,
        )

    def apply_errors(self, errors: Iterable[FieldError], *, quiet_required: bool = False,
                     trigger: str = "") -> None:
        """Put each rule's message beside its field; quota and unplaced ones in their panels.

        ``quiet_required`` (validate-as-you-type) drops "required" messages for blank fields
        the person has not reached yet, so the form does not start out red.
        """
        for error in errors:
            if error.code == UNKNOWN_CODE:
                self._valid = False  # said beside the submit button, once
                continue
            form, name = self._locate(error.field)
            if quiet_required and error.code == "required" and form is not None and name and \
                    form.add_prefix(name) != trigger:
                continue
            if error.field == "quota":
                self.quota_errors.append(error.message)
            elif form is not None and name in form.fields:
                if error.message not in form.errors.get(name, []):
                    form.add_error(name, error.message)
            elif error.field.startswith(("node_groups", "nodeGroups")):
                self.group_errors.append(error.message)
            else:
                self.other_errors.append(error.message)
        self._valid = False if any(f.errors for f in self.forms()) or self.quota_errors or \
            self.other_errors or self.group_errors else self._valid

    def _locate(self, path: str) -> tuple[Form | None, str | None]:
        if path in _CLUSTER_FIELDS:
            return self.cluster, _CLUSTER_FIELDS[path]
        if path.startswith("control_plane"):
            return self.cluster, "control_plane_preset"
        match = _GROUP_PATH.match(path)
        if match:
            index, part = int(match.group(1)), match.group(2)
            if index < len(self.rows):
                return self.rows[index][1], _GROUP_FIELDS.get(part or "", None)
            return None, None
        if path.startswith("addons"):
            return self.addons, addon_errors_field(path)
        match = _USER_PATH.match(path)
        if match and self.access is not None:
            index = int(match.group(1))
            users = sorted(self._users, key=lambda u: u.email)
            if index < len(users):
                return self.access, self.access.field_for(users[index].email)
        return None, None

    @property
    def error_count(self) -> int:
        count = sum(len(errors) for form in self.forms() for errors in form.errors.values())
        return count + len(self.quota_errors) + len(self.other_errors) + len(self.group_errors)

    def bound_fields(self) -> Iterator[BoundField]:
        for form in self.forms():
            yield from form


def apply_validation_error(spec_form: SpecForm, exc: ValidationError) -> None:
    """An action's ValidationError (keys are form-style paths) onto the spec form."""
    spec_form.apply_errors(validation_field_errors(exc))


def validation_field_errors(exc: ValidationError) -> list[FieldError]:
    if hasattr(exc, "error_dict"):
        return [FieldError(key, message, getattr(error, "code", "") or "")
                for key, errors in exc.error_dict.items()
                for error in errors for message in error.messages]
    return [FieldError("__all__", message, getattr(exc, "code", "") or "")
            for message in exc.messages]


# --------------------------------------------------------------------------- detail actions


class ConfirmForm(forms.Form):
    """Every action of the detail page shows its consequences first; ``confirm`` sends it."""

    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class ScaleForm(ConfirmForm):
    min_replicas = bounded_integer(limits.MIN_NODES, label=gettext_lazy("Minimum nodes"))
    max_replicas = bounded_integer(limits.MAX_NODES, label=gettext_lazy("Maximum nodes"))


class UpgradeForm(ConfirmForm):
    version = forms.CharField(max_length=16, widget=forms.HiddenInput)


class DeleteForm(forms.Form):
    confirm_name = forms.CharField(label=gettext_lazy("Type the cluster name to confirm"),
                                   max_length=200, required=False,
                                   widget=forms.TextInput(attrs={"autocomplete": "off",
                                                                 "spellcheck": "false"}))


class KubeconfigForm(forms.Form):
    kind = forms.ChoiceField(label=gettext_lazy("Which kubeconfig"), widget=forms.RadioSelect,
                             initial=Kind.ADMIN)

    def __init__(self, *args: Any, allow_super_admin: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [(Kind.ADMIN.value,
                    _("Admin: cluster-admin within Kubernetes RBAC (recommended)"))]
        if allow_super_admin:
            choices.append((Kind.SUPER_ADMIN.value, _(
                "Super-admin: break-glass, bypasses RBAC. Use only to repair access.")))
        declared_field(self, "kind", forms.ChoiceField).choices = choices
