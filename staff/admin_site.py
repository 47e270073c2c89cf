"""The staff admin: only staff whose session passed their second factor may enter
(``portal.mfa``), and every change made in it leaves an audit entry (``AuditedAdminMixin``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.exceptions import NotRegistered
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.forms import ModelChoiceField, ModelMultipleChoiceField
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _

from portal.audit import actor_from_request, record
from portal.mfa import Standing, is_trusted_staff, refuse, staff_standing
from portal.models import AuditEntry, Tenant

if TYPE_CHECKING:
    from django.forms import BaseForm


# --------------------------------------------------------------------------- the audit trail

#: Credentials: their values never enter the log, only the fact that they changed (user
#: passwords, invitation token hashes, the MFA secrets allauth keeps in ``Authenticator.data``).
SECRET_FIELDS = frozenset({"password", "password1", "password2", "token_hash", "secret",
                           "data"})
HIDDEN = "[hidden]"


def audit_value(value: Any) -> Any:
    """A JSON-friendly, short rendering of a field value for the audit log."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        # Without the database's padding (0.420000), but money keeps its cents (500.00).
        value = value.normalize()
        if value.as_tuple().exponent > -2:
            value = value.quantize(Decimal("0.01"))
        return f"{value:f}"
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, dict):
        return {str(k): audit_value(v) for k, v in value.items()}
    if isinstance(value, models.QuerySet | list | tuple | set | frozenset):
        items = list(value)
        if any(isinstance(item, models.Model) for item in items) or isinstance(
                value, set | frozenset):
            return sorted(str(item) for item in items)
        return [audit_value(item) for item in items]
    return str(value)


def _initial(form: BaseForm, name: str) -> Any:
    if name not in form.fields:
        return form.initial.get(name)
    # BoundField.initial drops the microseconds a widget cannot show, like changed_data does.
    value = form[name].initial
    field = form.fields[name]
    if isinstance(field, ModelChoiceField) and not isinstance(field, ModelMultipleChoiceField) \
            and value not in field.empty_values and not isinstance(value, models.Model):
        try:
            value = field.to_python(value)
        except ValidationError:
            pass
    return value


def form_changes(form: BaseForm, *, created: bool = False,
                 secret: frozenset[str] = SECRET_FIELDS) -> dict[str, list[Any]]:
    """{field: [before, after]} for what a staff member changed in an admin form; ``before`` is
    None for a new object, secret values show as ``[hidden]``."""
    changes: dict[str, list[Any]] = {}
    for name in form.changed_data:
        before = None if created else audit_value(_initial(form, name))
        after = audit_value(form.cleaned_data.get(name))
        if name in secret:
            before, after = (None if created else HIDDEN), HIDDEN
        changes[name] = [before, after]
    return changes


def object_values(obj: models.Model, *, secret: frozenset[str] = SECRET_FIELDS
                  ) -> dict[str, Any]:
    """The non-empty field values of ``obj``, for the entry that records its deletion."""
    values: dict[str, Any] = {}
    for field in obj._meta.concrete_fields:
        if field.primary_key:
            continue
        value = (getattr(obj, field.name, None) if field.is_relation
                 else field.value_from_object(obj))
        if value in (None, "", [], {}):
            continue
        values[field.name] = HIDDEN if field.name in secret else audit_value(value)
    return values


def _audited_objects(request: HttpRequest) -> set[tuple[str, Any]]:
    return request.__dict__.setdefault("_admin_audited", set())


def _key(obj: models.Model) -> tuple[str, Any]:
    return obj._meta.label_lower, obj.pk


def _changed_labels(message: Any) -> list[str]:
    """Field labels from the admin's own change message (a list of {"changed": ...})."""
    labels: list[str] = []
    for part in message if isinstance(message, list) else []:
        if isinstance(part, dict):
            labels += part.get("changed", {}).get("fields", [])
    return sorted(str(label) for label in labels)


