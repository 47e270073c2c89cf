"""Staff admin for billing: the price book (add-only for the future), VAT rates, invoices
(read-only, with finalize / void with credit note / resend), budgets and the usage ledger.

Every change made here is audited: invoice actions and new prices by the ``billing.actions``
they call, everything else by ``AuditedAdminMixin`` (staff member, IP, before and after)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.helpers import ActionForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from billing import actions
from billing.models import (
    Budget,
    BudgetAlert,
    Invoice,
    InvoiceDelivery,
    InvoiceLine,
    MeteringRun,
    Price,
    Sku,
    UsageSegment,
    VatRate,
    validate_thresholds,
)
from portal.audit import Actor, actor_from_request
from portal.models import AuditEntry
from staff.admin_site import AuditedAdminMixin, ReadOnlyAdminMixin

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise


def staff_actor(request: HttpRequest) -> Actor:
    return actor_from_request(request, AuditEntry.Via.ADMIN)


class ReadOnlyAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Rows written by metering and billing only; staff read them here."""


# --------------------------------------------------------------------------- price book


class PriceInline(admin.TabularInline):
    model = Price
    extra = 0
    fields = readonly_fields = ("effective_from", "per_hour", "note", "created_by")
    ordering = ["-effective_from"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Sku)
class SkuAdmin(AuditedAdminMixin, admin.ModelAdmin):
    list_display = ["code", "kind", "unit", "description", "price_now"]
    list_filter = ["kind"]
    search_fields = ["code", "description"]
    inlines = [PriceInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return ["code", "created_at"] if obj else ["created_at"]

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("CHF per hour now"))
    def price_now(self, obj: Sku) -> str:
        price = obj.prices.filter(effective_from__lte=timezone.now()).order_by(
            "-effective_from").first()
        return str(price.per_hour) if price else "— (billed 0)"


class PriceForm(forms.ModelForm):
    class Meta:
        model = Price
        fields = ["sku", "per_hour", "effective_from", "note"]
        help_texts = {"effective_from": _("In UTC, in the future: prices in force never change; "
                                          "a new price is a new row.")}

    def clean_effective_from(self) -> Any:
        value = self.cleaned_data["effective_from"]
        if value is not None and value <= timezone.now():
            raise ValidationError(_("A new price must start in the future; past prices never "
                                    "change."))
        return value


@admin.register(Price)
class PriceAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Add-only for the future; a price in force is read-only and cannot be deleted."""

    audit_verbs = {"create": None}  # do_add_price records "price.add"
    form = PriceForm
    list_display = ["sku", "per_hour", "effective_from", "in_force_now", "note"]
    list_filter = ["sku__kind"]
    search_fields = ["sku__code", "note"]
    date_hierarchy = "effective_from"
    autocomplete_fields = ["sku"]

    @admin.display(boolean=True, description=_("in force"))
    def in_force_now(self, obj: Price) -> bool:
        return obj.in_force

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        if obj is not None and obj.in_force:
            return ["sku", "per_hour", "effective_from", "note", "created_by", "created_at"]
        return ["created_by", "created_at"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.in_force:
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None or obj.in_force:
            return False
        return super().has_delete_permission(request, obj)

    def save_model(self, request: HttpRequest, obj: Price, form: Any, change: bool) -> None:
        if not change:
            price = actions.do_add_price(staff_actor(request), sku=obj.sku,
                                         per_hour=obj.per_hour,
                                         effective_from=obj.effective_from, note=obj.note)
            obj.pk = price.pk
            return
        super().save_model(request, obj, form, change)


class VatRateForm(forms.ModelForm):
    class Meta:
        model = VatRate
        fields = ["effective_from", "rate", "note"]

    def clean_effective_from(self) -> Any:
        value = self.cleaned_data["effective_from"]
        if value is not None and value <= timezone.now().date():
            raise ValidationError(_("A new VAT rate must start after today; rates in force "
                                    "never change."))
        return value


@admin.register(VatRate)
class VatRateAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Like prices: a rate in force is read-only, a change is a new rate from a future day."""

    form = VatRateForm
    list_display = ["effective_from", "rate", "note"]

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None and obj.effective_from <= timezone.now().date():
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None or obj.effective_from <= timezone.now().date():
            return False
        return super().has_delete_permission(request, obj)


