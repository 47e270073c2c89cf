"""Cluster pages: list, create, detail with its actions, kubeconfig download.

Thin views: access (tenant and role by ``tenant_view``, the cluster by ``access_cluster``) →
form → action → response. Writes only happen in ``clusters.actions``; every action of the
detail page answers its first POST with the consequences and runs on the confirmed one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.utils.translation import gettext as _

from billing.pricing import estimate_change, estimate_spec
from billing.queries import MTD_SNAPSHOT_SECONDS, month_to_date
from clusters import (
    actions,
    cluster_templates,
    deleted,
    expiry,
    features,
    hibernation,
    hibernation_actions,
    offerings,
    plans,
    platform_quota,
    platform_release,
)
from clusters.models import Cluster, Offering
from clusters.quotas import quota_lines
from clusters.web import kubeconfig as kubeconfigs
from clusters.web import live, queries
from clusters.web.forms import (
    AccessForm,
    AddonsForm,
    AutoRepairForm,
    ConfirmForm,
    DeleteForm,
    KubeconfigForm,
    NodeGroupForm,
    ScaleForm,
    SpecForm,
    UpgradeForm,
    addon_errors_field,
    auto_repair_value,
    row_key,
    validation_field_errors,
)
from clusters.web.hibernation_forms import HibernationScheduleForm
from clusters.web.lifecycle_context import create_prefill, expiry_context, prefilled_spec_form
from clusters.web.lifecycle_forms import ExpiryForm
from cozystack.gateway import NotFound, PlatformError
from cozystack.manifests import render_kubernetes, to_yaml
from cozystack.rules import FieldError
from cozystack.specs import ClusterSpec
from cozystack.validation import allowed_versions_from_schema
from portal.audit import actor_from_request
from portal.htmx import htmx_partial, redirect_after_post, render_invalid
from portal.permissions import Perm
from portal.tenancy import TenantContext, tenant_view

LIST = "clusters/list.html"
CREATE = "clusters/create.html"
DETAIL = "clusters/detail.html"


# --------------------------------------------------------------------------- list


def _list_filters(request: HttpRequest) -> tuple[str, str, str]:
    phase = request.GET.get("phase", "")
    phase = phase if phase in Cluster.Phase.values else ""
    return phase, request.GET.get("version", "")[:16], request.GET.get("page", "")[:8]


def _list_context(request: HttpRequest, ctx: TenantContext) -> dict[str, Any]:
    phase, version, page_number = _list_filters(request)
    facets = queries.list_facets(ctx.tenant)
    page, rows = queries.cluster_rows_page(ctx.tenant, phase=phase, version=version,
                                           page=page_number, facets=facets)
    return {"ctx": ctx, "rows": rows, "row_html": live.rows_html(rows, ctx.tenant.slug),
            "page": page, "tenant_slug": ctx.tenant.slug,
            "facets": facets, "phases": Cluster.Phase.choices,
            "filters": {"phase": phase, "version": version},
            "can_change": ctx.can(Perm.CLUSTERS_CHANGE), **_costs_context(ctx)}


def _costs_context(ctx: TenantContext) -> dict[str, Any]:
    """The tenant's month-to-date snapshot, for roles that see costs (every cluster reader)."""
    if not ctx.can(Perm.COSTS_VIEW):
        return {}
    return {"costs": month_to_date(ctx.tenant.pk), "costs_refresh_seconds": MTD_SNAPSHOT_SECONDS}