class ReadOnlyAdminMixin:
    """Staff read these rows here; they change only through the portal's own actions."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def refusal_text(exc: Exception) -> str:
    """What an action's refusal says to staff, in words."""
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc) or str(_("Not allowed."))


class AuditedAdminMixin:
    """Every change a staff member makes through this admin leaves one audit entry per object:
    who (with their IP address), the verb, the tenant concerned and a before/after summary of
    what changed.

    Covers the add and change pages, the editable columns of a list, inline rows (recorded as
    the inline model's own admin would record them), deletions one by one or from the list
    and, with ``audit_actions``, list actions. Writes that go through a ``do_*`` action already
    record their own entry: switch the generic one off with ``audit_verbs = {"create": None}``
    or ``audit_actions = False``.
    """

    #: Verbs other than ``<model name>.<event>`` for "create", "update" and "delete"; None: no
    #: entry (an action records it).
    audit_verbs: dict[str, str | None] = {}
    #: Record each list action (other than deletion) as ``<model name>.<action name>``.
    audit_actions: bool = True
    audit_secret_fields: frozenset[str] = SECRET_FIELDS

    if TYPE_CHECKING:
        model: type[models.Model]
        admin_site: admin.AdminSite

    def run_each(self, request: HttpRequest, objects: Iterable[Any],
                 run: Callable[[Any], Any]) -> int:
        """An action over several objects: ``run(obj)`` for each. A refusal is reported beside
        its object and does not stop the others; returns how many went through."""
        done = 0
        for obj in objects:
            try:
                run(obj)
            except (ValidationError, PermissionDenied) as exc:
                self.message_user(request, f"{obj}: {refusal_text(exc)}",  # type: ignore[attr-defined]  # a mixin of ModelAdmin
                                  messages.ERROR)
            else:
                done += 1
        return done

    def audit_verb(self, event: str) -> str | None:
        if event in self.audit_verbs:
            return self.audit_verbs[event]
        return f"{self.model._meta.model_name}.{event}"

    def audit_tenant(self, obj: models.Model) -> Tenant | None:
        if isinstance(obj, Tenant):
            return obj
        tenant = getattr(obj, "tenant", None)
        return tenant if isinstance(tenant, Tenant) else None

    def audit_changes(self, obj: models.Model, event: str, changes: dict[str, list[Any]]
                      ) -> dict[str, list[Any]]:
        """A hook to add what identifies the object in the summary."""
        return changes

    def audit_record(self, request: HttpRequest, event: str, obj: models.Model,
                     changes: dict[str, list[Any]]) -> None:
        _audited_objects(request).add(_key(obj))
        verb = self.audit_verb(event)
        if verb is None:
            return
        record(actor_from_request(request, via=AuditEntry.Via.ADMIN), verb, obj,
               tenant=self.audit_tenant(obj), changes=self.audit_changes(obj, event, changes))

    def _admin_for(self, model: type[models.Model]) -> Any:
        try:
            owner = self.admin_site.get_model_admin(model)
        except NotRegistered:
            return self
        return owner if isinstance(owner, AuditedAdminMixin) else self

    # -- the add and change pages, and the editable columns of a list ------------------------

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        # After the many-to-many rows and inlines are saved, so the entry names the final state.
        with transaction.atomic():
            super().save_related(request, form, formsets, change)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases
            changes = form_changes(form, created=not change, secret=self.audit_secret_fields)
            if changes or not change:
                self.audit_record(request, "update" if change else "create", form.instance,
                                  changes)
            else:
                _audited_objects(request).add(_key(form.instance))

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        owner = self._admin_for(formset.model)
        with transaction.atomic():
            for gone in formset.deleted_forms:
                if gone.instance.pk is not None:
                    owner.audit_record(request, "delete", gone.instance, {
                        k: [v, None] for k, v in object_values(
                            gone.instance, secret=owner.audit_secret_fields).items()})
            new = {id(f) for f in formset.forms if f.instance.pk is None}
            super().save_formset(request, form, formset, change)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases
            for inline in formset.forms:
                if inline in formset.deleted_forms or inline.instance.pk is None \
                        or not inline.has_changed():
                    continue
                created = id(inline) in new
                owner.audit_record(request, "create" if created else "update", inline.instance,
                                   form_changes(inline, created=created,
                                                secret=owner.audit_secret_fields))

    # -- deletions ----------------------------------------------------------------------------

    def _record_deletion(self, request: HttpRequest, obj: models.Model) -> None:
        self.audit_record(request, "delete", obj, {
            k: [v, None] for k, v in object_values(obj, secret=self.audit_secret_fields).items()})

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        with transaction.atomic():
            self._record_deletion(request, obj)
            super().delete_model(request, obj)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases

    def delete_queryset(self, request: HttpRequest, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                self._record_deletion(request, obj)
            super().delete_queryset(request, queryset)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases

    # -- list actions -------------------------------------------------------------------------

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases
        if not self.audit_actions:
            return actions
        # Deletions are recorded object by object by delete_queryset.
        return {key: (func if name == "delete_selected" else self._audited_action(func, name),
                      name, description)
                for key, (func, name, description) in actions.items()}

    def _audited_action(self, func: Any, name: str) -> Any:
        def run(modeladmin: Any, request: HttpRequest, queryset: Any) -> Any:
            objects = list(queryset)
            with transaction.atomic():
                response = func(modeladmin, request, queryset)
                for obj in objects:
                    self.audit_record(request, name, obj, {})
            return response

        run.__name__ = getattr(func, "__name__", name)
        return run

    # -- anything else the admin logs (e.g. a user's password set by staff) -------------------

    def _fallback(self, request: HttpRequest, event: str, obj: models.Model,
                  message: Any) -> None:
        if _key(obj) in _audited_objects(request):
            return
        labels = _changed_labels(message)
        self.audit_record(request, event, obj, {"fields": [None, labels]} if labels else {})

    def log_addition(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        self._fallback(request, "create", obj, message)
        return super().log_addition(request, obj, message)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases

    def log_change(self, request: HttpRequest, obj: models.Model, message: Any) -> Any:
        self._fallback(request, "update", obj, message)
        return super().log_change(request, obj, message)  # type: ignore[misc]  # a mixin: ModelAdmin follows it in each admin's bases


def audited(admin_class: type[admin.ModelAdmin]) -> type[admin.ModelAdmin]:
    """``admin_class`` with the audit trail, for admins that come with installed apps."""
    if issubclass(admin_class, AuditedAdminMixin):
        return admin_class
    return type(admin_class.__name__, (AuditedAdminMixin, admin_class),
                {"__module__": admin_class.__module__, "__doc__": admin_class.__doc__})


# --------------------------------------------------------------------------- the site


class PortalAdminSite(admin.AdminSite):
    site_header = _("Portal administration")
    site_title = _("Portal admin")
    index_title = _("Operations")

    def register(self, model_or_iterable: Any, admin_class: Any = None, **options: Any) -> None:
        """Every model admin, the portal's own and those of installed apps, is audited."""
        super().register(model_or_iterable, audited(admin_class or admin.ModelAdmin),
                         **options)

    def has_permission(self, request: HttpRequest) -> bool:
        return is_trusted_staff(request.user, request.session)

    def password_change(  # type: ignore[override]  # a redirect, not the admin's page
            self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """One password page for everyone: the portal's own, which records the change."""
        return redirect("account_change_password")

    def login(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        """Sign-in goes through the portal's own login (with its MFA step), never a side door."""
        user = request.user
        next_url = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()},
                                               require_https=request.is_secure()):
            next_url = reverse("admin:index")
        if user.is_authenticated:
            standing = staff_standing(user, request.session)
            if standing is Standing.TRUSTED:
                return redirect(next_url)
            if standing is not Standing.NOT_STAFF:
                return refuse(request, standing)
            # Signed in but not staff: sending them to the login page would loop back here.
            raise PermissionDenied
        return redirect(reverse("account_login") + "?" + urlencode({"next": next_url}))
