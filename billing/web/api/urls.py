"""Mounted under ``/api/v1/tenants/<slug:tenant_slug>/`` by ``portal.api.urls``."""

from __future__ import annotations

from django.urls import path

from billing.web.api import views

invoice = "invoices/<apiid:invoice_id>/"

urlpatterns = [
    path("usage/", views.UsageView.as_view(), name="usage"),
    path("usage/segments/", views.SegmentListView.as_view(), name="usage_segments"),
    path("invoices/", views.InvoiceListView.as_view(), name="invoices"),
    path("invoices/draft/", views.InvoiceDraftView.as_view(), name="invoice_draft"),
    path(invoice, views.InvoiceDetailView.as_view(), name="invoice"),
    path(invoice + "pdf/", views.InvoicePdfView.as_view(), name="invoice_pdf"),
    path(invoice + "csv/", views.InvoiceCsvView.as_view(), name="invoice_csv"),
]
