"""A person's actions on maintenance: the window and policy of a cluster, the tenant's default,
postpone once, upgrade now (``clusters.maintenance``)."""

from __future__ import annotations

from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import actions, events, operations
from clusters.maintenance.planner import local_text, postpone_choices, scheduled_for
from clusters.maintenance.windows import (
    POSTPONE_MAX_DAYS,
    Setting,
    Window,
    platform_default,
    setting_of,
    window_of,
)
from clusters.models import (
    AutomaticUpgrade,
    Cluster,
    MaintenanceWindow,
    Operation,
    UpgradePolicy,
)
from portal.audit import Actor, record
from portal.permissions import Perm
from portal.tenancy import TenantContext

# --------------------------------------------------------------------------- a person's actions


def _require(actor: Actor, ctx: TenantContext, perm: str) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(perm)


def do_set_maintenance(actor: Actor, ctx: TenantContext, name: str, window: Window,
                       policy: str) -> MaintenanceWindow:
    """Set the cluster's window and upgrade policy (audited). A scheduled upgrade that no
    longer fits (another window, a manual policy) is dropped and planned anew by the next
    pass. Setting the same again changes nothing."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    if policy not in UpgradePolicy.values:
        raise ValidationError({"upgrade_policy": ValidationError(
            _("Choose manual, before_end_of_life or keep_current."), code="invalid_choice")})
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        before = setting_of(cluster)
        row = MaintenanceWindow.objects.filter(cluster=cluster).first() or MaintenanceWindow(
            tenant=ctx.tenant, cluster=cluster)
        _fill(row, window, policy, actor)
        row.save()
        after = Setting(window, policy, "cluster")
        if (before.window, before.policy) != (after.window, after.policy):
            waiting = scheduled_for(cluster)
            if waiting is not None:
                operations.unschedule(
                    Operation.objects.select_for_update(no_key=True).get(
                        pk=waiting.operation_id),
                    _("The maintenance window or upgrade policy changed: planned anew."),
                    actor_label=actor.label)
            record(actor, "cluster.maintenance", cluster, tenant=ctx.tenant, changes={
                "window": [before.window.describe(), window.describe()],
                "upgrade_policy": [before.policy, policy]})
            events.cluster_changed(cluster.pk)
    return row


def do_set_tenant_default(actor: Actor, ctx: TenantContext, window: Window,
                          policy: str) -> MaintenanceWindow:
    """The tenant's default window and policy for its new clusters (owners and admins)."""
    _require(actor, ctx, Perm.TENANT_MANAGE)
    if policy not in UpgradePolicy.values:
        raise ValidationError({"upgrade_policy": ValidationError(
            _("Choose manual, before_end_of_life or keep_current."), code="invalid_choice")})
    with transaction.atomic():
        row = (MaintenanceWindow.objects.select_for_update()
               .filter(tenant=ctx.tenant, cluster__isnull=True).first()
               or MaintenanceWindow(tenant=ctx.tenant))
        before = window_of(row).describe() if row.pk else ""
        # The default is for new clusters: those that followed the old one keep it.
        _pin_followers(ctx.tenant.pk, row if row.pk else None, actor)
        _fill(row, window, policy, actor)
        row.save()
        record(actor, "tenant.maintenance_default", ctx.tenant, tenant=ctx.tenant,
               changes={"window": [before, window.describe()], "upgrade_policy": [None, policy]})
    return row


def _fill(row: MaintenanceWindow, window: Window, policy: str, actor: Actor) -> None:
    row.weekdays = list(window.weekdays)
    row.start_time = window.start
    row.duration_minutes = window.minutes
    row.time_zone = window.zone
    row.upgrade_policy = policy
    row.updated_by, row.updated_at = actor.label, timezone.now()


def _pin_followers(tenant_id: int, default: MaintenanceWindow | None, actor: Actor) -> None:
    """Give each live cluster of the tenant without a window of its own the one it follows
    now (the tenant's old default, else the platform's), so a new default only reaches new
    clusters."""
    window = window_of(default) if default is not None else platform_default()
    policy = default.upgrade_policy if default is not None else UpgradePolicy.MANUAL
    followers = (Cluster.objects.live().filter(tenant_id=tenant_id)
                 .exclude(pk__in=MaintenanceWindow.objects.filter(cluster__isnull=False)
                          .values("cluster_id")))
    rows = []
    for cluster in followers:
        row = MaintenanceWindow(tenant_id=tenant_id, cluster=cluster)
        _fill(row, window, policy, actor)
        rows.append(row)
    MaintenanceWindow.objects.bulk_create(rows)


def do_postpone_upgrade(actor: Actor, ctx: TenantContext, name: str,
                        to: datetime | None = None) -> AutomaticUpgrade:
    """Postpone the cluster's scheduled automatic upgrade once, to a later opening of its
    window at most 14 days later and never past the end of life (``to``: which one; none:
    the next). A second postponement is refused in words."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name, for_update=True)
        upgrade = scheduled_for(cluster)
        if upgrade is None:
            raise ValidationError(_("No automatic upgrade is scheduled for this cluster."),
                                  code="not_scheduled")
        if upgrade.postponed_at is not None:
            raise ValidationError(_("This upgrade was postponed once already."),
                                  code="postponed_once")
        choices = postpone_choices(upgrade, setting_of(cluster).window)
        chosen = choices[0] if to is None and choices else next(
            (c for c in choices if to is not None and c[0] == to), None)
        if chosen is None:
            raise ValidationError({"to": ValidationError(
                _("Choose one of the next openings of the window, at most %(days)s days later "
                  "and before the end of life.") % {"days": POSTPONE_MAX_DAYS},
                code="invalid_choice")})
        operation = Operation.objects.select_for_update(no_key=True).get(pk=upgrade.operation_id)
        start, end = chosen
        old = operation.not_before
        operations.reschedule(
            operation, start, _("Automatic upgrade to %(v)s postponed to %(when)s by %(who)s.")
            % {"v": upgrade.to_version, "when": local_text(start, setting_of(cluster).window.zone),
               "who": actor.label}, actor_label=actor.label,
            params={**operation.params, "window_end": end.isoformat()})
        upgrade.window_start, upgrade.window_end = start, end
        upgrade.postponed_at, upgrade.postponed_by = timezone.now(), actor.label
        upgrade.save(update_fields=["window_start", "window_end", "postponed_at",
                                    "postponed_by"])
        record(actor, "cluster.upgrade.postponed", cluster, tenant=ctx.tenant,
               changes={"not_before": [old.isoformat() if old else None, start.isoformat()]})
        events.cluster_changed(cluster.pk)
    return upgrade


def do_upgrade_now(actor: Actor, ctx: TenantContext, name: str) -> Operation:
    """Run the scheduled automatic upgrade now, as the person's own upgrade (the same action
    and change plan); the scheduled one is dropped in the same transaction."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        cluster = actions.access_cluster(ctx, name)
        upgrade = scheduled_for(cluster)
        if upgrade is None:
            raise ValidationError(_("No automatic upgrade is scheduled for this cluster."),
                                  code="not_scheduled")
        operation = actions.do_upgrade_cluster(actor, ctx, name, upgrade.to_version)
        waiting = (Operation.objects.select_for_update(no_key=True)
                   .filter(pk=upgrade.operation_id, state=Operation.State.SCHEDULED).first())
        if waiting is not None:
            operations.unschedule(waiting, _("Run now by %(who)s.") % {"who": actor.label},
                                  actor_label=actor.label)
    return operation

