"""Staff views of clusters, node groups, operations, the timeline and the offered catalogue.

Rows here are read-only: the engine and the watcher own them, and desired state changes go
through the actions. What staff can do to a cluster (resync it, retry or cancel its current
operation, take over a stuck deletion) are admin actions and buttons that call
``staff.actions``; each leaves an audit entry with the staff member's name.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.timesince import timesince
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext
from django.views.decorators.http import require_POST

from clusters import offerings
from clusters.actions import PORTAL_LABELS
from clusters.models import Cluster, ClusterEvent, NodeGroup, Offering, Operation
from clusters.platform_release import shown_dialect
from cozystack.gateway import PlatformError, get_gateway
from cozystack.manifests import render_kubernetes, to_yaml
from portal.audit import actor_from_request
from portal.forms import declared_field
from portal.models import AuditEntry
from staff import actions as staff_actions
from staff.admin_site import AuditedAdminMixin, ReadOnlyAdminMixin, refusal_text


def staff_actor(request: HttpRequest):
    return actor_from_request(request, via=AuditEntry.Via.ADMIN)


class ReadOnlyAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    # The staff actions call staff.actions, which record each of them.
    audit_actions = False


class OperateMixin:
    """Staff actions on clusters need the change permission on clusters (superusers have it),
    although the rows themselves stay read-only."""

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("clusters.change_cluster")


class NodeGroupInline(admin.TabularInline):
    model = NodeGroup
    extra = 0
    can_delete = False
    fields = readonly_fields = (
        "name", "instance_type", "min_replicas", "max_replicas", "disk_gib", "gpu_model",
        "gpus_per_node", "desired_nodes", "observed_nodes", "ready_nodes", "observed_phase",
        "removed_at")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --------------------------------------------------------------------------- clusters


class NeedsStaffFilter(admin.SimpleListFilter):
    title = gettext_lazy("needs staff")
    parameter_name = "attention"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("deleting", gettext_lazy("Deletion not finished")),
                ("failed", gettext_lazy("Failed")),
                ("manual", gettext_lazy("Marked for manual cleanup"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> QuerySet[Cluster]:
        if self.value() == "deleting":
            return queryset.filter(deleted_at__isnull=True, phase=Cluster.Phase.DELETING)
        if self.value() == "failed":
            return queryset.filter(deleted_at__isnull=True, phase=Cluster.Phase.FAILED)
        if self.value() == "manual":
            return queryset.filter(
                events__reason=staff_actions.MANUAL_CLEANUP_REASON).distinct()
        return queryset


class ClusterActionForm(ActionForm):
    note = forms.CharField(
        label=gettext_lazy("Note (for manual cleanup)"), required=False, max_length=300)


class ManualCleanupForm(forms.Form):
    note = forms.CharField(
        label=gettext_lazy("What is left on the platform, and who cleans it up"),
        max_length=300, widget=forms.TextInput(attrs={"size": 80}))


@admin.register(Cluster)
class ClusterAdmin(OperateMixin, ReadOnlyAdmin):
    list_display = ["name", "tenant", "version", "phase", "platform_ready", "kubeconfig_ready",
                    "last_observed_at", "created_at", "deleted_at"]
    list_filter = [NeedsStaffFilter, "phase", "version",
                   ("tenant", admin.RelatedOnlyFieldListFilter),
                   ("deleted_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "tenant__slug", "tenant__name", "=phase", "=version"]
    search_help_text = gettext_lazy("Cluster name, tenant, phase or version.")
    list_select_related = ["tenant"]
    date_hierarchy = "created_at"
    inlines = [NodeGroupInline]
    action_form = ClusterActionForm
    actions = ["force_resync", "retry_current_operation", "cancel_current_operation",
               "mark_for_manual_cleanup"]
    change_form_template = "admin/clusters/cluster/change_form.html"

    # -- the change page: the manifest and the platform's object side by side ----------------

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        cluster = self.get_object(request, object_id)
        context = dict(extra_context or {})
        if cluster is not None:
            context.update(self.platform_context(request, cluster))
        return super().change_view(request, object_id, form_url, extra_context=context)

    def platform_context(self, request: HttpRequest, cluster: Cluster) -> dict[str, Any]:
        try:
            manifest = to_yaml(render_kubernetes(cluster.to_spec(), shown_dialect(),
                                                 labels=PORTAL_LABELS))
        except Exception as exc:  # a row the renderer refuses is exactly what staff must see
            manifest = _("The manifest cannot be rendered: %(e)s") % {"e": exc}
        context: dict[str, Any] = {
            "manifest_yaml": manifest,
            "observed_requested": bool(request.GET.get("observed")),
            "can_operate": self.has_operate_permission(request),
            "active_operation": staff_actions.active_operation(cluster),
            "last_operation": staff_actions.last_operation(cluster),
            "stuck_deletion": staff_actions.is_stuck_deletion(cluster),
            "cleanup_form": ManualCleanupForm(),
            "staff_urls": {name: reverse(f"admin:clusters_cluster_{name}", args=[cluster.pk])
                           for name in ("resync", "retry", "cancel", "cleanup")},
        }
        if context["observed_requested"]:
            context.update(self.observed_object(cluster))
        return context

    @staticmethod
    def observed_object(cluster: Cluster) -> dict[str, Any]:
        """The platform's object now (one GET), or why it could not be read."""
        try:
            obj = get_gateway().get_cluster(cluster.tenant.namespace, cluster.name)
        except PlatformError as exc:
            return {"observed_error": _("The platform is unreachable: %(e)s")
                    % {"e": exc.message}}
        if obj is None:
            return {"observed_error": _("The platform has no object named %(name)s in "
                                        "%(ns)s.") % {"name": cluster.name,
                                                      "ns": cluster.tenant.namespace}}
        (obj.get("metadata") or {}).pop("managedFields", None)
        return {"observed_yaml": to_yaml(obj), "observed_at": timezone.now()}

    # -- buttons on the change page ----------------------------------------------------------

    def get_urls(self) -> list[Any]:
        def wrap(view: Any) -> Any:
            return self.admin_site.admin_view(require_POST(view))

        return [
            path("<path:object_id>/staff/resync/", wrap(self.resync_view),
                 name="clusters_cluster_resync"),
            path("<path:object_id>/staff/retry/", wrap(self.retry_view),
                 name="clusters_cluster_retry"),
            path("<path:object_id>/staff/cancel/", wrap(self.cancel_view),
                 name="clusters_cluster_cancel"),
            path("<path:object_id>/staff/cleanup/", wrap(self.cleanup_view),
                 name="clusters_cluster_cleanup"),
            *super().get_urls(),
        ]

    def _operate(self, request: HttpRequest, object_id: str, run: Any, done: str
                 ) -> HttpResponse:
        if not self.has_operate_permission(request):
            raise PermissionDenied
        cluster = self.get_object(request, object_id)
        if cluster is None:
            raise Http404
        try:
            run(cluster)
        except (ValidationError, PermissionDenied) as exc:
            self.message_user(request, f"{cluster}: {refusal_text(exc)}", messages.ERROR)
        else:
            self.message_user(request, f"{cluster}: {done}", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:clusters_cluster_change", args=[cluster.pk]))

    def resync_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        actor = staff_actor(request)
        return self._operate(request, object_id,
                             lambda c: staff_actions.do_force_resync(actor, c.pk),
                             _("read again from the platform."))

    def retry_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        actor = staff_actor(request)
        return self._operate(request, object_id,
                             lambda c: staff_actions.do_retry_current_operation(actor, c.pk),
                             _("the last operation runs again."))

    def cancel_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        actor = staff_actor(request)
        return self._operate(request, object_id,
                             lambda c: staff_actions.do_cancel_current_operation(actor, c.pk),
                             _("the operation in progress was cancelled."))

    def cleanup_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        actor = staff_actor(request)
        form = ManualCleanupForm(request.POST)

        def run(cluster: Cluster) -> None:
            if not form.is_valid():
                raise ValidationError(_("Say what is left to clean up and who does it."))
            staff_actions.do_mark_for_manual_cleanup(actor, cluster.pk,
                       note=form.cleaned_data["note"])

        return self._operate(request, object_id, run,
                             _("marked deleted; clean up what is left on the platform."))

    # -- the same, for several clusters from the list ----------------------------------------

    def _run_each(self, request: HttpRequest, queryset: QuerySet[Cluster], run: Any,
                  done: str) -> None:
        ok = self.run_each(request, queryset.select_related("tenant").order_by("pk"), run)
        if ok:
            self.message_user(request, done % {"n": ok}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Resync from the platform now"),
                  permissions=["operate"])
    def force_resync(self, request: HttpRequest, queryset: QuerySet[Cluster]) -> None:
        actor = staff_actor(request)
        self._run_each(request, queryset, lambda c: staff_actions.do_force_resync(actor, c.pk),
                       _("Resynced %(n)s cluster(s)."))

    @admin.action(description=gettext_lazy("Retry the last operation (failed or cancelled)"),
                  permissions=["operate"])
    def retry_current_operation(self, request: HttpRequest,
                                queryset: QuerySet[Cluster]) -> None:
        actor = staff_actor(request)
        self._run_each(request, queryset,
                       lambda c: staff_actions.do_retry_current_operation(actor, c.pk),
                       _("Retried the last operation of %(n)s cluster(s)."))

    @admin.action(description=gettext_lazy("Cancel the operation in progress"),
                  permissions=["operate"])
    def cancel_current_operation(self, request: HttpRequest,
                                 queryset: QuerySet[Cluster]) -> None:
        actor = staff_actor(request)
        self._run_each(request, queryset,
                       lambda c: staff_actions.do_cancel_current_operation(actor, c.pk),
                       _("Cancelled the operation of %(n)s cluster(s)."))

    @admin.action(description=gettext_lazy("Mark a stuck deletion for manual cleanup "
                                            "(give a note)"),
                  permissions=["operate"])
    def mark_for_manual_cleanup(self, request: HttpRequest,
                                queryset: QuerySet[Cluster]) -> None:
        actor = staff_actor(request)
        note = request.POST.get("note", "")
        self._run_each(request, queryset,
                       lambda c: staff_actions.do_mark_for_manual_cleanup(actor, c.pk, note=note),
                       _("Marked %(n)s cluster(s) deleted for manual cleanup."))


# --------------------------------------------------------------------------- node groups


@admin.register(NodeGroup)
class NodeGroupAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "instance_type", "min_replicas", "max_replicas",
                    "observed_nodes", "ready_nodes", "observed_phase", "removed_at"]
    list_filter = ["instance_type", ("removed_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "cluster__name", "cluster__tenant__slug"]
    list_select_related = ["cluster"]


# --------------------------------------------------------------------------- operations


class RunningLongerThanFilter(admin.SimpleListFilter):
    """Queued or running for longer than N minutes: what is stuck."""

    title = gettext_lazy("in progress for longer than")
    parameter_name = "running_longer_than"
    MINUTES = (10, 30, 60, 240)

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(m), ngettext("%(n)s minute", "%(n)s minutes", m) % {"n": m})
                for m in self.MINUTES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Operation]
                 ) -> QuerySet[Operation]:
        value = self.value()
        if not value:
            return queryset
        try:
            minutes = int(value)
        except ValueError:
            return queryset.none()
        return queryset.filter(state__in=Operation.ACTIVE_STATES,
                               created_at__lt=timezone.now() - timedelta(minutes=minutes))


