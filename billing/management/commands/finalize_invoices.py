"""``manage.py finalize_invoices``: what the beat task does, on demand. Safe to repeat."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from billing.actions import finalize_due_invoices


class Command(BaseCommand):
    help = "Finalize the invoices of months over for longer than the grace period."

    def handle(self, *args: Any, **options: Any) -> None:
        counts = finalize_due_invoices()
        self.stdout.write(f"{counts['finalized']} finalized, {counts['failed']} failed.")
