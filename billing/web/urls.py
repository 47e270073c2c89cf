from __future__ import annotations

from django.urls import path

from billing.web import views

app_name = "billing"
urlpatterns = [
    path("", views.usage, name="usage"),
    path("usage.csv", views.usage_csv, name="usage_csv"),
    path("budget/", views.budget, name="budget"),
    path("budget/remove/", views.budget_remove, name="budget_remove"),
    path("invoices/", views.invoices, name="invoices"),
    path("invoices/draft/", views.invoice_draft, name="invoice_draft"),
    path("invoices/<int:invoice_id>/", views.invoice_detail, name="invoice_detail"),
    path("invoices/<int:invoice_id>/pdf/", views.invoice_pdf, name="invoice_pdf"),
    path("invoices/<int:invoice_id>/csv/", views.invoice_csv, name="invoice_csv"),
]