@admin.register(Operation)
class OperationAdmin(OperateMixin, ReadOnlyAdmin):
    list_display = ["id", "cluster", "tenant", "kind", "state", "error_class", "attempts",
                    "created_at", "age", "submitted_at", "finished_at"]
    list_filter = [RunningLongerThanFilter, "state", "error_class", "kind"]
    search_fields = ["cluster__name", "tenant__slug", "error_message"]
    list_select_related = ["cluster", "tenant"]
    date_hierarchy = "created_at"
    readonly_fields = ["desired_manifest"]
    actions = ["retry", "cancel"]

    @admin.display(description=gettext_lazy("age"))
    def age(self, obj: Operation) -> str:
        return timesince(obj.created_at, obj.finished_at or timezone.now())

    @admin.display(description=gettext_lazy("manifest sent (YAML)"))
    def desired_manifest(self, obj: Operation) -> str:
        if not obj.desired_spec:
            return "—"
        return format_html("<pre>{}</pre>", to_yaml(obj.desired_spec))

    def _run_each(self, request: HttpRequest, queryset: QuerySet[Operation], run: Any,
                  done: str) -> None:
        ok = self.run_each(request, queryset.select_related("cluster__tenant").order_by("pk"),
                           lambda operation: run(operation.pk))
        if ok:
            self.message_user(request, done % {"n": ok}, messages.SUCCESS)

    @admin.action(description=gettext_lazy("Retry (as a new operation)"),
                  permissions=["operate"])
    def retry(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        actor = staff_actor(request)
        self._run_each(request, queryset,
                       lambda pk: staff_actions.do_staff_retry_operation(actor, pk),
                       _("Retried %(n)s operation(s)."))

    @admin.action(description=gettext_lazy("Cancel (only before the platform has it)"),
                  permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[Operation]) -> None:
        actor = staff_actor(request)
        self._run_each(request, queryset,
                       lambda pk: staff_actions.do_staff_cancel_operation(actor, pk),
                       _("Cancelled %(n)s operation(s)."))


@admin.register(ClusterEvent)
class ClusterEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "cluster", "tenant", "source", "severity", "reason", "message"]
    list_filter = ["source", "severity"]
    search_fields = ["cluster__name", "tenant__slug", "reason", "message"]
    list_select_related = ["cluster", "tenant"]
    date_hierarchy = "at"


