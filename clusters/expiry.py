"""Expiry of ephemeral clusters: a time after which the portal deletes the cluster itself.

A cluster gets an expiry at creation or later ("delete after" 1 hour to 90 days, or a date).
A tenant's owners and admins may set a maximum (``ExpiryPolicy``): every expiry set or
extended must then fall within it, and members must give the clusters they create one. Only
owners and admins remove an expiry; setting one on a cluster that had none, or bringing one
forward, schedules a deletion, so it needs the right to delete.

The planner (``PLANNER``, registered with ``clusters.lifecycle``) sends the reminders 24 hours
and 1 hour before (``ClusterExpiring``, once per cluster, expiry time and lead: the
``ExpiryReminder`` rows are unique) and, at expiry, deletes the cluster through the normal
delete action with ``Actor.system("expiry")``. A cluster with an operation in flight waits for
the next pass. Every change is audited and on the cluster's timeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clusters import actions, lifecycle
from clusters.events import ClusterExpiring, cluster_changed, publish
from clusters.models import (
    EXPIRY_MAX_HOURS,
    EXPIRY_MIN_HOURS,
    Cluster,
    ClusterEvent,
    ClusterExpiry,
    ExpiryPolicy,
    ExpiryReminder,
    Operation,
)
from cozystack.specs import ClusterSpec
from portal.audit import Actor, record
from portal.models import Tenant
from portal.permissions import Perm, Role
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.expiry")

REASON = "expiry"
LEADS = (ExpiryReminder.Lead.DAY, ExpiryReminder.Lead.HOUR)  # longest first
# Choices of "delete after" offered on the pages, in hours.
AFTER_CHOICES = (1, 4, 8, 24, 48, 72, 7 * 24, 14 * 24, 30 * 24, 90 * 24)
# A date typed on a page is checked a little after the person chose it.
_SLACK = timedelta(minutes=5)


def moment_words(at: datetime) -> str:
    """A moment as people read it in any language, with its time zone."""
    local = timezone.localtime(at)
    return f"{local:%Y-%m-%d %H:%M} {local.tzname() or ''}".strip()


def hours_label(hours: int) -> str:
    if hours % 24 == 0:
        days = hours // 24
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    return ngettext("%(n)s hour", "%(n)s hours", hours) % {"n": hours}


def policy_of(tenant: Tenant) -> int | None:
    """The tenant's maximum expiry in hours (None: no maximum)."""
    return (ExpiryPolicy.objects.filter(tenant=tenant).values_list("max_hours", flat=True)
            .first())


def expiry_of(cluster: Cluster) -> ClusterExpiry | None:
    return ClusterExpiry.objects.filter(cluster=cluster).first()


def _require_write(actor: Actor, ctx: TenantContext, perm: str) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(perm)


