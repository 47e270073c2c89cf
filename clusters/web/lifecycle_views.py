"""Pages of issue 16, part C: a cluster's expiry, the tenant's expiry policy, cluster templates
(save, list, edit, delete, use) and clones, and deleted clusters (list and read-only page).

Thin views like ``clusters.web.views``: access (``tenant_view`` and the scoped lookups) →
form → action → response; every write is an action of ``clusters.expiry`` or
``clusters.cluster_templates``.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _

from billing.periods import Period
from billing.queries import cluster_cost_in_month
from clusters import actions, cluster_templates, deleted, expiry, offerings
from clusters.models import TEMPLATES_PER_TENANT_MAX, Cluster
from clusters.web import queries
from clusters.web import views as pages
from clusters.web.lifecycle_context import expiry_context
from clusters.web.lifecycle_forms import (
    ExpiryForm,
    ExpiryPolicyForm,
    ExtendForm,
    TemplateForm,
    by_field,
)
from portal.audit import actor_from_request
from portal.htmx import htmx_partial
from portal.permissions import Perm
from portal.tenancy import TenantContext, tenant_view

EXPIRY_CARD = "clusters/detail/_expiry.html"
TEMPLATES = "clusters/templates.html"
TEMPLATE_EDIT = "clusters/template_edit.html"
POLICY = "clusters/expiry_policy.html"
DELETED_LIST = "clusters/deleted_list.html"
DELETED_DETAIL = "clusters/deleted_detail.html"


# --------------------------------------------------------------------------- expiry card


def _card(request: HttpRequest, ctx: TenantContext, cluster: Cluster, *, status: int = 200,
          open_form: str = "", **bound: Any) -> HttpResponse:
    context = {"ctx": ctx, "cluster": cluster, "tenant_slug": ctx.tenant.slug,
               "open_form": open_form, **expiry_context(ctx, cluster, bound=bound)}
    if htmx_partial(request):
        return render(request, EXPIRY_CARD, context, status=status)
    if status == 200 and bound.get("done"):
        messages.success(request, bound["done"])
        return redirect("clusters:detail", tenant_slug=ctx.tenant.slug,
                        cluster_name=cluster.name)
    state = queries.cluster_state(cluster)
    return render(request, pages.DETAIL,
                  {**pages._detail_context(request, ctx, state), **context}, status=status)


def _refused(request: HttpRequest, ctx: TenantContext, cluster: Cluster, form: Any, key: str,
             exc: ValidationError | PermissionDenied) -> HttpResponse:
    if isinstance(exc, PermissionDenied):
        return _card(request, ctx, cluster, status=422, open_form=key, refused=str(exc))
    if hasattr(form, "place"):
        form.place(exc)
    else:
        for field, errors in by_field(exc).items():
            for error in errors:
                form.add_error(field if field in form.fields else None, error)
    return _card(request, ctx, cluster, status=422, open_form=key, **{key: form})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def expiry_set(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = ExpiryForm(request.POST, prefix="expiry", limit=expiry.policy_of(ctx.tenant),
                      optional=False)
    at = form.chosen_expiry() if form.is_valid() else None
    if at is None:
        return _card(request, ctx, cluster, status=422, open_form="expiry", expiry=form)
    try:
        row = expiry.do_set_cluster_expiry(actor_from_request(request), ctx, cluster.name, at)
    except (ValidationError, PermissionDenied) as exc:
        return _refused(request, ctx, cluster, form, "expiry", exc)
    return _card(request, ctx, cluster, done=_("Expiry set: the cluster is deleted on %(at)s.")
                 % {"at": expiry.moment_words(row.expires_at)})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def expiry_extend(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = ExtendForm(request.POST, prefix="extend", limit=expiry.policy_of(ctx.tenant))
    if not form.is_valid():
        return _card(request, ctx, cluster, status=422, open_form="extend", extend=form)
    try:
        row = expiry.do_extend_cluster_expiry(actor_from_request(request), ctx, cluster.name,
                                              form.cleaned_data["hours"])
    except (ValidationError, PermissionDenied) as exc:
        return _refused(request, ctx, cluster, form, "extend", exc)
    return _card(request, ctx, cluster,
                 done=_("Expiry extended: the cluster is deleted on %(at)s.")
                 % {"at": expiry.moment_words(row.expires_at)})


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def expiry_remove(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    removed = expiry.do_remove_cluster_expiry(actor_from_request(request), ctx, cluster.name)
    return _card(request, ctx, cluster, done=_("Expiry removed: the cluster is no longer "
                                               "deleted by itself.") if removed
                 else _("This cluster has no expiry."))


@tenant_view(Perm.TENANT_MANAGE, methods=("GET", "HEAD", "POST"))
def expiry_policy(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The tenant's maximum expiry (owners and admins)."""
    current = expiry.policy_of(ctx.tenant)
    if request.method != "POST":
        form = ExpiryPolicyForm(initial={"max_hours": current})
        return render(request, POLICY, {"ctx": ctx, "form": form, "tenant_slug": ctx.tenant.slug,
                                        "current": current})
    form = ExpiryPolicyForm(request.POST)
    if form.is_valid():
        try:
            expiry.do_set_expiry_policy(actor_from_request(request), ctx,
                                        form.cleaned_data["max_hours"])
        except ValidationError as exc:
            for error in exc.messages:
                form.add_error("max_hours", error)
        else:
            messages.success(request, _("Expiry policy saved."))
            return redirect("clusters:expiry_policy", tenant_slug=ctx.tenant.slug)
    return render(request, POLICY, {"ctx": ctx, "form": form, "tenant_slug": ctx.tenant.slug,
                                    "current": current}, status=422)