# --------------------------------------------------------------------------- offerings


class OfferingForm(forms.ModelForm):
    name = forms.ChoiceField(label=gettext_lazy("name"))

    class Meta:
        model = Offering
        fields = ["kind", "name", "hidden", "end_of_life_on", "note"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = offerings.catalogue_names()
        kinds = dict(Offering.Kind.choices)
        choices: list[Any] = [("", "---------")]
        choices += [(kinds[kind], items) for kind, items in names.items()]
        current = self.instance.name if self.instance.pk else ""
        if current and not any(current == n for items in names.values() for n, _l in items):
            # No longer in the catalogue: keep it visible rather than silently changing it.
            choices.append((current, _("%(name)s (not in the catalogue)") % {"name": current}))
        declared_field(self, "name", forms.ChoiceField).choices = choices

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind, name = data.get("kind"), data.get("name")
        if kind and name and self.instance.name != name and \
                name not in {n for n, _l in offerings.catalogue_names().get(kind, [])}:
            self.add_error("name", _("%(name)s is not a %(kind)s of the catalogue.")
                           % {"name": name, "kind": Offering.Kind(kind).label.lower()})
        if data.get("end_of_life_on") and kind != Offering.Kind.VERSION:
            self.add_error("end_of_life_on", _("Only Kubernetes versions have an end of life."))
        return data


class OfferingListForm(forms.ModelForm):
    """One row of the list page: only ``hidden`` and ``end_of_life_on`` are editable there."""

    class Meta:
        model = Offering
        fields = ["hidden", "end_of_life_on"]

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if data.get("end_of_life_on") and self.instance.kind != Offering.Kind.VERSION:
            self.add_error("end_of_life_on", _("Only Kubernetes versions have an end of life."))
        return data


class OfferingWrites(admin.ModelAdmin):
    """Every way the admin changes offerings (add, edit, list edit, delete one or a selection)
    goes through the offering actions, which tell pickers and lists once the change commits.
    ``OfferingAdmin`` lists it after ``AuditedAdminMixin``, so the audit trail wraps these."""

    def save_model(self, request: HttpRequest, obj: Offering, form: Any, change: bool) -> None:
        offerings.do_save_offering(obj)

    def delete_model(self, request: HttpRequest, obj: Offering) -> None:
        offerings.do_delete_offerings(Offering.objects.filter(pk=obj.pk))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Offering]) -> None:
        offerings.do_delete_offerings(queryset)


