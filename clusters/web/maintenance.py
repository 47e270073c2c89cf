"""The maintenance panel of the cluster page, its forms, and the tenant's default window.

The panel shows the announcement of a scheduled automatic upgrade (when it runs, what will
roll, "upgrade now" and "postpone once"), the shared "what happens next" list (every planner's
``lifecycle.upcoming`` for the cluster), and the window and upgrade policy with their form.
The same template serves the page load (``maintenance_tags.maintenance_panel``) and the htmx
answers of the views below.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from django import forms
from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from clusters import actions, lifecycle, maintenance
from clusters.models import (
    WEEKDAY_CHOICES,
    WINDOW_MAX_MINUTES,
    WINDOW_MIN_MINUTES,
    Cluster,
    UpgradePolicy,
)
from portal.audit import actor_from_request
from portal.htmx import htmx_partial
from portal.permissions import Perm
from portal.tenancy import TenantContext, tenant_view

PANEL = "clusters/detail/_maintenance.html"
DEFAULT_PAGE = "clusters/maintenance_default.html"
# Beyond the week of notice an announced upgrade waits at most.
HORIZON_DAYS = 14


class MaintenanceForm(forms.Form):
    weekdays = forms.TypedMultipleChoiceField(
        label=gettext_lazy("Weekdays"), choices=WEEKDAY_CHOICES, coerce=int,
        widget=forms.CheckboxSelectMultiple)
    start_time = forms.TimeField(label=gettext_lazy("Start time"),
                                 widget=forms.TimeInput(attrs={"type": "time"}))
    duration_minutes = forms.IntegerField(
        label=gettext_lazy("Duration (minutes)"), min_value=WINDOW_MIN_MINUTES,
        max_value=WINDOW_MAX_MINUTES, help_text=gettext_lazy("At least 60 minutes."))
    time_zone = forms.CharField(label=gettext_lazy("Time zone"), max_length=64,
                                help_text=gettext_lazy("An IANA time zone, such as "
                                                       "Europe/Zurich."))
    upgrade_policy = forms.ChoiceField(label=gettext_lazy("Upgrade policy"),
                                       choices=UpgradePolicy.choices)

    def window(self) -> maintenance.Window | None:
        """The window, or None with every error beside its field."""
        if not self.is_valid():
            return None
        data = self.cleaned_data
        try:
            return maintenance.check_window(data["weekdays"], data["start_time"],
                                            data["duration_minutes"], data["time_zone"])
        except ValidationError as error:
            for field, messages_ in error.message_dict.items():
                for message in messages_:
                    self.add_error(field if field in self.fields else None, message)
            return None


def initial_of(setting: maintenance.Setting) -> dict[str, Any]:
    window = setting.window
    return {"weekdays": list(window.weekdays), "start_time": window.start,
            "duration_minutes": window.minutes, "time_zone": window.zone,
            "upgrade_policy": setting.policy}


def _local(at: datetime, zone: str) -> str:
    """``at`` on the window's wall clock (the page shows the window's own time zone)."""
    return at.astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


SOURCES = {"cluster": gettext_lazy("set for this cluster"),
           "tenant": gettext_lazy("the tenant's default"),
           "platform": gettext_lazy("the platform's default")}


def panel_context(ctx: TenantContext, cluster: Cluster, *, form: MaintenanceForm | None = None,
                  error: str = "", done: str = "") -> dict[str, Any]:
    """What the panel shows of ``cluster`` now (the template reads it as ``maintenance``)."""
    setting = maintenance.setting_of(cluster)
    zone = setting.window.zone
    now = timezone.now()
    upgrade = maintenance.scheduled_for(cluster)
    notice = None
    if upgrade is not None:
        start = upgrade.operation.not_before or upgrade.window_start
        notice = {
            "upgrade": upgrade, "starts_at": _local(start, zone),
            "ends_at": _local(upgrade.window_end, zone),
            "rolls": maintenance.what_rolls(cluster, upgrade.to_version,
                                                upgrade.from_version),
            "postponed": upgrade.postponed_at is not None,
            "postpone_to": [] if upgrade.postponed_at is not None else
            [(s.isoformat(), _local(s, zone))
             for s, _e in maintenance.postpone_choices(upgrade, setting.window)]}
    upcoming = [{"at": _local(item.at, zone), "kind": item.kind, "summary": item.summary,
                 "reason": item.reason}
                for item in lifecycle.upcoming([cluster.pk], now,
                                               now + timedelta(days=HORIZON_DAYS))]
    opening = maintenance.next_window(setting.window, now)
    return {
        "horizon_days": HORIZON_DAYS, "setting": setting, "zone": zone,
        "window_text": setting.window.describe(),
        "policy_label": UpgradePolicy(setting.policy).label,
        "source_label": SOURCES[setting.source],
        "next_opening": _local(opening[0], zone) if opening else "",
        "notice": notice, "upcoming": upcoming, "paused": lifecycle.paused(),
        "can_change": ctx.can(Perm.CLUSTERS_CHANGE),
        "form": form or MaintenanceForm(initial=initial_of(setting), prefix="maintenance"),
        "error": error, "done": done,
    }


def _render(request: HttpRequest, ctx: TenantContext, cluster: Cluster, *, status: int = 200,
            **panel: Any) -> HttpResponse:
    return render(request, PANEL, {"cluster": cluster, "tenant_slug": ctx.tenant.slug,
                                   "maintenance": panel_context(ctx, cluster, **panel)},
                  status=status)


def _answer(request: HttpRequest, ctx: TenantContext, cluster: Cluster, *, done: str = "",
            form: MaintenanceForm | None = None, error: str = "") -> HttpResponse:
    if form is not None or error:
        if htmx_partial(request):
            return _render(request, ctx, cluster, status=422, form=form, error=error)
        messages.error(request, error or _("Check the maintenance window."))
        return redirect("clusters:detail", tenant_slug=ctx.tenant.slug,
                        cluster_name=cluster.name)
    if htmx_partial(request):
        return _render(request, ctx, cluster, done=done)
    messages.success(request, done)
    return redirect("clusters:detail", tenant_slug=ctx.tenant.slug, cluster_name=cluster.name)


def _refusal(error: ValidationError | PermissionDenied) -> str:
    if isinstance(error, PermissionDenied):
        return str(error) or _("Your role does not allow this.")
    return " ".join(error.messages)


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_maintenance(request: HttpRequest, ctx: TenantContext, cluster_name: str
                        ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    form = MaintenanceForm(request.POST, prefix="maintenance")
    window = form.window()
    if window is None:
        return _answer(request, ctx, cluster, form=form)
    try:
        maintenance.do_set_maintenance(actor_from_request(request), ctx, cluster_name, window,
                                       form.cleaned_data["upgrade_policy"])
    except (ValidationError, PermissionDenied) as error:
        return _answer(request, ctx, cluster, error=_refusal(error))
    return _answer(request, ctx, cluster, done=_("Maintenance window saved."))


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_postpone(request: HttpRequest, ctx: TenantContext, cluster_name: str
                     ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    raw = request.POST.get("to", "")[:64]
    to = None
    if raw:
        try:
            to = datetime.fromisoformat(raw)
        except ValueError:
            return _answer(request, ctx, cluster, error=_("Choose one of the dates offered."))
        if to.tzinfo is None:
            return _answer(request, ctx, cluster, error=_("Choose one of the dates offered."))
    try:
        upgrade = maintenance.do_postpone_upgrade(actor_from_request(request), ctx,
                                                  cluster_name, to)
    except (ValidationError, PermissionDenied) as error:
        return _answer(request, ctx, cluster, error=_refusal(error))
    zone = maintenance.setting_of(cluster).window.zone
    return _answer(request, ctx, cluster, done=_("Upgrade postponed to %(when)s.") % {
        "when": maintenance.local_text(upgrade.window_start, zone)})


@tenant_view(Perm.CLUSTERS_CHANGE, methods=("POST",))
def cluster_upgrade_now(request: HttpRequest, ctx: TenantContext, cluster_name: str
                        ) -> HttpResponse:
    cluster = actions.access_cluster(ctx, cluster_name)
    try:
        operation = maintenance.do_upgrade_now(actor_from_request(request), ctx, cluster_name)
    except (ValidationError, PermissionDenied) as error:
        return _answer(request, ctx, cluster, error=_refusal(error))
    done = _("Upgrade to %(v)s requested.") % {"v": operation.params.get("version", "")}
    if htmx_partial(request):
        response = HttpResponse(status=204)
        response["HX-Refresh"] = "true"
        return response
    messages.success(request, done)
    return redirect("clusters:detail", tenant_slug=ctx.tenant.slug, cluster_name=cluster.name)


@tenant_view(Perm.CLUSTERS_VIEW, methods=("GET", "HEAD", "POST"))
def maintenance_default(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The tenant's default window and policy for new clusters (owners and admins set it)."""
    row = maintenance.tenant_default(ctx.tenant.pk)
    setting = (maintenance.Setting(maintenance.window_of(row), row.upgrade_policy, "tenant")
               if row is not None else maintenance.Setting(
                   maintenance.platform_default(), UpgradePolicy.MANUAL, "platform"))
    form = MaintenanceForm(initial=initial_of(setting), prefix="maintenance")
    can_manage = ctx.can(Perm.TENANT_MANAGE)
    context = {"tenant_slug": ctx.tenant.slug, "maintenance_form": form, "setting": setting,
               "window_text": setting.window.describe(), "can_manage": can_manage}
    if request.method == "POST":
        if not can_manage:
            raise PermissionDenied(_("Your role does not allow this."))
        form = MaintenanceForm(request.POST, prefix="maintenance")
        window = form.window()
        context["maintenance_form"] = form
        if window is None:
            return render(request, DEFAULT_PAGE, context, status=422)
        maintenance.do_set_tenant_default(actor_from_request(request), ctx, window,
                                          form.cleaned_data["upgrade_policy"])
        messages.success(request, _("Default maintenance window saved."))
        return redirect("clusters:maintenance_default", tenant_slug=ctx.tenant.slug)
    return render(request, DEFAULT_PAGE, context)
