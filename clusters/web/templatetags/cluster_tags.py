"""Template helpers for the cluster pages: form widgets with Tabler classes, the instance-type
picker, the styles of phases, operations, steps and timeline events (from
``clusters.web.presentation``, so templates map no state to CSS themselves), durations."""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any
from urllib.parse import quote

from django import forms, template
from django.apps import apps
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import get_language, gettext

from clusters import progress
from clusters.models import ClusterEvent
from clusters.offerings import offered_instance_types
from clusters.platform_release import shown_dialect
from clusters.web import live, presentation
from clusters.web.queries import tenant_summary
from cozystack import catalog

register = template.Library()


@register.filter
def widget(field: forms.BoundField, extra: str = "") -> str:
    """The field's input with Tabler's classes, marked invalid when it has errors, and tied to
    its error container for screen readers."""
    w = field.field.widget
    if isinstance(w, forms.CheckboxInput):
        css = "form-check-input"
    elif isinstance(w, forms.Select):
        css = "form-select"
    else:
        css = "form-control"
    if field.errors:
        css += " is-invalid"
    if extra:
        css += f" {extra}"
    attrs: dict[str, str | bool] = {"class": css, "aria-describedby": f"errors-{field.html_name}"}
    return field.as_widget(attrs=attrs)


@register.inclusion_tag("clusters/_instance_type_picker.html")
def instance_type_picker(field: forms.BoundField) -> dict[str, Any]:
    """A select of instance types grouped by series, each option carrying vCPU and RAM so the
    filters beside it can narrow the list without a round trip."""

    value = field.value()
    value = "" if value is None else str(value)
    offer = shown_dialect().catalogue
    # What the platform offers the form's tenant and staff do not hide; the value the form
    # holds stays (a group keeps showing the type it runs).
    offered = offered_instance_types(namespace=getattr(field.form, "namespace", None),
                                     keep=frozenset({value} - {""}))
    series = []
    for s in offer.instance_series:
        series.append({"label": f"{s.label} ({s.key}, vCPU:RAM {s.vcpu_to_ram})",
                       "types": [t for t in offered if t.series == s.key and t.documented]})
    listed = {s.key for s in offer.instance_series}
    others = [t for t in offered if not t.documented or t.series not in listed]
    known = {t.name for t in offered}
    return {"field": field, "value": value, "series": series, "others": others,
            "unknown": value if value and value not in known else "",
            "invalid": bool(field.errors),
            # The v1.6 catalogue marks dedicated-vCPU (d1, cx1…) and hugepage types.
            "has_dedicated": any(getattr(t, "dedicated_cpu", False) for t in offered),
            "has_hugepages": any(getattr(t, "hugepages", "") for t in offered)}


@register.filter
def instance_flags(item: Any, value: str = "") -> str:
    """An option's attributes after its vCPU and memory: ``data-dedicated`` for dedicated-vCPU
    types and ``data-hugepages="1Gi"`` for hugepage types (the v1.6 catalogue marks them; the
    picker's filters read them), and ``selected`` when it is ``value``."""
    flags = " data-dedicated" if getattr(item, "dedicated_cpu", False) else ""
    selected = " selected" if getattr(item, "name", None) == value else ""
    hugepages = str(getattr(item, "hugepages", "") or "")
    if hugepages:
        return format_html('{} data-hugepages="{}"{}', flags, hugepages, selected)
    return mark_safe(flags + selected)  # noqa: S308 - fixed text


@register.filter
def instance_extras(item: Any) -> str:
    """`` · dedicated vCPU · hugepages 1Gi`` after a type's label, where they apply."""
    extras = ""
    if getattr(item, "dedicated_cpu", False):
        extras += " · " + gettext("dedicated vCPU")
    hugepages = str(getattr(item, "hugepages", "") or "")
    if hugepages:
        extras += " · " + gettext("hugepages %(size)s") % {"size": hugepages}
    return extras


@register.filter
def phase_style(phase: str) -> str:
    return presentation.PHASE_STYLE.get(phase, "idle")


@register.filter
def badge_style(phase: str) -> str:
    return presentation.BADGE_STYLE[presentation.PHASE_STYLE.get(phase, "idle")]


@register.simple_tag
def list_query(filters: dict[str, str], page: int | str) -> str:
    """``phase=…&version=…&page=…``: the list's filters and a page, for its links, its poll and
    its socket (``{% list_query filters page.number as query %}``)."""
    values = (("phase", filters.get("phase", "")), ("version", filters.get("version", "")),
              ("page", page))
    return "&".join(f"{key}={quote(str(value), safe='/')}" for key, value in values)


