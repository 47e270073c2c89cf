"""Shared pieces of the staff tests (admin, console, impersonation)."""

from __future__ import annotations

import pytest

from portal.models import AuditEntry

# The two personas every staff page must turn away: staff without MFA, a non-staff user (the
# ``refused`` fixture in tests/conftest.py builds them).
REFUSED = pytest.mark.parametrize("refused", ["staff_without_mfa", "non_staff"], indirect=True)


def audit(verb: str) -> list[AuditEntry]:
    """The audit entries with this verb, oldest first."""
    return list(AuditEntry.objects.filter(verb=verb).order_by("at", "id"))