@admin.register(Offering)
class OfferingAdmin(AuditedAdminMixin, OfferingWrites):
    """Hide an instance type, GPU model or version from tenants, or give a version an end of
    life; every change is audited."""

    form = OfferingForm
    list_display = ["name", "kind", "hidden", "end_of_life_on", "in_use", "note"]
    list_display_links = ["name"]
    list_editable = ["hidden", "end_of_life_on"]
    list_filter = ["kind", "hidden", ("end_of_life_on", admin.EmptyFieldListFilter)]
    search_fields = ["name", "note"]
    change_list_template = "admin/clusters/offering/change_list.html"

    @admin.display(description=gettext_lazy("clusters using it"))
    def in_use(self, obj: Offering) -> int:
        live = Cluster.objects.live()
        if obj.kind == Offering.Kind.VERSION:
            return live.filter(version=obj.name).count()
        groups = NodeGroup.objects.filter(removed_at__isnull=True,
                                          cluster__deleted_at__isnull=True)
        if obj.kind == Offering.Kind.INSTANCE_TYPE:
            groups = groups.filter(instance_type=obj.name)
        else:
            groups = groups.filter(gpu_model=obj.name)
        return groups.values("cluster").distinct().count()

    def get_changelist_form(self, request: HttpRequest, **kwargs: Any) -> Any:
        kwargs.setdefault("form", OfferingListForm)
        return super().get_changelist_form(request, **kwargs)

    def get_urls(self) -> list[Any]:
        return [
            path("add-catalogue/",
                 self.admin_site.admin_view(require_POST(self.add_catalogue_view)),
                 name="clusters_offering_add_catalogue"),
            *super().get_urls(),
        ]

    def add_catalogue_view(self, request: HttpRequest) -> HttpResponse:
        """One row per catalogue item (offered, no end of life), to edit them in the list."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        new = offerings.do_add_catalogue(staff_actor(request))
        self.message_user(request, ngettext("Added %(n)s catalogue item.",
                                            "Added %(n)s catalogue items.", len(new))
                          % {"n": len(new)}, messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:clusters_offering_changelist"))