def resolve(*, after_hours: int | None = None, at: datetime | None = None,
            now: datetime | None = None) -> datetime:
    """The expiry time asked for: ``after_hours`` from now, or the date ``at``; refused in
    words unless exactly one is given and it lies between 1 hour and 90 days ahead."""
    now = now or timezone.now()
    if (after_hours is None) == (at is None):
        raise ValidationError({"expires_at": ValidationError(
            _("Choose how long the cluster lives, or the date it is deleted."),
            code="required")})
    if after_hours is not None:
        if not EXPIRY_MIN_HOURS <= after_hours <= EXPIRY_MAX_HOURS:
            raise ValidationError({"after_hours": ValidationError(
                _("Choose between %(min)s hour and %(max)s days.")
                % {"min": EXPIRY_MIN_HOURS, "max": EXPIRY_MAX_HOURS // 24},
                code="out_of_range")})
        return now + timedelta(hours=after_hours)
    assert at is not None
    if timezone.is_naive(at):
        raise ValidationError({"expires_at": ValidationError(
            _("Give the date with its time zone."), code="invalid")})
    if at < now + timedelta(hours=EXPIRY_MIN_HOURS) - _SLACK:
        raise ValidationError({"expires_at": ValidationError(
            _("The expiry must be at least an hour from now."), code="too_soon")})
    if at > now + timedelta(hours=EXPIRY_MAX_HOURS) + _SLACK:
        raise ValidationError({"expires_at": ValidationError(
            _("The expiry must be within 90 days."), code="too_late")})
    return at


def check_within_policy(tenant: Tenant, expires_at: datetime, now: datetime,
                        field: str = "expires_at") -> None:
    """Refuse an expiry beyond the tenant's maximum (counted from now)."""
    limit = policy_of(tenant)
    if limit is not None and expires_at > now + timedelta(hours=limit) + _SLACK:
        raise ValidationError({field: ValidationError(
            _("This tenant allows at most %(limit)s before a cluster expires.")
            % {"limit": hours_label(limit)}, code="beyond_policy")})


def check_creation(ctx: TenantContext, expires_at: datetime | None, now: datetime) -> None:
    """An expiry given with a new cluster: within the tenant's maximum; required of members
    when the tenant has one."""
    limit = policy_of(ctx.tenant)
    if expires_at is None:
        if limit is not None and not ctx.can(Perm.MEMBERS_MANAGE):
            raise ValidationError({"expires_at": ValidationError(
                _("This tenant requires an expiry of at most %(limit)s for new clusters.")
                % {"limit": hours_label(limit)}, code="expiry_required")})
        return
    check_within_policy(ctx.tenant, expires_at, now)


def _timeline(cluster: Cluster, reason: str, message: str, actor: Actor, at: datetime, *,
              severity: str = ClusterEvent.Severity.INFO) -> None:
    ClusterEvent.objects.create(tenant_id=cluster.tenant_id, cluster=cluster, at=at,
                                source=ClusterEvent.Source.PORTAL, severity=severity,
                                reason=reason, message=message, actor_label=actor.label)
    cluster_changed(cluster.pk)


def _write(actor: Actor, cluster: Cluster, expires_at: datetime, now: datetime,
           verb: str, tenant: Tenant) -> ClusterExpiry:
    before = expiry_of(cluster)
    row, _created = ClusterExpiry.objects.update_or_create(
        cluster=cluster, defaults={"expires_at": expires_at, "set_by": actor.label,
                                   "set_at": now, "expired_at": None, "operation": None})
    record(actor, verb, cluster, tenant=tenant,
           changes={"expires_at": [before.expires_at.isoformat() if before else None,
                                   expires_at.isoformat()]})
    _timeline(cluster, verb, _("Expiry set: the cluster is deleted on %(at)s.")
              % {"at": moment_words(expires_at)}, actor, now)
    return row


def set_at_creation(actor: Actor, ctx: TenantContext, cluster: Cluster,
                    expires_at: datetime) -> ClusterExpiry:
    """The expiry of a cluster created in the caller's transaction (checked by
    ``check_creation`` beforehand)."""
    return _write(actor, cluster, expires_at, timezone.now(), "cluster.expiry.set", ctx.tenant)


def do_create_cluster(actor: Actor, ctx: TenantContext, spec: ClusterSpec, *,
                      expires_at: datetime | None, idempotency_key: str = "",
                      origin: tuple[str, str] | None = None) -> Cluster:
    """Create a cluster (``clusters.actions.do_create_cluster``) with its expiry, in one
    transaction: both or neither. The expiry is checked against the tenant's policy first.
    ``origin`` (what it started from, in code and in words: a template or a clone) goes to
    the audit log and the new cluster's timeline."""
    now = timezone.now()
    check_creation(ctx, expires_at, now)
    with transaction.atomic():
        cluster = actions.do_create_cluster(actor, ctx, spec, idempotency_key=idempotency_key)
        if origin is not None:
            code, words = origin
            record(actor, "cluster.origin", cluster, tenant=ctx.tenant,
                   changes={"origin": [None, code]})
            _timeline(cluster, "cluster.origin", words, actor, now)
        if expires_at is not None:
            set_at_creation(actor, ctx, cluster, expires_at)
    return cluster


def do_set_cluster_expiry(actor: Actor, ctx: TenantContext, name: str,
                          expires_at: datetime) -> ClusterExpiry:
    """Set or move the cluster's expiry: the row, the audit entry, the timeline. A later
    expiry needs the right to change clusters; a first one, or an earlier one, schedules a
    deletion and needs the right to delete. Always within the tenant's maximum. Setting the
    same time again changes nothing but the record."""
    _require_write(actor, ctx, Perm.CLUSTERS_CHANGE)
    now = timezone.now()
    check_within_policy(ctx.tenant, expires_at, now)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        if cluster.phase == Cluster.Phase.DELETING:
            raise ValidationError(_("This cluster is being deleted."), code="deleting")
        current = expiry_of(cluster)
        if (current is None or expires_at < current.expires_at) and \
                not ctx.can(Perm.CLUSTERS_DELETE):
            raise PermissionDenied(_("Only owners and admins may schedule the deletion of a "
                                     "cluster or bring it forward; you may extend it."))
        return _write(actor, cluster, expires_at, now, "cluster.expiry.set", ctx.tenant)


def do_extend_cluster_expiry(actor: Actor, ctx: TenantContext, name: str,
                             hours: int) -> ClusterExpiry:
    """Move the expiry ``hours`` later (within the tenant's maximum, counted from now)."""
    if not 1 <= hours <= EXPIRY_MAX_HOURS:
        raise ValidationError({"hours": ValidationError(
            _("Choose between %(min)s hour and %(max)s days.")
            % {"min": 1, "max": EXPIRY_MAX_HOURS // 24}, code="out_of_range")})
    _require_write(actor, ctx, Perm.CLUSTERS_CHANGE)
    cluster = actions.access_cluster(ctx, name)
    current = expiry_of(cluster)
    if current is None:
        raise ValidationError(_("This cluster has no expiry to extend."), code="no_expiry")
    target = max(current.expires_at, timezone.now()) + timedelta(hours=hours)
    if target > timezone.now() + timedelta(hours=EXPIRY_MAX_HOURS) + _SLACK:
        raise ValidationError({"hours": ValidationError(
            _("The expiry must be within 90 days."), code="too_late")})
    check_within_policy(ctx.tenant, target, timezone.now(), field="hours")
    return do_set_cluster_expiry(actor, ctx, name, target)


def do_remove_cluster_expiry(actor: Actor, ctx: TenantContext, name: str) -> bool:
    """Take the expiry off the cluster (owners and admins): it is no longer deleted by
    itself. False when it had none (nothing recorded)."""
    _require_write(actor, ctx, Perm.MEMBERS_MANAGE)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        current = expiry_of(cluster)
        if current is None or current.expired_at is not None:
            return False
        current.delete()
        record(actor, "cluster.expiry.remove", cluster, tenant=ctx.tenant,
               changes={"expires_at": [current.expires_at.isoformat(), None]})
        _timeline(cluster, "cluster.expiry.remove",
                  _("Expiry removed: the cluster is no longer deleted by itself."), actor,
                  timezone.now())
    return True


def do_set_expiry_policy(actor: Actor, ctx: TenantContext, max_hours: int | None
                         ) -> ExpiryPolicy:
    """The tenant's maximum expiry (None: none), set by its owners and admins; audited."""
    _require_write(actor, ctx, Perm.TENANT_MANAGE)
    if max_hours is not None and not EXPIRY_MIN_HOURS <= max_hours <= EXPIRY_MAX_HOURS:
        raise ValidationError({"max_hours": ValidationError(
            _("Choose between %(min)s hour and %(max)s days.")
            % {"min": EXPIRY_MIN_HOURS, "max": EXPIRY_MAX_HOURS // 24}, code="out_of_range")})
    with transaction.atomic():
        row, _created = ExpiryPolicy.objects.select_for_update().get_or_create(tenant=ctx.tenant)
        before = row.max_hours
        row.max_hours, row.changed_by, row.changed_at = max_hours, actor.label, timezone.now()
        row.save()
        if before != max_hours:
            record(actor, "tenant.expiry_policy", row, tenant=ctx.tenant,
                   changes={"max_hours": [before, max_hours]})
    return row


# --------------------------------------------------------------------------- the planner


def _pending(cluster_ids: Iterable[int] | None = None) -> QuerySet[ClusterExpiry]:
    qs = (ClusterExpiry.objects.filter(expired_at__isnull=True, cluster__deleted_at__isnull=True)
          .select_related("cluster", "cluster__tenant"))
    if cluster_ids is not None:
        qs = qs.filter(cluster_id__in=list(cluster_ids))
    return qs


def _due_lead(row: ClusterExpiry, now: datetime) -> int | None:
    """The reminder due at ``now`` for ``row``, if any: the shortest lead already reached
    (a planner that was stopped sends the 1-hour one, not a late 24-hour one), and only for a
    lead the expiry was set longer ahead than (who sets 30 minutes needs no reminder)."""
    if now >= row.expires_at:
        return None
    for lead in reversed(LEADS):  # shortest first
        start = row.expires_at - timedelta(hours=lead)
        if now >= start:
            return int(lead) if row.set_at < start else None
    return None


def remind(row: ClusterExpiry, lead: int, now: datetime) -> bool:
    """Send the ``lead``-hour reminder of ``row`` unless it went already: the reminder row
    (unique), the timeline entry, the audit entry and ``ClusterExpiring`` in one
    transaction."""
    cluster = row.cluster
    actor = Actor.system(REASON)
    try:
        with transaction.atomic():
            ExpiryReminder.objects.create(cluster=cluster, expires_at=row.expires_at,
                                          lead_hours=lead, sent_at=now)
            message = _("Reminder: this cluster is deleted on %(at)s (in %(lead)s).") % {
                "at": moment_words(row.expires_at), "lead": hours_label(lead)}
            _timeline(cluster, "cluster.expiry.reminder", message, actor, now,
                      severity=ClusterEvent.Severity.WARNING)
            record(actor, "cluster.expiry.reminder", cluster, tenant=cluster.tenant,
                   changes={"lead_hours": [None, lead],
                            "expires_at": [None, row.expires_at.isoformat()]})
            publish(ClusterExpiring(cluster, row.expires_at, lead, now))
    except IntegrityError:
        return False  # another pass sent it
    return True


def expire(row: ClusterExpiry, now: datetime) -> bool:
    """Delete the expired cluster through the normal delete action, as the system (reason
    "expiry"), and mark the expiry done, in one transaction. Waits (False) while another
    operation runs or while the platform's release is unknown; a cluster being deleted
    already is left to that deletion."""
    actor = Actor.system(REASON)
    tenant = row.cluster.tenant
    ctx = TenantContext(tenant, Role.OWNER, None)
    try:
        with transaction.atomic():
            cluster = (Cluster.objects.live().select_for_update(no_key=True)
                       .filter(pk=row.cluster_id).first())
            locked = ClusterExpiry.objects.select_for_update().filter(
                pk=row.pk, expired_at__isnull=True, expires_at__lte=now).first()
            if cluster is None or locked is None or cluster.phase == Cluster.Phase.DELETING:
                return False
            if cluster.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
                logger.info("cluster.expiry.waits", extra={"cluster_id": cluster.pk})
                return False
            operation = actions.do_delete_cluster(actor, ctx, cluster.name, confirm=cluster.name)
            locked.expired_at, locked.operation = now, operation
            locked.save(update_fields=["expired_at", "operation"])
            _timeline(cluster, "cluster.expiry.expired", _(
                "Expired: deleted by the portal at the expiry set by %(who)s.")
                % {"who": locked.set_by or _("someone")}, actor, now,
                severity=ClusterEvent.Severity.WARNING)
    except (ValidationError, PermissionDenied) as exc:
        # The platform's release unknown, the tenant suspended: the next pass tries again.
        logger.warning("cluster.expiry.refused",
                       extra={"cluster_id": row.cluster_id, "reason": str(exc)})
        return False
    logger.info("cluster.expiry.deleted", extra={"cluster_id": row.cluster_id})
    return True


class ExpiryPlanner:
    name = "expiry"

    def plan(self, now: datetime) -> int:
        """Send the reminders due and delete what expired; safe to repeat (the reminder rows
        are unique, an expired row is marked in the deleting transaction)."""
        done = 0
        freeze = lifecycle.freeze_at(now)
        for row in _pending().filter(expires_at__lte=now + timedelta(hours=LEADS[0])):
            if row.expires_at <= now:
                if freeze is None:  # during a freeze the deletion waits for its end
                    done += expire(row, now)
                continue
            lead = _due_lead(row, now)
            if lead is not None and not ExpiryReminder.objects.filter(
                    cluster_id=row.cluster_id, expires_at=row.expires_at,
                    lead_hours=lead).exists():
                done += remind(row, lead, now)
        return done

    def upcoming(self, cluster_ids: Iterable[int] | None, now: datetime,
                 until: datetime) -> list[lifecycle.Upcoming]:
        found: list[lifecycle.Upcoming] = []
        rows = list(_pending(cluster_ids).filter(
            expires_at__lte=until + timedelta(hours=LEADS[0])))
        sent = set(ExpiryReminder.objects.filter(cluster_id__in=[r.cluster_id for r in rows])
                   .values_list("cluster_id", "expires_at", "lead_hours"))
        for row in rows:
            cluster = row.cluster
            for lead in LEADS:
                at = row.expires_at - timedelta(hours=lead)
                if at < row.set_at or (row.cluster_id, row.expires_at, int(lead)) in sent \
                        or row.expires_at <= now or at > until:
                    continue
                if at < now and _due_lead(row, now) != lead:
                    continue  # passed by: a shorter reminder goes instead
                found.append(lifecycle.Upcoming(
                    cluster_id=cluster.pk, tenant_id=cluster.tenant_id, at=max(at, now),
                    kind="reminder", reason=REASON,
                    summary=_("Expiry reminder (%(lead)s before)")
                    % {"lead": hours_label(lead)}))
            deleted_at = max(row.expires_at, now)
            freeze = lifecycle.freeze_at(deleted_at)
            if freeze is not None:
                deleted_at = freeze.ends_at
            if deleted_at <= until:
                found.append(lifecycle.Upcoming(
                    cluster_id=cluster.pk, tenant_id=cluster.tenant_id,
                    at=deleted_at, kind="expire", reason=REASON,
                    summary=_("Delete %(name)s at its expiry") % {"name": cluster.name}))
        return found


PLANNER = ExpiryPlanner()