# --------------------------------------------------------------------------- invoices


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False
    fields = readonly_fields = ("cluster_name", "sku", "unit_seconds", "unit_price", "amount")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class DeliveryInline(admin.TabularInline):
    model = InvoiceDelivery
    extra = 0
    can_delete = False
    fields = readonly_fields = ("sent_at", "recipients", "actor_label")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class InvoiceActionForm(ActionForm):
    reason = forms.CharField(label=_("Reason (to void)"), required=False, max_length=300)


@admin.register(Invoice)
class InvoiceAdmin(ReadOnlyAdminMixin, AuditedAdminMixin, admin.ModelAdmin):
    """Read-only: invoices change only through the actions (finalize, void, resend)."""

    audit_actions = False  # each action's billing.actions function records it
    list_display = ["__str__", "kind", "status", "period_start", "total", "has_unpriced",
                    "issued_at"]
    list_filter = ["status", "kind", "has_unpriced", "period_start"]
    search_fields = ["number", "tenant__slug", "tenant_name"]
    inlines = [InvoiceLineInline, DeliveryInline]
    action_form = InvoiceActionForm
    actions = ["finalize_now", "void_with_credit_note", "resend"]

    def _run(self, request: HttpRequest, queryset: QuerySet[Invoice], run: Any,
             done: StrOrPromise) -> None:
        ok = self.run_each(request, queryset.order_by("period_start", "id"), run)
        if ok:
            self.message_user(request, f"{done}: {ok}", messages.SUCCESS)

    @admin.action(description=_("Finalize now (number and send)"))
    def finalize_now(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        actor = staff_actor(request)
        self._run(request, queryset,
                  lambda inv: actions.do_finalize_invoice(actor, inv.pk), _("Finalized"))

    @admin.action(description=_("Void with a credit note (give a reason)"))
    def void_with_credit_note(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        actor = staff_actor(request)
        reason = request.POST.get("reason", "")
        self._run(request, queryset,
                  lambda inv: actions.do_void_invoice(actor, inv.pk, reason=reason),
                  _("Voided"))

    @admin.action(description=_("Send again to billing contacts"))
    def resend(self, request: HttpRequest, queryset: QuerySet[Invoice]) -> None:
        actor = staff_actor(request)
        self._run(request, queryset,
                  lambda inv: actions.do_resend_invoice(actor, inv.pk), _("Sent"))


# --------------------------------------------------------------------------- budgets, ledger


class BudgetForm(forms.ModelForm):
    class Meta:
        model = Budget
        fields = ["tenant", "amount", "thresholds"]

    def clean_thresholds(self) -> list[int]:
        """Sorted and without repeats, as the tenant's budget page stores them."""
        value = self.cleaned_data["thresholds"]
        validate_thresholds(value)
        return actions.normalize_thresholds(value)


@admin.register(Budget)
class BudgetAdmin(AuditedAdminMixin, admin.ModelAdmin):
    """Recorded like the tenant's own budget changes, in the tenant's audit log."""

    audit_verbs = {"create": "budget.set", "update": "budget.set", "delete": "budget.remove"}
    form = BudgetForm
    list_display = ["tenant", "amount", "thresholds", "updated_at"]
    search_fields = ["tenant__slug", "tenant__name"]
    autocomplete_fields = ["tenant"]


@admin.register(BudgetAlert)
class BudgetAlertAdmin(ReadOnlyAdmin):
    list_display = ["tenant", "period_start", "threshold", "spent", "budget_amount", "created_at",
                    "emailed_to"]
    list_filter = ["period_start", "threshold"]
    search_fields = ["tenant__slug"]


@admin.register(UsageSegment)
class UsageSegmentAdmin(ReadOnlyAdmin):
    list_display = ["id", "tenant", "cluster", "node_group", "sku", "quantity", "start", "end"]
    list_filter = [("end", admin.EmptyFieldListFilter), "sku"]
    search_fields = ["tenant__slug", "cluster__name", "sku"]
    date_hierarchy = "start"
    list_select_related = ["tenant", "cluster", "node_group"]
    show_full_result_count = False


@admin.register(MeteringRun)
class MeteringRunAdmin(ReadOnlyAdmin):
    list_display = ["started_at", "trigger", "at", "clusters_closed", "segments_closed",
                    "finished_at"]
