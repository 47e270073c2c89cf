"""Usage, invoices and estimates in the API's words. Money is a decimal string in CHF."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from billing.models import Invoice, UsageSegment
from clusters.web.api.serializers import ClusterSpecInputSerializer, NodeGroupInputSerializer


def money(help_text: Any, **kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=16, decimal_places=2, coerce_to_string=True,
                                    help_text=help_text, **kwargs)


def amount(help_text: Any, places: int = 4, **kwargs: Any) -> serializers.DecimalField:
    return serializers.DecimalField(max_digits=24, decimal_places=places, coerce_to_string=True,
                                    help_text=help_text, **kwargs)


class PeriodSerializer(serializers.Serializer):
    month = serializers.CharField(help_text=_("The calendar month (UTC), `YYYY-MM`."))
    start = serializers.DateTimeField(help_text=_("First instant of the month."))
    end = serializers.DateTimeField(help_text=_("First instant of the next month (excluded)."))
    as_of = serializers.DateTimeField(help_text=_("Usage counted up to this instant."))


class MonthQuerySerializer(serializers.Serializer):
    month = serializers.RegexField(
        r"^\d{4}-\d{2}$", max_length=7, required=False,
        help_text=_("`YYYY-MM` (UTC); default: this month."))


class SegmentQuerySerializer(MonthQuerySerializer):
    cluster = serializers.CharField(max_length=42, required=False,
                                    help_text=_("Only this cluster's segments."))


class UsageLineSerializer(serializers.Serializer):
    sku = serializers.CharField(help_text=_("What was used: the price book's code."))
    description = serializers.CharField(help_text=_("The SKU, in words."))
    unit = serializers.CharField(help_text=_("What one unit is (node, GPU, GiB…)."))
    unit_hours = amount(_("Units × hours used in the period."))
    unit_price_per_hour = amount(_("CHF per unit and hour; null when not priced (billed 0)."),
                                 places=6, allow_null=True)
    amount = money(_("CHF, before VAT."))


class ClusterUsageSerializer(serializers.Serializer):
    cluster = serializers.CharField(help_text=_("The cluster's name."))
    deleted = serializers.BooleanField(help_text=_("The cluster has been deleted since."))
    amount = money(_("The cluster's cost in the period, CHF before VAT."))
    lines = UsageLineSerializer(many=True, help_text=_("One line per SKU."))


class SkuUsageSerializer(serializers.Serializer):
    sku = serializers.CharField(help_text=_("The price book's code."))
    description = serializers.CharField(help_text=_("The SKU, in words."))
    unit = serializers.CharField(help_text=_("What one unit is."))
    unit_hours = amount(_("Units × hours over all clusters."))
    amount = money(_("CHF, before VAT."))


class UsageSummarySerializer(serializers.Serializer):
    period = PeriodSerializer(help_text=_("The month and how far usage is counted."))
    currency = serializers.CharField(help_text=_("Always `CHF`."))
    total = money(_("Cost of the period so far, CHF before VAT (the draft invoice's "
                    "subtotal)."))
    has_unpriced = serializers.BooleanField(
        help_text=_("Some usage had no price in the price book (billed 0)."))
    by_cluster = ClusterUsageSerializer(many=True, help_text=_("Per cluster, by name."))
    by_sku = SkuUsageSerializer(many=True,
                                help_text=_("Per SKU over all clusters, costliest first."))


class SegmentSerializer(serializers.ModelSerializer):
    cluster = serializers.SerializerMethodField(help_text=_("The cluster's name."))
    node_group = serializers.SerializerMethodField(help_text=_("The node group's name, if "
                                                               "any."))
    quantity = serializers.DecimalField(max_digits=18, decimal_places=4, coerce_to_string=True,
                                        help_text=_("Units used at once (nodes, GPUs, GiB…)."))
    end = serializers.DateTimeField(allow_null=True, help_text=_("Null while still running."))

    class Meta:
        model = UsageSegment
        fields = ("id", "cluster", "node_group", "sku", "quantity", "start", "end")
        extra_kwargs = {"id": {"help_text": _("The segment's id.")},
                        "sku": {"help_text": _("The price book's code.")},
                        "start": {"help_text": _("When this usage began.")}}

    def get_cluster(self, segment: UsageSegment) -> str:
        return segment.cluster.name

    def get_node_group(self, segment: UsageSegment) -> str | None:
        return segment.node_group.name if segment.node_group is not None else None


class InvoiceLineSerializer(serializers.Serializer):
    cluster = serializers.CharField(source="cluster_name", help_text=_("The cluster's name."))
    sku = serializers.CharField(help_text=_("The price book's code."))
    description = serializers.CharField(help_text=_("The SKU, in words."))
    unit = serializers.CharField(help_text=_("What one unit is."))
    unit_hours = amount(_("Units × hours."))
    unit_price_per_hour = amount(_("CHF per unit and hour; null when not priced."), places=6,
                                 allow_null=True, source="unit_price")
    amount = money(_("CHF, before VAT."))


class InvoiceSerializer(serializers.ModelSerializer):
    url = serializers.SerializerMethodField(help_text=_("This invoice in the API."))
    pdf_url = serializers.SerializerMethodField(help_text=_("The invoice as PDF."))
    csv_url = serializers.SerializerMethodField(help_text=_("The invoice as CSV."))
    month = serializers.SerializerMethodField(help_text=_("The billed month, `YYYY-MM`."))
    number = serializers.CharField(allow_null=True,
                                   help_text=_("Set when finalized; null for a draft."))
    credits = serializers.SerializerMethodField(
        help_text=_("For a credit note: the id of the invoice it cancels."))
    void = serializers.SerializerMethodField(
        help_text=_("A finalized invoice cancelled by a credit note."))
    subtotal = money(_("CHF before VAT (drafts: as of now)."), allow_null=True)
    vat_rate = serializers.DecimalField(max_digits=6, decimal_places=4, coerce_to_string=True,
                                        allow_null=True, help_text=_("E.g. `0.0810`."))
    vat_amount = money(_("CHF."), allow_null=True)
    total = money(_("CHF including VAT."), allow_null=True)

    class Meta:
        model = Invoice
        fields: tuple[str, ...] = (
            "id", "url", "number", "kind", "status", "month", "revision", "credits", "void",
            "reason", "currency", "subtotal", "vat_rate", "vat_amount", "total",
            "has_unpriced", "issued_at", "created_at", "pdf_url", "csv_url")
        extra_kwargs = {
            "id": {"help_text": _("The invoice's id.")},
            "kind": {"help_text": _("`invoice` or `credit_note`.")},
            "status": {"help_text": _("`draft` (figures move with usage) or `finalized` "
                                      "(immutable).")},
            "revision": {"help_text": _("0, then 1, 2… for re-issues of the same month.")},
            "reason": {"help_text": _("For a credit note: why.")},
            "currency": {"help_text": _("Always `CHF`.")},
            "has_unpriced": {"help_text": _("Some usage had no price and was billed 0.")},
            "issued_at": {"help_text": _("When it was finalized.")},
            "created_at": {"help_text": _("When the record was created.")},
        }

    def _url(self, invoice: Invoice, name: str) -> str:
        return self.context["request"].build_absolute_uri(reverse(
            f"api:{name}", kwargs={"tenant_slug": self.context["ctx"].tenant.slug,
                                   "invoice_id": invoice.pk}))

    def get_url(self, invoice: Invoice) -> str:
        return self._url(invoice, "invoice")

    def get_pdf_url(self, invoice: Invoice) -> str:
        return self._url(invoice, "invoice_pdf")

    def get_csv_url(self, invoice: Invoice) -> str:
        return self._url(invoice, "invoice_csv")

    def get_month(self, invoice: Invoice) -> str:
        return f"{invoice.period_start:%Y-%m}"

    def get_credits(self, invoice: Invoice) -> int | None:
        return invoice.credits_id

    def get_void(self, invoice: Invoice) -> bool:
        return any(True for _ in invoice.credit_notes.all()) if invoice.pk else False


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = serializers.SerializerMethodField(help_text=_("Per cluster and SKU."))

    class Meta(InvoiceSerializer.Meta):
        fields = (*InvoiceSerializer.Meta.fields, "lines")

    @extend_schema_field(InvoiceLineSerializer(many=True))
    def get_lines(self, invoice: Invoice) -> list[dict[str, Any]]:
        draft = self.context["draft"]
        rows = [{"cluster_name": line.cluster_name, "sku": line.sku,
                 "description": line.description, "unit": line.unit,
                 "unit_hours": line.hours, "unit_price": line.unit_price,
                 "amount": line.amount} for line in draft.lines]
        return InvoiceLineSerializer(rows, many=True).data  # type: ignore[return-value]  # many=True gives a ListSerializer, whose data is a list; the stubs miss it


class DraftInvoiceSerializer(serializers.Serializer):
    month = serializers.CharField(help_text=_("The month, `YYYY-MM`."))
    as_of = serializers.DateTimeField(help_text=_("Usage counted up to this instant."))
    currency = serializers.CharField(help_text=_("Always `CHF`."))
    subtotal = money(_("CHF before VAT."))
    vat_rate = serializers.DecimalField(max_digits=6, decimal_places=4, coerce_to_string=True,
                                        help_text=_("E.g. `0.0810`."))
    vat_amount = money(_("CHF."))
    total = money(_("CHF including VAT."))
    has_unpriced = serializers.BooleanField(help_text=_("Some usage had no price (billed 0)."))
    lines = InvoiceLineSerializer(many=True, help_text=_("Per cluster and SKU."))


# --------------------------------------------------------------------------- estimate


class EstimateNodeGroupSerializer(NodeGroupInputSerializer):
    """A node group to price (same fields as when creating one)."""


class EstimateRequestSerializer(ClusterSpecInputSerializer):
    """A cluster spec to price: the same fields as a create, the name optional."""

    name = serializers.CharField(max_length=63, required=False,
                                 help_text=_("Optional; not used for pricing."))
    storage_class = serializers.CharField(max_length=32, required=False,
                                          help_text=_("Optional; does not change the price."))
    host = serializers.CharField(max_length=253, required=False, allow_blank=True,
                                 help_text=_("Optional; not used for pricing."))


class EstimateLineSerializer(serializers.Serializer):
    sku = serializers.CharField(help_text=_("The price book's code."))
    description = serializers.CharField(help_text=_("The SKU, in words."))
    unit = serializers.CharField(help_text=_("What one unit is."))
    quantity_min = amount(_("Units used at the minimum node counts."))
    quantity_max = amount(_("Units used at the maximum node counts."))
    unit_price_per_hour = amount(_("CHF per unit and hour; null when not priced."), places=6,
                                 allow_null=True)
    monthly_min = money(_("CHF per month at the minimum."))
    monthly_max = money(_("CHF per month at the maximum."))


class EstimateSerializer(serializers.Serializer):
    currency = serializers.CharField(help_text=_("Always `CHF`."))
    hours_per_month = serializers.IntegerField(help_text=_("Hours in a priced month (730)."))
    monthly_min = money(_("CHF per month with every node group at its minimum, before VAT."))
    monthly_max = money(_("CHF per month with every node group at its maximum, before VAT."))
    vat_included = serializers.BooleanField(help_text=_("Always false: amounts exclude VAT."))
    unpriced_skus = serializers.ListField(
        child=serializers.CharField(),
        help_text=_("Parts the price book has no price for (counted as 0)."))
    lines = EstimateLineSerializer(many=True, help_text=_("Per SKU."))
