"""The one permission table: which tenant role may do what.

Views, API endpoints, consumers and actions all ask ``role_has(role, perm)``; the members page
renders ``PERMISSION_TABLE`` so people can read the same rules the code enforces.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import models
from django.utils.translation import gettext_lazy as _


class Role(models.TextChoices):
    OWNER = "owner", _("Owner")
    ADMIN = "admin", _("Admin")
    MEMBER = "member", _("Member")
    VIEWER = "viewer", _("Viewer")
    BILLING = "billing", _("Billing")


ROLE_DESCRIPTIONS = {
    Role.OWNER: _("Full control, including ownership transfer. A tenant always has an owner."),
    Role.ADMIN: _("Manages members, clusters and billing settings; cannot transfer ownership."),
    Role.MEMBER: _("Creates, scales and updates clusters; downloads admin kubeconfigs."),
    Role.VIEWER: _("Reads clusters and costs; changes nothing."),
    Role.BILLING: _("Sees usage, invoices and budgets; no cluster pages."),
}


class Perm:
    TENANT_VIEW = "tenant.view"
    TENANT_MANAGE = "tenant.manage"
    MEMBERS_VIEW = "members.view"
    MEMBERS_MANAGE = "members.manage"
    OWNERSHIP_TRANSFER = "ownership.transfer"
    AUDIT_VIEW = "audit.view"
    CLUSTERS_VIEW = "clusters.view"
    CLUSTERS_CHANGE = "clusters.change"
    CLUSTERS_DELETE = "clusters.delete"
    KUBECONFIG_ADMIN = "kubeconfig.admin"
    KUBECONFIG_SUPER_ADMIN = "kubeconfig.super_admin"
    COSTS_VIEW = "costs.view"
    INVOICES_VIEW = "invoices.view"
    BUDGETS_MANAGE = "budgets.manage"
    WEBHOOKS_VIEW = "webhooks.view"
    WEBHOOKS_MANAGE = "webhooks.manage"


@dataclass(frozen=True)
class PermissionRow:
    perm: str
    label: object
    roles: frozenset[str]


_ALL = frozenset(Role.values)
_STAFF_OF_TENANT = frozenset({Role.OWNER, Role.ADMIN})
_BUILDERS = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER})
_CLUSTER_READERS = frozenset({Role.OWNER, Role.ADMIN, Role.MEMBER, Role.VIEWER})

PERMISSION_TABLE: tuple[PermissionRow, ...] = (
    PermissionRow(Perm.TENANT_VIEW, _("See the tenant and its home page"), _ALL),
    PermissionRow(Perm.TENANT_MANAGE, _("Rename the tenant"), _STAFF_OF_TENANT),
    PermissionRow(Perm.MEMBERS_VIEW, _("See members and their roles"), _ALL),
    PermissionRow(Perm.MEMBERS_MANAGE, _("Invite, remove and change members"), _STAFF_OF_TENANT),
    PermissionRow(Perm.OWNERSHIP_TRANSFER, _("Transfer ownership"), frozenset({Role.OWNER})),
    PermissionRow(Perm.AUDIT_VIEW, _("Read the audit log"), _STAFF_OF_TENANT),
    PermissionRow(Perm.CLUSTERS_VIEW, _("See clusters, their status and timeline"),
                  _CLUSTER_READERS),
    PermissionRow(Perm.CLUSTERS_CHANGE, _("Create, scale, upgrade and configure clusters"),
                  _BUILDERS),
    PermissionRow(Perm.CLUSTERS_DELETE, _("Delete clusters"), _STAFF_OF_TENANT),
    PermissionRow(Perm.KUBECONFIG_ADMIN, _("Download the admin kubeconfig"), _BUILDERS),
    PermissionRow(Perm.KUBECONFIG_SUPER_ADMIN,
                  _("Download the break-glass super-admin kubeconfig"), _STAFF_OF_TENANT),
    PermissionRow(Perm.COSTS_VIEW, _("See costs and usage"), _ALL),
    PermissionRow(Perm.INVOICES_VIEW, _("See and download invoices"),
                  frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    PermissionRow(Perm.BUDGETS_MANAGE, _("Set budgets and alert thresholds"),
                  frozenset({Role.OWNER, Role.ADMIN, Role.BILLING})),
    PermissionRow(Perm.WEBHOOKS_VIEW, _("See webhooks and their deliveries"), _STAFF_OF_TENANT),
    PermissionRow(Perm.WEBHOOKS_MANAGE,
                  _("Add, change and remove webhooks; rotate their secrets"), _STAFF_OF_TENANT),
)

_BY_PERM = {row.perm: row.roles for row in PERMISSION_TABLE}

# Permissions that change state: refused for a suspended tenant and for read-only sessions
# (staff impersonation), whatever the role says.
WRITE_PERMS = frozenset({
    Perm.TENANT_MANAGE, Perm.MEMBERS_MANAGE, Perm.OWNERSHIP_TRANSFER, Perm.CLUSTERS_CHANGE,
    Perm.CLUSTERS_DELETE, Perm.BUDGETS_MANAGE, Perm.WEBHOOKS_MANAGE,
})


# Permissions that hand out credentials: refused in read-only sessions whatever the role says.
CREDENTIAL_PERMS = frozenset({Perm.KUBECONFIG_ADMIN, Perm.KUBECONFIG_SUPER_ADMIN})


def role_has(role: str | None, perm: str) -> bool:
    if role is None:
        return False
    try:
        return role in _BY_PERM[perm]
    except KeyError:
        raise ValueError(f"unknown permission {perm!r}") from None


def perms_for(role: str | None) -> frozenset[str]:
    return frozenset(p for p, roles in _BY_PERM.items() if role in roles)


# Which roles an inviter of a given role may hand out: nobody creates someone above themselves.
def assignable_roles(actor_role: str) -> list[str]:
    if actor_role == Role.OWNER:
        return list(Role.values)
    if actor_role == Role.ADMIN:
        return [Role.ADMIN, Role.MEMBER, Role.VIEWER, Role.BILLING]
    return []
