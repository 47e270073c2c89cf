"""Usage (aggregated and raw), invoices (JSON, PDF, CSV) and cost estimates over the API.

Reads go through ``billing.queries`` and ``billing.invoicing`` (the same figures as the usage
page and the invoices); estimates through ``billing.pricing.estimate_spec``.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.http import HttpResponse
from django.utils import timezone
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from billing import exports, invoicing, queries
from billing.models import CURRENCY, Invoice
from billing.periods import Period
from billing.pricing import estimate_spec
from billing.web.api import serializers as s
from clusters.platform_release import shown_dialect
from clusters.web.api.serializers import addon_specs, control_plane_spec, group_spec
from clusters.web.api.views import CREATE_EXAMPLE
from cozystack import catalog
from cozystack.specs import ClusterSpec
from portal.api.base import ApiView
from portal.api.problems import ApiProblem, field_error
from portal.api.renderers import CsvFileRenderer, PdfFileRenderer
from portal.permissions import Perm

TAG = "Billing"


def _period(view: ApiView, request: Request) -> Period:
    data = view.parse(s.MonthQuerySerializer, data=request.query_params)
    current = Period.current(timezone.now())
    if "month" not in data:
        return current
    period = Period.parse(data["month"])
    if period is None or period > current:
        message = _("Use a month such as 2026-03, no later than this month.")
        raise ApiProblem("invalid-request", message,
                         errors=[field_error(["month"], message, "invalid", frozenset())])
    return period


def _period_data(period: Period, as_of: Any) -> dict[str, Any]:
    return {"month": period.key, "start": period.start_at, "end": period.end_at,
            "as_of": as_of}


class UsageView(ApiView):
    perms = {"GET": Perm.COSTS_VIEW}

    @extend_schema(
        operation_id="usage_retrieve", tags=[TAG], summary="Usage and cost of a month",
        parameters=[s.MonthQuerySerializer], responses=s.UsageSummarySerializer,
        description="The month's usage aggregated by cluster and SKU, with hours and cost (the "
                    "same figures as the draft invoice; CHF before VAT). The raw segments are "
                    "at `usage/segments/`.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        period = _period(self, request)
        summary = queries.usage_summary(self.tenant_ctx.tenant, period)
        by_cluster = []
        by_sku: dict[str, dict[str, Any]] = {}
        for usage in summary.clusters:
            lines = []
            for row in usage.rows:
                lines.append({"sku": row.sku, "description": row.description, "unit": row.unit,
                              "unit_hours": row.hours, "amount": row.amount,
                              "unit_price_per_hour": row.unit_prices[-1]
                              if row.priced and row.unit_prices else None})
                total = by_sku.setdefault(row.sku, {
                    "sku": row.sku, "description": row.description, "unit": row.unit,
                    "unit_hours": Decimal(0), "amount": Decimal("0.00")})
                total["unit_hours"] += row.hours
                total["amount"] += row.amount
            by_cluster.append({"cluster": usage.cluster_name, "deleted": usage.deleted,
                               "amount": usage.amount, "lines": lines})
        data = {"period": _period_data(period, summary.as_of), "currency": CURRENCY,
                "total": summary.total, "has_unpriced": summary.has_unpriced,
                "by_cluster": by_cluster,
                "by_sku": sorted(by_sku.values(), key=lambda r: (-r["amount"], r["sku"]))}
        return Response(s.UsageSummarySerializer(data).data)


class SegmentListView(ApiView):
    perms = {"GET": Perm.COSTS_VIEW}
    cursor_ordering = ("start", "id")

    @extend_schema(
        operation_id="usage_segments_list", tags=[TAG], summary="Raw usage segments",
        parameters=[s.SegmentQuerySerializer], responses=s.SegmentSerializer(many=True),
        description="The ledger itself: `quantity` units of `sku` used from `start` to `end` "
                    "(null while running), for segments overlapping the month, oldest first.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        filters = self.parse(s.SegmentQuerySerializer, data=request.query_params)
        period = _period(self, request)
        segments = queries.segments_for_export(self.tenant_ctx.tenant, period)
        if "cluster" in filters:
            segments = segments.filter(cluster__name=filters["cluster"])
        return self.page(segments, s.SegmentSerializer)


def _draft_of(invoice: Invoice) -> invoicing.InvoiceDraft:
    if invoice.is_draft:
        return invoicing.compute_invoice(invoice.tenant_id, Period(invoice.period_start))
    return invoicing.stored_draft(invoice)


def _with_draft_totals(invoice: Invoice, draft: invoicing.InvoiceDraft) -> Invoice:
    if invoice.is_draft:  # a draft's figures are the ledger's now (not saved)
        invoice.subtotal, invoice.vat_rate = draft.subtotal, draft.vat_rate
        invoice.vat_amount, invoice.total = draft.vat_amount, draft.total
        invoice.has_unpriced = draft.has_unpriced
    return invoice


class InvoiceListView(ApiView):
    perms = {"GET": Perm.INVOICES_VIEW}
    cursor_ordering = ("-period_start", "-id")

    @extend_schema(
        operation_id="invoices_list", tags=[TAG], summary="List invoices",
        responses=s.InvoiceSerializer(many=True),
        description="Stored invoices and credit notes, newest month first. Drafts show their "
                    "stored figures; read one for its live figures, or `invoices/draft/` for "
                    "this month's live draft.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        return self.page(queries.invoices_for(self.tenant_ctx.tenant), s.InvoiceSerializer)


class InvoiceDraftView(ApiView):
    perms = {"GET": Perm.INVOICES_VIEW}

    @extend_schema(
        operation_id="invoices_draft", tags=[TAG], summary="The live draft of a month",
        parameters=[s.MonthQuerySerializer], responses=s.DraftInvoiceSerializer,
        description="What the month's invoice says if it were issued now, from the ledger.")
    def get(self, request: Request, tenant_slug: str) -> Response:
        period = _period(self, request)
        draft = invoicing.compute_invoice(self.tenant_ctx.tenant.pk, period)
        data = {"month": period.key, "as_of": draft.as_of, "currency": CURRENCY,
                "subtotal": draft.subtotal, "vat_rate": draft.vat_rate,
                "vat_amount": draft.vat_amount, "total": draft.total,
                "has_unpriced": draft.has_unpriced,
                "lines": [{"cluster_name": line.cluster_name, "sku": line.sku,
                           "description": line.description, "unit": line.unit,
                           "unit_hours": line.hours, "unit_price": line.unit_price,
                           "amount": line.amount} for line in draft.lines]}
        return Response(s.DraftInvoiceSerializer(data).data)


class _InvoiceView(ApiView):
    perms = {"GET": Perm.INVOICES_VIEW}

    def invoice(self, invoice_id: int) -> tuple[Invoice, invoicing.InvoiceDraft]:
        invoice = queries.access_invoice(self.tenant_ctx.tenant, invoice_id)
        draft = _draft_of(invoice)
        return _with_draft_totals(invoice, draft), draft


class InvoiceDetailView(_InvoiceView):
    @extend_schema(operation_id="invoices_retrieve", tags=[TAG], summary="Read an invoice",
                   responses=s.InvoiceDetailSerializer,
                   description="The invoice with its lines (per cluster and SKU).")
    def get(self, request: Request, tenant_slug: str, invoice_id: int) -> Response:
        invoice, draft = self.invoice(invoice_id)
        context = {**self.serializer_context(), "draft": draft}
        return Response(s.InvoiceDetailSerializer(invoice, context=context).data)


class InvoicePdfView(_InvoiceView):
    renderer_classes = [JSONRenderer, PdfFileRenderer]

    @extend_schema(operation_id="invoices_pdf", tags=[TAG], summary="Invoice as PDF",
                   responses={(200, "application/pdf"): OpenApiResponse(
                       OpenApiTypes.BINARY, description="The invoice document.")})
    def get(self, request: Request, tenant_slug: str, invoice_id: int) -> HttpResponse:
        invoice, draft = self.invoice(invoice_id)
        response = HttpResponse(exports.invoice_pdf(invoice, draft),
                                content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.invoice_filename(invoice, "pdf")}"')
        return response


class InvoiceCsvView(_InvoiceView):
    renderer_classes = [JSONRenderer, CsvFileRenderer]

    @extend_schema(operation_id="invoices_csv", tags=[TAG], summary="Invoice as CSV",
                   responses={(200, "text/csv"): OpenApiResponse(
                       OpenApiTypes.STR, description="One row per line, then the totals.")})
    def get(self, request: Request, tenant_slug: str, invoice_id: int) -> HttpResponse:
        invoice, draft = self.invoice(invoice_id)
        response = HttpResponse(exports.invoice_csv(invoice, draft),
                                content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="{exports.invoice_filename(invoice, "csv")}"')
        return response


class EstimateView(ApiView):
    read_only_methods = frozenset({"POST"})
    idempotent_writes = False  # computes, stores nothing: a retry is harmless
    problem_statuses = {"POST": (422,)}

    @extend_schema(
        operation_id="estimate_create", tags=[TAG], summary="Estimate a cluster's cost",
        request=s.EstimateRequestSerializer, responses={200: s.EstimateSerializer},
        examples=[OpenApiExample("a cluster", value=CREATE_EXAMPLE, request_only=True)],
        description="The monthly cost (730 hours, CHF before VAT) of a cluster spec with every "
                    "node group at its minimum and at its maximum, and the lines that make it "
                    "up, at today's prices. Nothing is created; read-only tokens may call it.")
    def post(self, request: Request) -> Response:
        data = self.parse(s.EstimateRequestSerializer)
        spec = ClusterSpec(
            name=data.get("name") or "estimate", namespace="",
            version=data.get("version") or shown_dialect().catalogue.default_version().name,
            storage_class=data.get("storage_class") or catalog.DEFAULT_STORAGE_CLASS,
            control_plane=control_plane_spec(data.get("control_plane")),
            node_groups=tuple(group_spec(g, path=f"node_groups[{i}].")
                              for i, g in enumerate(data["node_groups"])),
            addons=addon_specs(data.get("addons") or {}))
        return Response(s.EstimateSerializer(_estimate_data(estimate_spec(spec))).data)


def _estimate_data(estimate: Any) -> dict[str, Any]:
    return {"currency": estimate.currency, "hours_per_month": estimate.hours,
            "monthly_min": estimate.monthly_min, "monthly_max": estimate.monthly_max,
            "vat_included": False, "unpriced_skus": estimate.unpriced,
            "lines": [{"sku": line.sku, "description": line.description, "unit": line.unit,
                       "quantity_min": line.quantity_min, "quantity_max": line.quantity_max,
                       "unit_price_per_hour": line.unit_price, "monthly_min": line.amount_min,
                       "monthly_max": line.amount_max} for line in estimate.lines]}

