"""System checks for the billing settings (``manage.py check``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register


@register()
def check_payment_part(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    """An IBAN for the QR-bill is only useful with a creditor the QR-bill accepts: find out at
    start-up, not when the first invoice is finalized."""
    # The QR-bill and PDF libraries load only when checks run: a process that never makes a
    # payment slip (the watcher, the web processes) does not carry them.
    from qrbill import QRBill  # noqa: PLC0415

    from billing import payment_slip  # noqa: PLC0415

    iban = payment_slip.compact_iban(settings.BILLING_ISSUER_IBAN)
    if not iban:
        return []
    try:
        QRBill(account=iban, creditor=payment_slip.creditor(), amount="1.00",
               reference_number=payment_slip.reference_for("2026-000001", iban))
    except ValueError as exc:
        return [Error(f"The QR-bill payment part cannot be made: {exc}",
                      hint="Check BILLING_ISSUER_IBAN (a Swiss or Liechtenstein IBAN), "
                           "BILLING_ISSUER_NAME and the BILLING_CREDITOR_* address settings.",
                      id="billing.E001")]
    return []
