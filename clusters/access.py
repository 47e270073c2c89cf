"""Who gets into a tenant's clusters through single sign-on follows who is a member.

A person given access to a cluster (``oidc.users``) keeps it only while they are a member of
the tenant. When a membership ends (``portal.member_events.MembershipEnded``, after commit),
``revoke_access`` takes the person off every cluster of the tenant that lists them, as an access
operation of its own; a cluster busy with another change is tried again a little later. The
periodic ``sweep_access`` catches what no event announced (a membership deleted by staff, a
deleted account, a lost message): it revokes every listed person who is no longer a member.
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
from portal.member_events import MembershipEnded
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


def clusters_granting(tenant: Tenant, emails: Iterable[str]) -> list[Cluster]:
    """The tenant's live clusters whose access list names one of ``emails``."""
    wanted = frozenset(emails)
    return [cluster for cluster in Cluster.objects.for_tenant(tenant).live()
            .exclude(oidc_users=[]).order_by("pk")
            if any(str(u.get("email", "")).lower() in wanted for u in cluster.oidc_users or ())]


def _note_refusal(cluster: Cluster, emails: frozenset[str], exc: ValidationError) -> None:
    message = _("Access of %(who)s could not be removed: %(why)s") % {
        "who": ", ".join(sorted(emails)), "why": " ".join(exc.messages)}
    ClusterEvent.objects.create(tenant_id=cluster.tenant_id, cluster=cluster,
                                source=ClusterEvent.Source.PORTAL,
                                severity=ClusterEvent.Severity.WARNING,
                                reason="access.revoke.refused", message=message)
    events.cluster_changed(cluster.pk)
    logger.warning("cluster.access.revoke_refused",
                   extra={"cluster_id": cluster.pk, "error": message})


@shared_task(name="clusters.sweep_access", **TASK_OPTIONS)
def sweep_access() -> dict[str, int]:
    """Revoke access still listed for people who are no longer members (beat). Safe to
    repeat: it only enqueues ``revoke_access`` for tenants that have such people."""
    tenants = 0
    listed = (Cluster.objects.live().exclude(oidc_users=[])
              .values_list("tenant_id", "oidc_users"))
    by_tenant: dict[int, set[str]] = {}
    for tenant_id, users in listed:
        by_tenant.setdefault(tenant_id, set()).update(
            str(u.get("email", "")).lower() for u in users or () if isinstance(u, dict))
    for tenant in Tenant.objects.filter(pk__in=by_tenant):
        departed = by_tenant[tenant.pk] - set(spec_rules.member_roles(tenant))
        if departed:
            revoke_access.delay(tenant.pk, sorted(departed))
            tenants += 1
    return {"tenants": tenants}
