"""The portal's rules for what a tenant sets beyond the platform's schema: auto-repair values, a
storage class per node group, who gets access through single sign-on, the add-ons that need
another one, and the hosts routed to a cluster.

The platform's schema accepts any string for these, and its admission webhooks or chart refuse
a bad one only later (a health check the platform will not create, a render that fails, a user
who can never sign in). ``check_tenant_settings`` says so before anything is sent, beside the
field, and refuses a setting the live platform does not offer at all (``clusters.features``).
``clusters.actions.check_spec`` runs it after the platform rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.utils.translation import gettext as _

from clusters import features, hosts
from cozystack import catalog
from cozystack.rules import FieldError
from cozystack.specs import ClusterSpec, NodeGroupSpec, OidcUserSpec
from portal.models import Membership, Tenant
from portal.permissions import Perm, Role, role_has

OIDC_ROLES = ("admin", "view")
# Worker VMs move between servers while running, so their disks must be shared (ReadWriteMany,
# replicated); a class that keeps a volume on one server cannot hold them.
NOT_FOR_NODE_DISKS = frozenset({"local"})
_MAX_UNHEALTHY = re.compile(r"^(0|[1-9][0-9]*)(%?)$")
_DURATION = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?(?:h|ms|m|s))+$")
_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s)")
_SECONDS = {"h": Decimal(3600), "m": Decimal(60), "s": Decimal(1), "ms": Decimal("0.001")}
MIN_STARTUP_SECONDS = 30  # the machine health check refuses shorter start-up timeouts


def check_tenant_settings(tenant: Tenant, spec: ClusterSpec,
                          previous: ClusterSpec | None = None,
                          schema: Mapping[str, Any] | None = None, *,
                          storage_classes: Iterable[str] | None = None) -> list[FieldError]:
    """Every refusal of ``spec``'s auto-repair, per-group storage, access, add-on dependencies
    and routed hosts (``previous``: the cluster's spec before an edit; ``storage_classes``: the
    names the platform offers the tenant, else the bundled list)."""
    errors = _check_auto_repair(spec, schema)
    known = set(storage_classes) if storage_classes is not None else \
        {s.name for s in catalog.storage_classes()}
    for index, group in enumerate(spec.node_groups):
        errors += _check_group(index, group, schema, known)
    errors += check_oidc_users(tenant, spec.oidc_users,
                               previous.oidc_users if previous else (), schema)
    errors += _check_addon_dependencies(spec, schema)
    errors += hosts.check_ingress_hosts(tenant, spec.addon(catalog.INGRESS_NGINX).hosts)
    return errors


def _not_offered(field: str, what: str) -> FieldError:
    return FieldError(field, _("This platform does not offer %(what)s.") % {"what": what},
                      "not_supported")


# --------------------------------------------------------------------------- auto-repair


def max_unhealthy_error(value: str) -> str:
    """Why ``value`` is not a number of nodes (``"2"``) or a percentage (``"50%"``)."""
    match = _MAX_UNHEALTHY.match(value)
    if match is None:
        return _("Enter a number of nodes such as “1”, or a percentage such as “50%”.")
    if match.group(2) and int(match.group(1)) > 100:
        return _("A percentage cannot be above 100%.")
    return ""


def startup_timeout_error(value: str) -> str:
    """Why ``value`` is not a duration such as ``10m`` or ``1h30m`` of at least 30 seconds."""
    if not _DURATION.match(value):
        return _("Enter a duration such as “10m”, “90s” or “1h30m”.")
    seconds = sum((Decimal(n) * _SECONDS[unit] for n, unit in _DURATION_PART.findall(value)),
                  Decimal(0))
    if seconds < MIN_STARTUP_SECONDS:
        return _("Allow at least 30 seconds for a node to start.")
    return ""


def _check_auto_repair(spec: ClusterSpec, schema: Mapping[str, Any] | None) -> list[FieldError]:
    repair = spec.auto_repair
    if repair is None:
        return []
    if not features.supports(features.AUTO_REPAIR, schema):
        return [_not_offered("auto_repair", _("node auto-repair"))]
    errors = []
    for name, value, check in (("max_unhealthy", repair.max_unhealthy, max_unhealthy_error),
                               ("node_startup_timeout", repair.node_startup_timeout,
                                startup_timeout_error)):
        message = check(value)
        if message:
            errors.append(FieldError(f"auto_repair.{name}", message, "invalid"))
    return errors


def _check_group(index: int, group: NodeGroupSpec, schema: Mapping[str, Any] | None,
                 storage_classes: set[str]) -> list[FieldError]:
    prefix = f"node_groups[{index}]"
    errors = []
    if group.storage_class:
        if not features.supports(features.PER_GROUP_STORAGE_CLASS, schema):
            errors.append(_not_offered(f"{prefix}.storage_class",
                                       _("a storage class per node group")))
        elif group.storage_class not in storage_classes:
            errors.append(FieldError(f"{prefix}.storage_class", _(
                "There is no storage class “%(name)s”; choose one of the list.")
                % {"name": group.storage_class}, "invalid_choice"))
        elif group.storage_class in NOT_FOR_NODE_DISKS:
            errors.append(FieldError(f"{prefix}.storage_class", _(
                "Nodes move between servers while running, so their disks need a replicated "
                "storage class; “%(name)s” keeps each volume on one server.")
                % {"name": group.storage_class}, "invalid_choice"))
    for name, value, check in (("max_unhealthy", group.max_unhealthy, max_unhealthy_error),
                               ("node_startup_timeout", group.node_startup_timeout,
                                startup_timeout_error)):
        if not value:
            continue
        if not features.supports(features.PER_GROUP_AUTO_REPAIR, schema):
            errors.append(_not_offered(f"{prefix}.{name}",
                                       _("auto-repair settings per node group")))
            continue
        message = check(value)
        if message:
            errors.append(FieldError(f"{prefix}.{name}", message, "invalid"))
    return errors


# --------------------------------------------------------------------------- access


def oidc_roles_for(portal_role: str) -> tuple[str, ...]:
    """The cluster roles a member may be given: what their portal role may do already (a
    viewer only reads; billing people do not see clusters at all)."""
    if role_has(portal_role, Perm.KUBECONFIG_ADMIN):
        return OIDC_ROLES
    if role_has(portal_role, Perm.CLUSTERS_VIEW):
        return ("view",)
    return ()


def member_roles(tenant: Tenant) -> dict[str, str]:
    """Every member's email (lower case) → their portal role."""
    return {email.lower(): role for email, role in
            Membership.objects.filter(tenant=tenant).values_list("user__email", "role")
            if email}


