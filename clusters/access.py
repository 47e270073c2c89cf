"""Who gets into a tenant's clusters through single sign-on follows who is a member, and as what.

A person given access to a cluster (``oidc.users``) keeps it only while they are a member of
the tenant. When a membership ends (``portal.member_events.MembershipEnded``, after commit),
``revoke_access`` takes the person off every cluster of the tenant that lists them, as an access
operation of its own; a cluster busy with another change is tried again a little later.

Their access also never exceeds what their portal role allows (``spec_rules.oidc_roles_for``:
owners, admins and members may be cluster admins, viewers only view, billing people nothing).
When a role is lowered (``MembershipRoleChanged``), ``lower_access`` lowers every cluster's entry
for the person to what the new role allows (``admin`` → ``view``), or takes them off when it
allows no cluster access, through the same access operations. Raising a role grants nothing:
an owner or admin gives more access when they mean to.

The periodic ``sweep_access`` catches what no event announced (a membership deleted or changed
by staff, a deleted account, a lost message): it revokes every listed person who is no longer a
member and lowers every one whose role no longer allows what they have.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import shared_task
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from clusters import actions, events, spec_rules
from clusters.models import Cluster, ClusterEvent
from clusters.tasks import TASK_OPTIONS
from portal.member_events import MembershipEnded, MembershipRoleChanged
from portal.models import Tenant

logger = logging.getLogger("clusters.access")
BUSY_RETRY_SECONDS = 30


def on_membership_ended(event: MembershipEnded) -> None:
    """Subscribed after commit: revoke what the membership granted, in the background."""
    if event.emails:
        revoke_access.delay(event.tenant_id, sorted(event.emails))


@shared_task(name="clusters.revoke_access", **TASK_OPTIONS)
def revoke_access(tenant_id: int, emails: list[str]) -> dict[str, int]:
    """Take ``emails`` off the access list of every live cluster of the tenant.

    Each cluster that lists one of them gets an access operation (``do_revoke_cluster_access``);
    one busy with another change is tried again in ``BUSY_RETRY_SECONDS``. A refusal for another
    reason is written on the cluster's timeline for its people to see. Safe to repeat: a
    cluster that no longer lists them is left alone.
    """
    counts = {"revoked": 0, "busy": 0, "refused": 0}
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return counts
    wanted = frozenset(email.lower() for email in emails)
    for cluster in clusters_granting(tenant, wanted):
        try:
            operation = actions.do_revoke_cluster_access(tenant, cluster.pk, wanted)
        except ValidationError as exc:
            if getattr(exc, "code", None) == "busy":
                counts["busy"] += 1
                continue
            counts["refused"] += 1
            _note_refusal(cluster, wanted, exc)
            continue
        counts["revoked"] += operation is not None
    if counts["busy"]:
        revoke_access.apply_async((tenant_id, sorted(wanted)), countdown=BUSY_RETRY_SECONDS)
    logger.info("cluster.access.revoke", extra={"tenant_id": tenant_id, **counts})
    return counts


def on_membership_role_changed(event: MembershipRoleChanged) -> None:
    """Subscribed after commit: a role that allows less cluster access than before lowers the
    person's access, in the background (raising one changes nothing)."""
    lost = set(spec_rules.oidc_roles_for(event.before)) - set(
        spec_rules.oidc_roles_for(event.after))
    if event.emails and lost:
        lower_access.delay(event.tenant_id, sorted(event.emails))