@register.filter
def operation_badge(state: str) -> str:
    """``{{ op.state|operation_badge }}``: the badge class of an operation's state."""
    return presentation.OPERATION_BADGE.get(state, "bg-yellow-lt")


@register.filter
def step_icon(state: str) -> SafeString:
    """The symbol of a step in its state; a running step spins."""
    if state == progress.RUNNING:
        return format_html('<span class="{}"></span>', "spinner-border spinner-border-sm")
    return format_html("{}", presentation.STEP_SYMBOL.get(state, "○"))


@register.filter
def running_step_detail(operation: Any) -> str:
    """What the running step of ``operation`` is waiting for (empty when none is running)."""
    return "".join(step.get("detail") or "" for step in operation.steps
                   if step["state"] == progress.RUNNING)


@register.filter
def source_badge(source: str) -> str:
    return presentation.SOURCE_BADGE.get(source, "bg-secondary-lt")


@register.filter
def severity_text(severity: str) -> str:
    return presentation.SEVERITY_TEXT.get(severity, "")


@register.filter
def operation_note(operation: Any) -> str:
    return presentation.operation_note(operation)


@register.filter
def kubeconfig_status(state: Any) -> presentation.KubeconfigStatus:
    """``{% with status=state|kubeconfig_status %}``: the kubeconfig card's first line."""
    return presentation.kubeconfig_status(state.cluster, deleted=state.is_deleted)


@register.filter
def opens_group(open_action: str | None, group: str) -> bool:
    """Whether the action a person is at (``scale-md0``, ``edit-md0``...) is one of ``group``'s,
    so that its section stays open."""
    return open_action in {f"scale-{group}", f"edit-{group}", f"remove-{group}"}


@register.filter
def duration(seconds: int | None) -> str:
    return presentation.duration_words(seconds)


@register.filter
def label(obj: Any, name: str) -> str:
    """The display label of ``obj``'s choice field ``name`` in the active language (Django's
    ``get_<name>_display`` rebuilds every choice's label on each call)."""
    return _label(obj._meta.label, name, getattr(obj, name), get_language())


@functools.lru_cache(maxsize=4096)
def _label(model: str, name: str, value: Any, language: str | None) -> str:
    choices = dict(apps.get_model(model)._meta.get_field(name).flatchoices)
    return str(choices.get(value, value))


@register.simple_tag
def timeline_entry(event: ClusterEvent) -> SafeString:
    """One timeline entry, rendered once per process and language (``live.event_html``)."""
    return live.event_html(event)


@register.filter
def iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


@register.filter
def ago_seconds(value: datetime | None) -> int | None:
    if value is None:
        return None
    return max(0, int((timezone.now() - value).total_seconds()))


@register.simple_tag
def cluster_summary(tenant: Any) -> dict[str, Any]:
    """Counts for the clusters card of the tenant home page."""

    return tenant_summary(tenant)


@register.filter
def instance_label(name: str) -> str:
    """``u1.medium · 1 vCPU · 4 GiB``; custom sizes and unknown types as they are."""
    if not name:

        return gettext("custom size")
    known = catalog.describe_instance_type(name)
    return known.label if known else name


@register.filter
def pool_size(pool: Any) -> str:
    """A ``KubernetesNodes`` pool's node size: its instance type, a custom size, or "not known
    yet" while the platform's object has not been read."""
    if not getattr(pool, "spec_seen", False):
        return gettext("not known yet")
    if pool.instance_type:
        return instance_label(pool.instance_type)
    return gettext("custom size: %(cpu)s CPU, %(memory)s") % {"cpu": pool.cpu or "?",
                                                             "memory": pool.memory or "?"}


@register.filter
def cost_of(costs: dict[Any, Any] | None, item: Any) -> Any:
    """``costs[item.pk]``: None when it has none (not priced)."""
    return (costs or {}).get(getattr(item, "pk", None))


@register.filter
def gpu_label(name: str) -> str:
    known = catalog.describe_gpu(name)
    return known.label if known else name


@register.filter
def replaces_nodes(changes: Any) -> bool:
    return any(getattr(c, "replaces_nodes", False) for c in changes or ())


@register.filter
def ago(value: datetime | None) -> str:
    """``12 s ago``, ``3 min 5 s ago``: precise enough for a page that changes by the second."""

    seconds = ago_seconds(value)
    if seconds is None:
        return ""
    if seconds < 5:
        return gettext("just now")
    return gettext("%(duration)s ago") % {"duration": presentation.duration_words(seconds)}



@register.filter
def signed(value: Any) -> str:
    """``+12.50`` / ``-3.00`` / ``0.00``: a change of cost reads as a change."""
    text = f"{value:.2f}" if value is not None else ""
    return f"+{text}" if value and value > 0 else text
