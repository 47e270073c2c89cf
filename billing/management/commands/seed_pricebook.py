"""``manage.py seed_pricebook``: add the EXAMPLE price book and the Swiss VAT rates.

Safe to repeat: only missing SKUs, prices and rates are added; nothing existing changes (the
migration already ran it once; run it again after adding instance types to the catalogue).
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand
from django.db import transaction

from billing.models import Price, Sku, VatRate
from billing.seed import EXAMPLE_BOOK, seed


class Command(BaseCommand):
    help = "Add the example price book and Swiss VAT rates (only what is missing)."

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            counts = seed(Sku, Price, VatRate)
        self.stdout.write(f"{EXAMPLE_BOOK}: {counts['skus']} SKUs, {counts['prices']} prices, "
                          f"{counts['vat_rates']} VAT rates added.")