@tenant_view(Perm.CLUSTERS_VIEW)
def cluster_list(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The list page. What it shows of the tenant (header, filters, rows, costs, pagination) is
    rendered once per change of the tenant's clusters and per view (filters, page, language,
    role), then served from the cache until the next change; open pages follow changes over
    their socket meanwhile. An htmx filter change gets the live region only."""
    phase, version, page = _list_filters(request)
    fragment = "live" if htmx_partial(request) else "page"
    view = [fragment, phase, version, page, ctx.can(Perm.CLUSTERS_CHANGE),
            ctx.can(Perm.COSTS_VIEW), ctx.tenant.name]
    html = live.list_fragment(ctx.tenant.pk, view, lambda: render_to_string(
        f"{LIST}#{fragment}", _list_context(request, ctx), request))
    if fragment == "live":
        return HttpResponse(html)
    # Our own template's output, escaped there.
    return render(request, LIST, {"ctx": ctx, "page_html": mark_safe(html)})  # noqa: S308


@tenant_view(Perm.CLUSTERS_VIEW)
def cluster_list_live(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The list's rows as out-of-band swaps: what pages poll when WebSockets are unavailable."""
    return render(request, f"{LIST}#rows", {**_list_context(request, ctx), "oob": True})


# --------------------------------------------------------------------------- create


def _versions() -> list[str]:
    """What the platform accepts, minus what staff stopped offering."""
    hidden = offerings.hidden_offerings().get(Offering.Kind.VERSION, frozenset())
    release = platform_release.current()
    return [v for v in allowed_versions_from_schema(release.schema, release.shown)
            if v not in hidden]


def _remove_key(request: HttpRequest) -> int | None:
    return row_key(request.POST.get("_remove", ""))


def _rows_changed(request: HttpRequest) -> bool:
    """An add- or remove-row button was pressed (a key naming no row removes nothing)."""
    return bool(request.POST.get("_action")) or "_remove" in request.POST


def _access_members(ctx: TenantContext) -> list[queries.AccessMember] | None:
    """The members to choose single sign-on access from, for owners and admins on a platform
    that offers it (None otherwise: no access section)."""
    if not ctx.can(Perm.MEMBERS_MANAGE) or not features.supports(features.OIDC):
        return None
    return queries.access_members(ctx.tenant)


def _bind_spec_form(request: HttpRequest, ctx: TenantContext) -> SpecForm:
    return SpecForm(request.POST, versions=_versions(),
                    add_row=request.POST.get("_action") == "add_group",
                    remove_row=_remove_key(request), access_members=_access_members(ctx),
                    namespace=ctx.tenant.namespace)


