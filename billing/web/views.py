"""Billing pages of a tenant: usage and costs, budget, invoices (HTML, PDF, CSV)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from billing import actions, exports, invoicing, queries
from billing.models import Invoice
from billing.periods import Period
from billing.web import charts
from billing.web.forms import BudgetForm
from portal.audit import actor_from_request
from portal.htmx import redirect_after_post, render_invalid, render_region
from portal.permissions import Perm
from portal.tenancy import TenantContext, tenant_view

MONTHS_OFFERED = 12


def _period(request: HttpRequest, now) -> Period:
    current = Period.current(now)
    period = Period.parse(request.GET.get("month"), current) or current
    return min(period, current)


def _months(now: datetime, tenant_created: date) -> list[Period]:
    """The months a person can pick: this one and the previous ones since the tenant exists."""
    first = Period.of(tenant_created)
    months: list[Period] = []
    period = Period.current(now)
    while len(months) < MONTHS_OFFERED and period >= first:
        months.append(period)
        period = period.previous
    return months or [Period.current(now)]


@tenant_view(Perm.COSTS_VIEW)
def usage(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    now = timezone.now()
    period = _period(request, now)
    summary = queries.usage_summary(ctx.tenant, period, now=now)
    names = {c.cluster_id: c.cluster_name for c in summary.clusters}
    daily = queries.daily_costs(ctx.tenant, period, now=now, names=names)
    budget = queries.budget_of(ctx.tenant)
    current = Period.current(now)
    context = {
        "ctx": ctx,
        "period": period,
        "is_current": period == current,
        "months": _months(now, ctx.tenant.created_at.date()),
        "previous": period.previous if period.previous >= Period.of(ctx.tenant.created_at)
        else None,
        "next": period.next if period < current else None,
        "summary": summary,
        "chart": charts.stacked_daily(daily),
        "daily": daily,
        "budget": budget,
        "month_to_date": queries.tenant_cost_mtd(ctx.tenant, now=now) if period != current
        else summary.total,
        "budget_alerts": list(queries.budget_alerts(ctx.tenant, current)),
        "can_see_clusters": ctx.can(Perm.CLUSTERS_VIEW),
        "can_see_invoices": ctx.can(Perm.INVOICES_VIEW),
        "can_manage_budget": ctx.can(Perm.BUDGETS_MANAGE),
        "hibernation_saved": _hibernation_saved(ctx, period, now, names),
    }
    return render_region(request, "billing/usage.html", "usage", context)


def _hibernation_saved(ctx: TenantContext, period: Period, now: datetime,
                       names: dict[int, str]) -> dict[str, Any] | None:
    """"Saved this month by hibernation": the month's total and each cluster's (None when no
    cluster hibernated in the month)."""
    saved = queries.hibernation_savings_mtd(ctx.tenant, now=min(now, period.end_at))
    if not saved:
        return None
    return {"total": sum(saved.values(), Decimal(0)),
            "clusters": sorted(((names.get(pk, ""), amount) for pk, amount in saved.items()),
                               key=lambda item: item[0])}


@tenant_view(Perm.COSTS_VIEW)
def usage_csv(request: HttpRequest, ctx: TenantContext) -> StreamingHttpResponse:
    period = _period(request, timezone.now())
    segments = queries.segments_for_export(ctx.tenant, period).iterator(chunk_size=2000)
    response = StreamingHttpResponse(exports.segments_csv_rows(segments, period),
                                     content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{ctx.tenant.slug}-usage-{period.key}.csv"')
    return response


def _budget_context(ctx: TenantContext, form: BudgetForm | None = None) -> dict:
    budget = queries.budget_of(ctx.tenant)
    if form is None:
        initial = ({"amount": budget.amount, "thresholds": ", ".join(map(str, budget.thresholds))}
                   if budget else {"thresholds": "50, 80, 100"})
        form = BudgetForm(initial=initial)
    now = timezone.now()
    return {"ctx": ctx, "form": form, "budget": budget,
            "month_to_date": queries.tenant_cost_mtd(ctx.tenant, now=now),
            "budget_alerts": list(queries.budget_alerts(ctx.tenant, Period.current(now)))}


@tenant_view(Perm.BUDGETS_MANAGE, methods=("GET", "HEAD", "POST"))
def budget(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    if request.method != "POST":
        return render(request, "billing/budget.html", _budget_context(ctx))
    form = BudgetForm(request.POST)
    if form.is_valid():
        try:
            actions.do_set_budget(actor_from_request(request), ctx,
                                  amount=form.cleaned_data["amount"],
                                  thresholds=form.cleaned_data["thresholds"])
        except ValidationError as exc:
            for field, errors in exc.message_dict.items():
                form.add_error(field if field in form.fields else None, errors)
        else:
            messages.success(request, _("Budget saved."))
            return redirect_after_post(request, "billing:budget", tenant_slug=ctx.tenant.slug)
    return render_invalid(request, "billing/budget.html", "form", _budget_context(ctx, form))


@tenant_view(Perm.BUDGETS_MANAGE, methods=("POST",))
def budget_remove(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    actions.do_remove_budget(actor_from_request(request), ctx)
    messages.success(request, _("Budget removed: no more alerts."))
    return redirect_after_post(request, "billing:budget", tenant_slug=ctx.tenant.slug)


@tenant_view(Perm.INVOICES_VIEW)
def invoices(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    now = timezone.now()
    current = Period.current(now)
    rows = list(queries.invoices_for(ctx.tenant))
    stored_months = {i.period_start for i in rows if i.kind == Invoice.Kind.INVOICE}
    live = None
    if current.start not in stored_months:
        live = invoicing.compute_invoice(ctx.tenant.pk, current, as_of=now)
    return render(request, "billing/invoices.html",
                  {"ctx": ctx, "invoices": rows, "live": live, "current": current})


def _invoice_page(request: HttpRequest, ctx: TenantContext, invoice: Invoice,
                  draft: invoicing.InvoiceDraft) -> HttpResponse:
    return render(request, "billing/invoice_detail.html", {
        "ctx": ctx, "invoice": invoice, "draft": draft,
        "void_by": next(iter(invoice.credit_notes.all()), None) if invoice.pk else None,
        "subtotal": draft.subtotal if invoice.is_draft else invoice.subtotal,
        "vat_rate": draft.vat_rate if invoice.is_draft else invoice.vat_rate,
        "vat_amount": draft.vat_amount if invoice.is_draft else invoice.vat_amount,
        "total": draft.total if invoice.is_draft else invoice.total,
    })


def _draft_of(invoice: Invoice) -> invoicing.InvoiceDraft:
    if invoice.is_draft:
        return invoicing.compute_invoice(invoice.tenant_id, Period(invoice.period_start))
    return invoicing.stored_draft(invoice)


@tenant_view(Perm.INVOICES_VIEW)
def invoice_draft(request: HttpRequest, ctx: TenantContext) -> HttpResponse:
    """The live draft of a month (default: this one), recomputed from the ledger."""
    now = timezone.now()
    period = _period(request, now)
    invoice = Invoice(tenant=ctx.tenant, period_start=period.start, period_end=period.end,
                      tenant_name=ctx.tenant.name)
    return _invoice_page(request, ctx, invoice,
                         invoicing.compute_invoice(ctx.tenant.pk, period, as_of=now))


@tenant_view(Perm.INVOICES_VIEW)
def invoice_detail(request: HttpRequest, ctx: TenantContext, invoice_id: int) -> HttpResponse:
    invoice = queries.access_invoice(ctx.tenant, invoice_id)
    return _invoice_page(request, ctx, invoice, _draft_of(invoice))


@tenant_view(Perm.INVOICES_VIEW)
def invoice_pdf(request: HttpRequest, ctx: TenantContext, invoice_id: int) -> HttpResponse:
    invoice = queries.access_invoice(ctx.tenant, invoice_id)
    response = HttpResponse(exports.invoice_pdf(invoice, _draft_of(invoice)),
                            content_type="application/pdf")
    response["Content-Disposition"] = (
        f'attachment; filename="{exports.invoice_filename(invoice, "pdf")}"')
    return response


@tenant_view(Perm.INVOICES_VIEW)
def invoice_csv(request: HttpRequest, ctx: TenantContext, invoice_id: int) -> HttpResponse:
    invoice = queries.access_invoice(ctx.tenant, invoice_id)
    response = HttpResponse(exports.invoice_csv(invoice, _draft_of(invoice)),
                            content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (
        f'attachment; filename="{exports.invoice_filename(invoice, "csv")}"')
    return response
