"""What the pages of issue 16, part C add to the cluster pages of ``clusters.web.views``: the
expiry card's context on the cluster page, and the create form prefilled from a template or a
clone. Kept apart from ``clusters.web.lifecycle_views`` (which uses ``clusters.web.views``) so
that the cluster pages can use it without a cycle."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, QueryDict
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import actions, cluster_templates, expiry
from clusters.models import Cluster, ClusterExpiry
from clusters.web.forms import (
    ROWS_FIELD,
    NodeGroupForm,
    SpecForm,
    addons_initial,
    auto_repair_initial,
    group_initial,
)
from clusters.web.lifecycle_forms import ExpiryForm, ExtendForm, TemplateForm
from cozystack.specs import ClusterSpec
from portal.permissions import Perm
from portal.tenancy import TenantContext

SOON = timedelta(hours=24)


def expiry_context(ctx: TenantContext, cluster: Cluster, *,
                   bound: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the cluster page's expiry card needs (``clusters/detail/_expiry.html``)."""
    bound = bound or {}
    limit = expiry.policy_of(ctx.tenant)
    row = ClusterExpiry.objects.filter(cluster=cluster).first()
    now = timezone.now()
    return {"expiry": row, "expiry_limit": limit,
            "expiry_soon": row is not None and row.expired_at is None
            and row.expires_at - now <= SOON,
            "expiry_form": bound.get("expiry") or ExpiryForm(prefix="expiry", limit=limit,
                                                             optional=False),
            "extend_form": bound.get("extend") or ExtendForm(prefix="extend", limit=limit),
            "expiry_done": bound.get("done", ""), "expiry_refused": bound.get("refused", ""),
            "can_set_expiry": ctx.can(Perm.CLUSTERS_CHANGE)
            and (row is not None or ctx.can(Perm.CLUSTERS_DELETE)),
            "can_remove_expiry": ctx.can(Perm.MEMBERS_MANAGE),
            "can_save_template": ctx.can(Perm.CLUSTERS_CHANGE),
            "template_form": bound.get("template") or TemplateForm(prefix="template")}


def prefilled_spec_form(spec: ClusterSpec, *, versions: list[str],
                        access_members: Any, namespace: str) -> SpecForm:
    """The create form starting from ``spec`` (every field editable), bound as if the person
    had posted it, so that the rules judge it like any posted spec and say what they refuse
    beside its field. The new cluster's name and host stay empty."""
    form = SpecForm(versions=versions, access_members=access_members, namespace=namespace)
    initial = {"version": spec.version, "control_plane_replicas": spec.control_plane.replicas,
               "control_plane_preset": spec.control_plane.api_server_preset,
               "storage_class": spec.storage_class, **auto_repair_initial(spec.auto_repair)}
    for name, value in initial.items():
        if name in form.cluster.fields:
            form.cluster.fields[name].initial = value
    form.rows = [(key, NodeGroupForm(prefix=f"ng-{key}", initial=group_initial(group),
                                     namespace=namespace))
                 for key, group in enumerate(spec.node_groups)] or form.rows
    for name, value in addons_initial(spec.addons).items():
        if name in form.addons.fields:
            form.addons.initial[name] = value
    data = QueryDict(mutable=True)
    data.setlist(ROWS_FIELD, [str(key) for key, _form in form.rows])
    for part in form.forms():
        for field in part:
            value = field.value()
            if isinstance(field.field.widget, forms.CheckboxInput):
                if value:
                    data[field.html_name] = "on"
            elif isinstance(value, (list, tuple)):
                data.setlist(field.html_name, [str(v) for v in value])
            elif value is not None:
                shown = value if isinstance(field.field.widget, forms.Select) else \
                    field.field.widget.format_value(value)
                data[field.html_name] = "" if shown is None else str(shown)
    return SpecForm(data, versions=versions, access_members=access_members,
                    namespace=namespace)


def create_prefill(request: HttpRequest, ctx: TenantContext
                   ) -> tuple[cluster_templates.Prefill, str, str] | None:
    """The spec the create page starts from (``?template=<id>`` or ``?clone=<name>``), with
    what it came from in words and in code (``cluster_templates.origin_of``); None for a blank
    form. Another tenant's template or cluster is 404."""
    raw_template = request.GET.get("template", "")[:12]
    if raw_template:
        if not raw_template.isdigit():
            raise Http404
        template = cluster_templates.access_template(ctx, int(raw_template))
        try:
            filled = cluster_templates.template_prefill(ctx, template)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return None
        return (filled, _("From the template “%(name)s”.") % {"name": template.name},
                f"template:{template.pk}")
    clone = request.GET.get("clone", "")[:64]
    if clone:
        cluster = actions.access_cluster(ctx, clone)
        return (cluster_templates.clone_prefill(ctx, cluster),
                _("A clone of %(name)s: choose a new name.") % {"name": cluster.name},
                f"clone:{cluster.name}")
    return None
