"""The staff admin: tenancy, clusters and billing, registered on the staff site."""

from __future__ import annotations

from staff.admin import billing, branding, clusters, maintenance, tenancy

__all__ = ["billing", "branding", "clusters", "maintenance", "tenancy"]
