from __future__ import annotations

from django.apps import AppConfig


class BillingWebConfig(AppConfig):
    """The web floor of billing: usage, budget and invoice pages and their API."""

    name = "billing.web"
    label = "billing_web"
    verbose_name = "Billing (web)"