def _create_context(ctx: TenantContext, form: SpecForm, spec: ClusterSpec | None = None,
                    **extra: Any) -> dict[str, Any]:
    spec = spec or form.to_spec(ctx.tenant.namespace)
    limit = expiry.policy_of(ctx.tenant)
    extra.setdefault("expiry_form", ExpiryForm(
        prefix="expiry", limit=limit, optional=limit is None or ctx.can(Perm.MEMBERS_MANAGE)))
    extra.setdefault("expiry_limit", limit)
    release = platform_release.current()
    manifest = render_kubernetes(spec, release.shown, labels=actions.PORTAL_LABELS)
    nodes_min = sum(g.min_replicas for g in spec.node_groups)
    nodes_max = sum(g.max_replicas for g in spec.node_groups)
    return {"ctx": ctx, "form": form, "spec": spec, "manifest": to_yaml(manifest),
            "estimate": estimate_spec(spec), "offers": live.offers(),
            "quota": quota_lines(ctx.tenant, spec), "nodes_min": nodes_min,
            "platform_quota": platform_quota.tenant_platform_quota(ctx.tenant.namespace),
            "platform_warnings": platform_quota.quota_warnings(ctx.tenant.namespace, None, spec),
            "nodes_max": nodes_max, "tenant_slug": ctx.tenant.slug,
            "storage_classes": offerings.offered_storage_classes(
                namespace=ctx.tenant.namespace),
            "release": release, **extra}


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("GET", "HEAD", "POST"))
def cluster_create(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    if request.method != "POST":
        prefill = create_prefill(request, ctx)  # ?template=<id> or ?clone=<name>
        if prefill is None:
            return render(request, CREATE, _create_context(ctx, SpecForm(
                versions=_versions(), access_members=_access_members(ctx),
                namespace=ctx.tenant.namespace)))
        filled, origin, source = prefill
        form = prefilled_spec_form(filled.spec, versions=_versions(),
                                   access_members=_access_members(ctx),
                                   namespace=ctx.tenant.namespace)
        spec = form.to_spec(ctx.tenant.namespace)
        # Judged again against the live platform, as any spec: errors beside their fields.
        form.apply_errors(actions.check_spec(ctx, spec), quiet_required=True)
        return render(request, CREATE, _create_context(ctx, form, spec, prefill_origin=origin,
                                                       prefill_notes=filled.notes,
                                                       prefill_source=source))
    form = _bind_spec_form(request, ctx)
    spec = form.to_spec(ctx.tenant.namespace)
    expiry_form = ExpiryForm(request.POST, prefix="expiry",
                             limit=expiry.policy_of(ctx.tenant))
    if _rows_changed(request):
        # Adding or removing a node-group row without JavaScript: show the form again.
        form.apply_errors(actions.check_spec(ctx, spec), quiet_required=True)
        return render(request, CREATE, _create_context(ctx, form, spec,
                                                       expiry_form=expiry_form))
    expires_at = expiry_form.chosen_expiry() if expiry_form.is_valid() else None
    if expiry_form.errors:
        form.apply_errors(actions.check_spec(ctx, spec))
    elif form.is_valid():
        try:
            cluster = expiry.do_create_cluster(
                actor_from_request(request), ctx, spec, expires_at=expires_at,
                origin=cluster_templates.origin_of(ctx, request.POST.get("prefill_source",
                                                                         "")[:80]))
        except ValidationError as exc:
            if hasattr(exc, "error_dict") and "expires_at" in exc.error_dict:
                expiry_form.place(exc)
            else:
                form.apply_errors(validation_field_errors(exc))
        else:
            messages.success(request, _("Cluster %(name)s requested. This page follows its "
                                        "creation live.") % {"name": cluster.name})
            return redirect_after_post(request, "clusters:detail", tenant_slug=ctx.tenant.slug,
                                       cluster_name=cluster.name)
    else:
        form.apply_errors(actions.check_spec(ctx, spec))
    return render_invalid(request, CREATE, "form", _create_context(
        ctx, form, spec, expiry_form=expiry_form,
        prefill_source=request.POST.get("prefill_source", "")[:80]))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_create_check(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """Validate as you type: every field's errors, the manifest, quota and the submit button,
    as out-of-band swaps. With ``_action``/``_remove`` it also answers the node-group rows."""
    form = _bind_spec_form(request, ctx)
    spec = form.to_spec(ctx.tenant.namespace)
    form.is_valid()
    form.apply_errors(actions.check_spec(ctx, spec), quiet_required=True,
                      trigger=request.POST.get("_field", ""))
    rows_changed = _rows_changed(request)
    region = "rows_response" if rows_changed else "check"
    return render(request, f"{CREATE}#{region}",
                  _create_context(ctx, form, spec, oob=True, skip_rows=rows_changed))


# --------------------------------------------------------------------------- detail


def _detail_context(request: HttpRequest, ctx: TenantContext, state: queries.ClusterState,
                    **extra: Any) -> dict[str, Any]:
    tier = live.tier_of(ctx)
    context = live.region_context(state, tier, bound=extra.pop("bound", None))
    context.update(ctx=ctx, kubeconfig_form=KubeconfigForm(
        allow_super_admin=ctx.can(Perm.KUBECONFIG_SUPER_ADMIN)),
        can_kubeconfig=ctx.can(Perm.KUBECONFIG_ADMIN),
        kubeconfig_file=kubeconfigs.filename(ctx, state.cluster.name, kubeconfigs.Kind.ADMIN),
        sso=_sso_context(request, ctx, state.cluster), **_costs_context(ctx))
    context.update(expiry_context(ctx, state.cluster))  # issue 16, part C
    context.update(extra)
    return context


def _sso_context(request: HttpRequest, ctx: TenantContext, cluster: Cluster) -> dict[str, Any]:
    """What the kubeconfig card says of single sign-on: whether the platform offers it, who
    has access, the caller's own role, and whether admin credentials can be rotated."""
    email = str(getattr(request.user, "email", "") or "").lower()
    mine = next((u["role"] for u in cluster.oidc_users or ()
                 if str(u.get("email", "")).lower() == email), "")
    return {"offered": features.supports(features.OIDC), "users": cluster.oidc_users or [],
            "my_role": mine, "file": kubeconfigs.oidc_filename(ctx, cluster.name),
            "rotation": features.supports(features.CREDENTIAL_ROTATION)}


@tenant_view(Perm.CLUSTERS_VIEW)
def cluster_detail(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """The cluster's page; for a name whose cluster was deleted lately, that cluster's
    read-only page (why it went, its timeline, its last cost)."""
    try:
        cluster = actions.access_cluster(ctx, cluster_name)
    except Http404:
        gone = deleted.latest_deleted_named(ctx, cluster_name)
        if gone is None:
            raise
        return redirect("clusters:deleted_detail", tenant_slug=ctx.tenant.slug,
                        deleted_id=gone.pk)
    state = queries.cluster_state(cluster)
    return render(request, DETAIL, _detail_context(request, ctx, state))


@tenant_view(Perm.CLUSTERS_VIEW)
def cluster_detail_live(request: HttpRequest, ctx: TenantContext,
                        cluster_name: str) -> HttpResponse:
    """Every live region of the detail page: the polling fallback and reconnect catch-up."""
    state = queries.cluster_state(actions.access_cluster(ctx, cluster_name))
    return HttpResponse(live.render_detail(state, live.tier_of(ctx)))


# --------------------------------------------------------------------------- actions

_GROUP_FIELD_ALIASES = {"roles": "ingress",
                        "gpus": "gpu_model"}


def _place_errors(form: Any, errors: list[FieldError]) -> None:
    """A rule's message beside the action form's field it is about, else above the form."""
    for error in errors:
        field_for = getattr(form, "field_for_error", None)
        own = field_for(error.field) if field_for is not None else None
        if own:
            form.add_error(own, error.message)
            continue
        name = error.field.rsplit(".", 1)[-1] if "." in error.field else error.field
        name = _GROUP_FIELD_ALIASES.get(name, name)
        if error.field.startswith("addons"):
            name = addon_errors_field(error.field) or ""
        if name in form.fields and name != "confirm":
            form.add_error(name, error.message)
        else:
            form.add_error(None, error.message)


def _respond_with_actions(request: HttpRequest, ctx: TenantContext, cluster: Cluster, *,
                          status: int = 200, **extra: Any) -> HttpResponse:
    state = queries.cluster_state(cluster)
    context = _detail_context(request, ctx, state, **extra)
    if htmx_partial(request):
        return render(request, f"{DETAIL}#action_response", context, status=status)
    return render(request, DETAIL, context, status=status)


def _done(request: HttpRequest, ctx: TenantContext, cluster: Cluster, message: str
          ) -> HttpResponse:
    if htmx_partial(request):
        return _respond_with_actions(request, ctx, cluster, done=message)
    messages.success(request, message)
    return redirect("clusters:detail", tenant_slug=ctx.tenant.slug, cluster_name=cluster.name)


def _confirm_or_run(request: HttpRequest, ctx: TenantContext, cluster: Cluster, *,
                    action: str, form: Any, planner: plans.Planner, done: str,
                    extra_forms: dict[str, Any] | None = None) -> HttpResponse:
    """First POST: the change plan's consequences in words (nothing changes). Confirmed POST:
    the action applies the same plan."""
    bound = {action: getattr(form, "form", form), **(extra_forms or {})}

    def refused(errors: list[FieldError]) -> HttpResponse:
        _place_errors(form, errors)
        return _respond_with_actions(request, ctx, cluster, status=422, bound=bound,
                                     open_action=action)

    if not form.is_valid():
        return refused([])
    state = queries.cluster_state(cluster)
    try:
        # While the cluster hibernates, a node-group change is planned on what waking restores.
        plan = planner(hibernation.planning_base(cluster, planner,
                                                 cluster.to_spec(state.groups)))
    except plans.NoSuchNodeGroup:
        raise Http404 from None  # the group's name came from the URL
    except ValidationError as exc:
        return refused(validation_field_errors(exc))
    errors = plans.waived_for_hibernation(plan, actions.check_plan(ctx, plan,
                                                                    cluster_id=cluster.pk))
    if errors:
        return refused(errors)
    if not form.cleaned_data.get("confirm"):
        return _respond_with_actions(request, ctx, cluster, bound=bound, open_action=action,
                                     confirming=action,
                                     changes=plan.consequences(
                                         state.node_counts, platform_release.shown_dialect()),
                                     cost=estimate_change(plan.before, plan.after),
                                     platform_warnings=platform_quota.quota_warnings(
                                         ctx.tenant.namespace, plan.before, plan.after,
                                         node_counts=state.node_counts))
    try:
        actions.do_change_cluster(actor_from_request(request), ctx, cluster.name, planner)
    except ValidationError as exc:
        return refused(validation_field_errors(exc))
    except hibernation.ChangeDeferred as deferred:
        return _done(request, ctx, cluster, deferred.deferred.summary)
    return _done(request, ctx, cluster, done)


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def group_scale(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                group_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    action = f"scale-{group_name}"
    form = ScaleForm(request.POST, prefix=action)
    data = form.cleaned_data if form.is_valid() else {}
    return _confirm_or_run(
        request, ctx, cluster, action=action, form=form,
        planner=lambda before: plans.scale_node_group(  # read only once the form is valid
            group_name, min_replicas=data["min_replicas"],
            max_replicas=data["max_replicas"])(before),
        done=_("Scaling of %(group)s to %(min)s–%(max)s nodes requested.")
        % {"group": group_name, "min": data.get("min_replicas"), "max": data.get("max_replicas")})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def group_update(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                 group_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    action = f"edit-{group_name}"
    form = NodeGroupForm(request.POST, prefix=action, namespace=ctx.tenant.namespace)
    form.is_valid()
    group = form.to_spec(name=group_name, keep=cluster.to_spec().group(group_name))
    return _confirm_or_run(
        request, ctx, cluster, action=action, form=_WithConfirm(form, request, action),
        planner=plans.update_node_group(group),
        done=_("Change of node group %(group)s requested.") % {"group": group_name})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def group_add(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = NodeGroupForm(request.POST, prefix="add", namespace=ctx.tenant.namespace)
    form.is_valid()
    group = form.to_spec()
    return _confirm_or_run(
        request, ctx, cluster, action="add", form=_WithConfirm(form, request, "add"),
        planner=plans.add_node_group(group),
        done=_("Node group %(group)s requested.") % {"group": group.name})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def group_remove(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                 group_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    action = f"remove-{group_name}"
    return _confirm_or_run(
        request, ctx, cluster, action=action, form=ConfirmForm(request.POST, prefix=action),
        planner=plans.remove_node_group(group_name),
        done=_("Removal of node group %(group)s requested.") % {"group": group_name})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_upgrade(request: HttpRequest, ctx: TenantContext, cluster_name: str
                    ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = UpgradeForm(request.POST, prefix="upgrade")
    version = request.POST.get("upgrade-version", "")
    return _confirm_or_run(
        request, ctx, cluster, action="upgrade", form=form, planner=plans.upgrade(version),
        done=_("Upgrade to %(v)s requested.") % {"v": version})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_addons(request: HttpRequest, ctx: TenantContext, cluster_name: str
                   ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = AddonsForm(request.POST, prefix="addon")
    valid = form.is_valid()
    addons = form.to_addons() if valid else ()
    return _confirm_or_run(
        request, ctx, cluster, action="addons", form=_WithConfirm(form, request, "addons"),
        planner=plans.set_addons(addons),
        done=_("Add-on change requested."))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_auto_repair(request: HttpRequest, ctx: TenantContext, cluster_name: str
                        ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = AutoRepairForm(request.POST, prefix="repair",
                          groups=cluster.to_spec().node_groups)
    valid = form.is_valid()
    repair = auto_repair_value(form)
    groups = form.to_groups() if valid else {}
    return _confirm_or_run(
        request, ctx, cluster, action="repair", form=form,
        planner=plans.set_auto_repair(repair, groups), done=_("Auto-repair change requested."))


@tenant_view(Perm.MEMBERS_MANAGE, methods=("POST",))
def cluster_access(request: HttpRequest, ctx: TenantContext, cluster_name: str
                   ) -> HttpResponse:
    """Owners and admins choose who gets into the cluster through single sign-on."""
    cluster = actions.access_cluster(ctx, cluster_name)
    form = AccessForm(request.POST, prefix="access", members=queries.access_members(ctx.tenant),
                      granted=cluster.to_spec().oidc_users)
    form.is_valid()
    return _confirm_or_run(
        request, ctx, cluster, action="access", form=form,
        planner=plans.set_oidc_users(form.to_users()), done=_("Access change requested."))


@tenant_view(Perm.CLUSTERS_DELETE, methods=("POST",))
def cluster_delete(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = DeleteForm(request.POST, prefix="delete")
    if form.is_valid():
        try:
            actions.do_delete_cluster(actor_from_request(request), ctx, cluster.name,
                                      confirm=form.cleaned_data["confirm_name"].strip())
        except ValidationError as exc:
            errors = validation_field_errors(exc)
            for error in errors:
                form.add_error("confirm_name" if error.field == "confirm" else None,
                               error.message)
        else:
            return _done(request, ctx, cluster, _(
                "Deletion of %(name)s requested. The platform removes its nodes and volumes; "
                "this page follows it.") % {"name": cluster.name})
    return _respond_with_actions(request, ctx, cluster, status=422, bound={"delete": form},
                                 open_action="delete")


def _operation_action(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                      run: Callable[[Any], Any], done: str) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    try:
        operation = run(actor_from_request(request))
    except ValidationError as exc:
        if htmx_partial(request):
            return _respond_with_actions(request, ctx, cluster, status=422,
                                         operation_error=" ".join(exc.messages))
        for message in exc.messages:
            messages.error(request, message)
        return redirect("clusters:detail", tenant_slug=ctx.tenant.slug, cluster_name=cluster.name)
    if operation.cluster_id != cluster.pk:
        raise Http404
    return _done(request, ctx, cluster, done)


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def operation_retry(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                    operation_id: int) -> HttpResponse:
    _operation_of(ctx, cluster_name, operation_id)
    return _operation_action(
        request, ctx, cluster_name,
        lambda actor: actions.do_retry_operation(actor, ctx, operation_id),
        _("Retry requested."))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def operation_cancel(request: HttpRequest, ctx: TenantContext, cluster_name: str,
                     operation_id: int) -> HttpResponse:
    _operation_of(ctx, cluster_name, operation_id)
    return _operation_action(
        request, ctx, cluster_name,
        lambda actor: actions.do_cancel_operation(actor, ctx, operation_id),
        _("Operation cancelled; its change was undone."))


def _operation_of(ctx: TenantContext, cluster_name: str, operation_id: int) -> None:
    """404 unless the operation belongs to this cluster of this tenant."""
    cluster = actions.access_cluster(ctx, cluster_name)
    if not cluster.operations.filter(pk=operation_id).exists():
        raise Http404


class _WithConfirm:
    """A data form (node group, add-ons) plus the hidden ``confirm`` flag of its action."""

    def __init__(self, form: Any, request: HttpRequest, prefix: str) -> None:
        self.form = form
        self.confirm = ConfirmForm(request.POST, prefix=prefix)
        self.confirm.is_valid()

    def is_valid(self) -> bool:
        return self.form.is_valid()

    @property
    def cleaned_data(self) -> dict[str, Any]:
        return {**self.form.cleaned_data, "confirm": self.confirm.cleaned_data.get("confirm")}

    @property
    def fields(self) -> dict[str, Any]:
        return self.form.fields

    def add_error(self, field: str | None, error: Any) -> None:
        self.form.add_error(field, error)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.form, name)


# --------------------------------------------------------------------------- kubeconfig


@tenant_view(Perm.CLUSTERS_VIEW)
def oidc_kubeconfig(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """The single sign-on kubeconfig (``clusters.web.kubeconfig.download_oidc``): no
    credential in it, so no recent sign-in asked and no audit entry. Where there is no file
    yet, the cluster page says why (a link followed again later simply works)."""
    try:
        return kubeconfigs.download_oidc(ctx, cluster_name)
    except kubeconfigs.OidcKubeconfigUnavailable as exc:
        problem = _("The platform is still preparing the single sign-on kubeconfig; it is "
                    "ready a few minutes after the control plane. Try again shortly.") \
            if exc.preparing else _("Nobody has access to this cluster through single "
                                    "sign-on yet.")
    except PlatformError as exc:
        problem = _("The platform could not be reached to fetch the kubeconfig (%(e)s). Try "
                    "again in a minute.") % {"e": exc.message}
    messages.error(request, problem)
    state = queries.cluster_state(actions.access_cluster(ctx, cluster_name))
    return render(request, DETAIL, _detail_context(request, ctx, state))


@tenant_view(Perm.KUBECONFIG_ADMIN, methods=("POST",))
def kubeconfig(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """The kubeconfig the form asks for (``clusters.web.kubeconfig``). Without a recent
    sign-in, allauth asks for the password, then replays this POST."""
    form = KubeconfigForm(request.POST, allow_super_admin=ctx.can(Perm.KUBECONFIG_SUPER_ADMIN))
    if not form.is_valid():
        raise PermissionDenied(_("Your role does not allow this kubeconfig."))
    try:
        return kubeconfigs.download(request, ctx, cluster_name,
                                    kubeconfigs.Kind(form.cleaned_data["kind"]),
                                    actor=actor_from_request(request))
    except NotFound:
        problem = _("The platform has not issued the kubeconfig yet: it appears once the "
                    "control plane is ready. This page shows when it is available.")
    except PlatformError as exc:
        problem = _("The platform could not be reached to fetch the kubeconfig (%(e)s). Try "
                    "again in a minute.") % {"e": exc.message}
    messages.error(request, problem)
    return redirect("clusters:detail", tenant_slug=ctx.tenant.slug, cluster_name=cluster_name)


# --------------------------------------------------------------------------- part B: hibernation


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_hibernate(request: HttpRequest, ctx: TenantContext, cluster_name: str
                      ) -> HttpResponse:
    """Hibernate now: every node group to 0 nodes (``hibernation_actions.do_hibernate``)."""
    return _operation_action(
        request, ctx, cluster_name,
        lambda actor: hibernation_actions.do_hibernate(actor, ctx, cluster_name),
        _("Hibernation requested: every node group goes to 0 nodes; the control plane keeps "
          "running."))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_wake(request: HttpRequest, ctx: TenantContext, cluster_name: str) -> HttpResponse:
    """Wake now: every node group gets its limits back (``hibernation_actions.do_wake``)."""
    return _operation_action(
        request, ctx, cluster_name,
        lambda actor: hibernation_actions.do_wake(actor, ctx, cluster_name),
        _("Wake requested: every node group gets its limits back."))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_hibernation_schedule(request: HttpRequest, ctx: TenantContext, cluster_name: str
                                 ) -> HttpResponse:
    """Save the hibernation schedule; errors beside their fields (422)."""
    cluster = actions.access_cluster(ctx, cluster_name)
    form = HibernationScheduleForm(request.POST, prefix="hibernation")
    if form.is_valid():
        data = form.cleaned_data
        try:
            hibernation_actions.do_set_schedule(
                actor_from_request(request), ctx, cluster.name, time_zone=data["time_zone"],
                ranges=data["ranges"], preset=data["preset"], enabled=data["enabled"])
        except ValidationError as exc:
            for error in validation_field_errors(exc):
                form.add_error(error.field if error.field in form.fields else None,
                               error.message)
        else:
            return _done(request, ctx, cluster, _("Hibernation schedule saved."))
    return _respond_with_actions(request, ctx, cluster, status=422,
                                 bound={"hibernation": form}, open_action="hibernation")