def check_oidc_users(tenant: Tenant, users: tuple[OidcUserSpec, ...],
                     before: tuple[OidcUserSpec, ...] = (),
                     schema: Mapping[str, Any] | None = None) -> list[FieldError]:
    """Access is given to members only, with a role their portal role allows, once each.

    What the cluster already grants is not judged again, so an unrelated change is never
    refused: a member whose portal role was lowered has their access lowered by its own
    operation (``clusters.access``), which may still be waiting its turn.
    """
    if not users:
        return []
    if not features.supports(features.OIDC, schema):
        return [_not_offered("oidc_users", _("access through single sign-on"))]
    members = member_roles(tenant)
    granted = {(u.email, u.role) for u in before}
    seen: set[str] = set()
    errors = []
    for index, user in enumerate(users):
        path = f"oidc_users[{index}]"
        email = user.email.strip().lower()
        if email in seen:
            errors.append(FieldError(f"{path}.email", _("%(email)s is listed twice.")
                                     % {"email": user.email}, "duplicate"))
            continue
        seen.add(email)
        if user.role not in OIDC_ROLES:
            errors.append(FieldError(f"{path}.role", _("Choose the role admin or view."),
                                     "invalid_choice"))
            continue
        if (user.email, user.role) in granted:
            continue
        role = members.get(email)
        if role is None:
            errors.append(FieldError(f"{path}.email", _(
                "%(email)s is not a member of this tenant; invite them first.")
                % {"email": user.email}, "not_a_member"))
        elif user.role not in oidc_roles_for(role):
            errors.append(FieldError(f"{path}.role", _(
                "%(email)s is a %(role)s of this tenant, which does not allow the cluster "
                "role %(cluster_role)s.") % {"email": user.email, "role": Role(role).label,
                                             "cluster_role": user.role}, "role_not_allowed"))
    return errors


# --------------------------------------------------------------------------- add-ons


def _check_addon_dependencies(spec: ClusterSpec,
                              schema: Mapping[str, Any] | None) -> list[FieldError]:
    errors = []
    for key, needs, message in (
        (features.HAMI, catalog.GPU_OPERATOR,
         _("Fractional GPUs work through the NVIDIA GPU operator: enable the GPU operator "
           "too.")),
        (features.OUROBOROS_ADDON, catalog.INGRESS_NGINX,
         _("Ouroboros fixes traffic to Ingress NGINX: enable Ingress NGINX too.")),
    ):
        if not spec.addon(key).enabled:
            continue
        if not features.addon_offered(key, schema):
            what = _("fractional GPUs (HAMi)") if key == features.HAMI else \
                _("the ouroboros add-on")
            errors.append(_not_offered(f"addons.{key}.enabled", what))
        elif not spec.addon(needs).enabled:
            errors.append(FieldError(f"addons.{key}.enabled", message, "dependency"))
    return errors
