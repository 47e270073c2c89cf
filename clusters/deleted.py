"""Deleted clusters, read-only: which ones the tenant still sees and why each one went.

A deleted cluster keeps its rows (``deleted_at``). Its tenant sees it for
``DELETED_VISIBLE_DAYS`` after the deletion: why it went (who deleted it, its expiry, or the
platform losing it), its timeline and its cost in its last month. After that it is kept for
billing and audit only. Nothing here offers a kubeconfig or any change: the actions and
``clusters.actions.access_cluster`` keep answering 404 for a deleted cluster.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.models import Cluster, ClusterEvent, ClusterExpiry, Operation
from portal.models import Tenant
from portal.tenancy import TenantContext

DELETED_VISIBLE_DAYS = 90
VANISHED = "Vanished"  # the watcher's timeline reason (clusters.observe)


def deleted_clusters(tenant: Tenant, *, now: datetime | None = None) -> QuerySet[Cluster]:
    """The tenant's clusters deleted in the last ``DELETED_VISIBLE_DAYS``, newest first."""
    since = (now or timezone.now()) - timedelta(days=DELETED_VISIBLE_DAYS)
    return (Cluster.objects.for_tenant(tenant).filter(deleted_at__gte=since)
            .order_by("-deleted_at", "-id"))


def access_deleted_cluster(ctx: TenantContext, cluster_id: int) -> Cluster:
    """The tenant's deleted cluster ``cluster_id``, while still shown; 404 otherwise (a live
    one, another tenant's, or one kept for billing only)."""
    found = deleted_clusters(ctx.tenant).filter(pk=cluster_id).select_related("tenant").first()
    if found is None:
        raise Http404
    return found


def latest_deleted_named(ctx: TenantContext, name: str) -> Cluster | None:
    """The most recently deleted cluster of the tenant called ``name``, while still shown."""
    return deleted_clusters(ctx.tenant).filter(name=name).first()


@dataclass(frozen=True)
class Departure:
    """Why a cluster went: ``kind`` is "expiry", "person", "vanished" or "cancelled"."""

    kind: str
    sentence: str
    who: str = ""
    at: datetime | None = None


def departure(cluster: Cluster) -> Departure:
    """Why ``cluster`` was deleted, in words: its expiry, the platform losing it (staff were
    alerted), a creation cancelled before it reached the platform, or who deleted it."""
    return departures([cluster])[cluster.pk]


def departures(clusters: Iterable[Cluster]) -> dict[int, Departure]:
    """``departure`` of each of ``clusters``, by id, in four queries whatever their number."""
    by_id = {c.pk: c for c in clusters}
    ids = list(by_id)
    expired = {row.cluster_id: row for row in ClusterExpiry.objects.filter(
        cluster_id__in=ids, expired_at__isnull=False)}
    vanished = set(ClusterEvent.objects.filter(cluster_id__in=ids, reason=VANISHED)
                   .values_list("cluster_id", flat=True))
    deletes: dict[int, Operation] = {}
    for op in (Operation.objects.filter(cluster_id__in=ids, kind=Operation.Kind.DELETE)
               .select_related("requested_by").order_by("cluster_id", "-created_at", "-id")):
        deletes.setdefault(op.cluster_id, op)
    labels = dict(ClusterEvent.objects.filter(
        operation_id__in=[op.pk for op in deletes.values()], reason="operation.delete")
        .exclude(actor_label="").values_list("operation_id", "actor_label"))
    found: dict[int, Departure] = {}
    for pk, cluster in by_id.items():
        at = cluster.deleted_at
        row = expired.get(pk)
        if row is not None:
            found[pk] = Departure("expiry", _(
                "Deleted by the portal at its expiry (%(at)s), set by %(who)s.")
                % {"at": row.expires_at.strftime("%Y-%m-%d %H:%M UTC"),
                   "who": row.set_by or _("someone")}, who="system (expiry)", at=at)
        elif pk in vanished:
            found[pk] = Departure("vanished", _(
                "It disappeared from the platform without a deletion from the portal; staff "
                "were alerted."), at=at)
        elif pk not in deletes:
            found[pk] = Departure("cancelled", _("Its creation was cancelled before it "
                                                 "reached the platform."), at=at)
        else:
            op = deletes[pk]
            who = labels.get(op.pk) or getattr(op.requested_by, "email", "") or _("someone")
            found[pk] = Departure("person", _("Deleted by %(who)s.") % {"who": who}, who=who,
                                  at=at)
    return found