# --------------------------------------------------------------------------- templates


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def template_save(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """"Save as template" on the cluster page."""
    cluster = actions.access_cluster(ctx, cluster_name)
    form = TemplateForm(request.POST, prefix="template")
    if not form.is_valid():
        return _card(request, ctx, cluster, status=422, open_form="template", template=form)
    try:
        template = cluster_templates.do_save_template(
            actor_from_request(request), ctx, cluster.name, name=form.cleaned_data["name"],
            description=form.cleaned_data["description"])
    except ValidationError as exc:
        return _refused(request, ctx, cluster, form, "template", exc)
    return _card(request, ctx, cluster, done=_("Saved as the template “%(name)s”.")
                 % {"name": template.name})


@tenant_view(Perm.CLUSTERS_VIEW)
def template_list(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    retired = offerings.end_of_life_versions()
    templates = list(cluster_templates.templates_of(ctx))
    return render(request, TEMPLATES, {
        "ctx": ctx, "tenant_slug": ctx.tenant.slug,
        "templates": [(t, retired.get(str(t.spec.get("version", "")))) for t in templates],
        "can_change": ctx.can(Perm.CLUSTERS_CHANGE), "most": TEMPLATES_PER_TENANT_MAX})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("GET", "HEAD", "POST"))
def template_edit(request: HttpRequest, ctx: TenantContext, template_id: int) -> HttpResponse:
    template = cluster_templates.access_template(ctx, template_id)
    if request.method != "POST":
        form = TemplateForm(initial={"name": template.name, "description": template.description})
    else:
        form = TemplateForm(request.POST)
        if form.is_valid():
            try:
                cluster_templates.do_update_template(
                    actor_from_request(request), ctx, template.pk,
                    name=form.cleaned_data["name"], description=form.cleaned_data["description"])
            except ValidationError as exc:
                for field, errors in exc.message_dict.items():
                    for error in errors:
                        form.add_error(field if field in form.fields else None, error)
            else:
                messages.success(request, _("Template saved."))
                return redirect("clusters:templates", tenant_slug=ctx.tenant.slug)
    return render(request, TEMPLATE_EDIT, {"ctx": ctx, "tenant_slug": ctx.tenant.slug,
                                           "template": template, "form": form},
                  status=422 if form.is_bound else 200)


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def template_delete(request: HttpRequest, ctx: TenantContext, template_id: int) -> HttpResponse:
    template = cluster_templates.access_template(ctx, template_id)
    cluster_templates.do_delete_template(actor_from_request(request), ctx, template.pk)
    messages.success(request, _("Template “%(name)s” deleted.") % {"name": template.name})
    return redirect("clusters:templates", tenant_slug=ctx.tenant.slug)


# --------------------------------------------------------------------------- deleted clusters


@tenant_view(Perm.CLUSTERS_VIEW)
def deleted_list(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The tenant's clusters deleted in the last 90 days, newest first (200 at most)."""
    clusters = list(deleted.deleted_clusters(ctx.tenant)[:200])
    why = deleted.departures(clusters)
    rows = [(c, why[c.pk]) for c in clusters]
    return render(request, DELETED_LIST, {"ctx": ctx, "tenant_slug": ctx.tenant.slug,
                                          "rows": rows, "days": deleted.DELETED_VISIBLE_DAYS})


@tenant_view(Perm.CLUSTERS_VIEW)
def deleted_detail(request: HttpRequest, ctx: TenantContext, deleted_id: int) -> HttpResponse:
    """A deleted cluster, read-only: why it went, its timeline, its cost in its last month.
    No kubeconfig and no action."""
    cluster = deleted.access_deleted_cluster(ctx, deleted_id)
    assert cluster.deleted_at is not None
    period = Period.of(cluster.deleted_at)
    context: dict[str, Any] = {
        "ctx": ctx, "tenant_slug": ctx.tenant.slug, "cluster": cluster,
        "departure": deleted.departure(cluster),
        "events": list(cluster.events.all()[:200]), "period": period,
        "groups": list(cluster.node_groups.order_by("position", "name")),
    }
    if ctx.can(Perm.COSTS_VIEW):
        context["last_month_cost"] = cluster_cost_in_month(ctx.tenant, cluster.pk, period,
                                                           as_of=cluster.deleted_at)
    return render(request, DELETED_DETAIL, context)