@shared_task(name="clusters.lower_access", **TASK_OPTIONS)
def lower_access(tenant_id: int, emails: list[str]) -> dict[str, int]:
    """Lower the access of ``emails`` on every live cluster of the tenant to what their portal
    role allows *now* (read when the task runs, so a role raised again meanwhile is respected,
    and a person who left is left to ``revoke_access``).

    Each cluster that grants one of them more gets an access operation
    (``do_lower_cluster_access``); one busy with another change is tried again in
    ``BUSY_RETRY_SECONDS``; another refusal is written on the cluster's timeline. Safe to
    repeat."""
    counts = {"lowered": 0, "busy": 0, "refused": 0}
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return counts
    members = spec_rules.member_roles(tenant)
    allowed = {email: spec_rules.oidc_roles_for(members[email])
               for email in (e.lower() for e in emails) if email in members}
    for cluster in clusters_exceeding(tenant, allowed):
        try:
            operation = actions.do_lower_cluster_access(tenant, cluster.pk, allowed)
        except ValidationError as exc:
            if getattr(exc, "code", None) == "busy":
                counts["busy"] += 1
                continue
            counts["refused"] += 1
            _note_refusal(cluster, frozenset(allowed), exc, lowering=True)
            continue
        counts["lowered"] += operation is not None
    if counts["busy"]:
        lower_access.apply_async((tenant_id, sorted(allowed)), countdown=BUSY_RETRY_SECONDS)
    logger.info("cluster.access.lower", extra={"tenant_id": tenant_id, **counts})
    return counts


def clusters_exceeding(tenant: Tenant, allowed: dict[str, tuple[str, ...]]) -> list[Cluster]:
    """The tenant's live clusters that grant one of ``allowed``'s people a role their portal
    role does not allow."""
    def exceeds(user: dict[str, str]) -> bool:
        roles = allowed.get(str(user.get("email", "")).lower())
        return roles is not None and user.get("role") not in roles

    return [cluster for cluster in Cluster.objects.for_tenant(tenant).live()
            .exclude(oidc_users=[]).order_by("pk")
            if any(exceeds(u) for u in cluster.oidc_users or () if isinstance(u, dict))]


def clusters_granting(tenant: Tenant, emails: Iterable[str]) -> list[Cluster]:
    """The tenant's live clusters whose access list names one of ``emails``."""
    wanted = frozenset(emails)
    return [cluster for cluster in Cluster.objects.for_tenant(tenant).live()
            .exclude(oidc_users=[]).order_by("pk")
            if any(str(u.get("email", "")).lower() in wanted for u in cluster.oidc_users or ())]


def _note_refusal(cluster: Cluster, emails: frozenset[str], exc: ValidationError, *,
                  lowering: bool = False) -> None:
    message = (_("Access of %(who)s could not be lowered: %(why)s") if lowering else
               _("Access of %(who)s could not be removed: %(why)s")) % {
        "who": ", ".join(sorted(emails)), "why": " ".join(exc.messages)}
    ClusterEvent.objects.create(tenant_id=cluster.tenant_id, cluster=cluster,
                                source=ClusterEvent.Source.PORTAL,
                                severity=ClusterEvent.Severity.WARNING,
                                reason="access.lower.refused" if lowering
                                else "access.revoke.refused", message=message)
    events.cluster_changed(cluster.pk)
    logger.warning("cluster.access.revoke_refused",
                   extra={"cluster_id": cluster.pk, "error": message})


@shared_task(name="clusters.sweep_access", **TASK_OPTIONS)
def sweep_access() -> dict[str, int]:
    """Revoke access still listed for people who are no longer members, and lower access
    beyond what a member's role allows (beat). Safe to repeat: it only enqueues
    ``revoke_access`` and ``lower_access`` for tenants that have such people."""
    tenants = 0
    listed = (Cluster.objects.live().exclude(oidc_users=[])
              .values_list("tenant_id", "oidc_users"))
    by_tenant: dict[int, set[tuple[str, str]]] = {}
    for tenant_id, users in listed:
        by_tenant.setdefault(tenant_id, set()).update(
            (str(u.get("email", "")).lower(), str(u.get("role", "")))
            for u in users or () if isinstance(u, dict))
    for tenant in Tenant.objects.filter(pk__in=by_tenant):
        members = spec_rules.member_roles(tenant)
        departed = {email for email, _role in by_tenant[tenant.pk]} - set(members)
        exceeding = {email for email, role in by_tenant[tenant.pk] if email in members
                     and role not in spec_rules.oidc_roles_for(members[email])}
        if departed:
            revoke_access.delay(tenant.pk, sorted(departed))
        if exceeding:
            lower_access.delay(tenant.pk, sorted(exceeding))
        tenants += bool(departed or exceeding)
    return {"tenants": tenants}
