"""Every write to clusters: create, change, scale, upgrade, add-ons, delete, retry, cancel.

Each action checks the caller's rights, the platform rules (the published schema after chart
defaults), and the tenant quota; then writes the desired rows, one ``Operation``, its outbox
entry and the audit entry in one transaction; the outbox hands the work to the broker after
commit (``clusters.outbox``: a broker that refuses delays the work, never the answer).
Operations are started, cancelled and retried through ``clusters.operations`` (the one writer
of their state), which also holds the rule of one operation at a time per cluster.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import (
    events,
    hibernation,
    observe,
    operations,
    outbox,
    plans,
    platform_release,
    spec_rules,
)
from clusters.desired import write_desired_rows
from clusters.hosts import check_api_host, host_in_use
from clusters.models import Cluster, Operation
from clusters.offerings import check_offered, check_platform_offer, platform_offer
from clusters.quotas import check_quota
from cozystack.manifests import render_kubernetes
from cozystack.rules import FieldError
from cozystack.specjson import spec_from_json, spec_to_json
from cozystack.specs import AddonSpec, AutoRepairSpec, ClusterSpec, NodeGroupSpec, OidcUserSpec
from cozystack.validation import validate_manifest
from portal.audit import Actor, record
from portal.models import Tenant
from portal.permissions import Perm, Role
from portal.tenancy import TenantContext

PORTAL_LABELS = {"app.kubernetes.io/managed-by": "kube-portal"}
# Refusals a system change does not take (hibernating to 0 nodes, waking past quota).
Waiver = Callable[[plans.ChangePlan, list[FieldError]], list[FieldError]]


def errors_to_validation_error(errors: list[FieldError]) -> ValidationError:
    if any(e.code == platform_release.UNKNOWN_CODE for e in errors):
        return platform_release.PlatformReleaseUnknown()
    by_field: dict[str, list[ValidationError]] = {}
    for error in errors:
        by_field.setdefault(error.field or "__all__", []).append(
            ValidationError(error.message, code=error.code))
    return ValidationError(by_field)


def check_spec(ctx: TenantContext, spec: ClusterSpec, *, previous: ClusterSpec | None = None,
               cluster_id: int | None = None) -> list[FieldError]:
    """Every rule a spec must pass before the portal accepts it: the platform's rules in the
    dialect of the release it runs (none passes while that release is unknown), what the
    platform offers the tenant (its Option API), what staff offer, the portal's own rules on
    what tenants set, and quota."""
    release = platform_release.current()
    if release.dialect is None:
        return [platform_release.unknown_release_error()]
    schema = release.schema
    offer = platform_offer(ctx.tenant.namespace)
    # What the platform does not offer the tenant is said once, in its words, beside the field.
    errors = check_platform_offer(offer, spec, previous)
    offered = {error.field for error in errors}
    errors += [error for error in validate_manifest(
        spec, schema, dialect=release.dialect, creating=previous is None, previous=previous,
        **offer.validation_names(spec)) if error.field not in offered]
    errors += check_offered(spec, previous)
    if previous is None:  # the host is chosen at creation and never changes
        errors += check_api_host(ctx.tenant, spec, cluster_id=cluster_id)
    # The platform's rules speak first; the portal's own only where they said nothing.
    judged = {error.field for error in errors}
    errors += [error for error in spec_rules.check_tenant_settings(
        ctx.tenant, spec, previous, schema,
        storage_classes=offer.validation_names(spec).get("storage_classes"))
        if error.field not in judged]
    return errors + check_quota(ctx.tenant, spec, cluster_id=cluster_id)


def check_access_change(ctx: TenantContext, before: tuple[OidcUserSpec, ...],
                        after: tuple[OidcUserSpec, ...]) -> None:
    """Who gets into a cluster through single sign-on is chosen by those who manage the
    tenant's members (owners and admins), not by everyone who may change clusters."""
    if tuple(before) != tuple(after):
        _require_access_right(ctx)


def _require_access_right(ctx: TenantContext) -> None:
    if not ctx.can(Perm.MEMBERS_MANAGE):
        raise PermissionDenied(_("Only owners and admins of the tenant choose who gets access "
                                 "to a cluster."))


def _require(actor: Actor, ctx: TenantContext, perm: str) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(perm)


def _lock_tenant(ctx: TenantContext) -> None:
    Tenant.objects.select_for_update(no_key=True).filter(pk=ctx.tenant.pk).first()


def access_cluster(ctx: TenantContext, name: str, *, for_update: bool = False) -> Cluster:
    """The tenant's live cluster ``name``; 404 for anything else (others' look missing)."""
    qs = Cluster.objects.for_tenant(ctx.tenant).live().filter(name=name)
    if for_update:
        qs = qs.select_for_update(no_key=True)
    cluster = qs.first()
    if cluster is None:
        raise Http404
    return cluster


def _manifest(kind: str, spec: ClusterSpec) -> dict[str, Any]:
    """The object as the platform's release takes it now, kept for the record (the task renders
    it again, in the dialect of the release the platform runs when it is sent)."""
    if kind == Operation.Kind.DELETE:
        return {}
    return render_kubernetes(spec, platform_release.current().shown, labels=PORTAL_LABELS)


def _spec_params(spec: ClusterSpec, before: ClusterSpec | None) -> dict[str, Any]:
    return {"before": spec_to_json(before) if before else None, "after": spec_to_json(spec)}


def _start_operation(actor: Actor, cluster: Cluster, kind: str, spec: ClusterSpec, *,
                     before: ClusterSpec | None, params: dict[str, Any], summary: str,
                     idempotency_key: str = "") -> Operation:
    operation = operations.start(actor, cluster, kind,
                                 params={**params, **_spec_params(spec, before)},
                                 desired_spec=_manifest(kind, spec), summary=summary,
                                 idempotency_key=idempotency_key)
    _enqueue(operation)
    return operation


def _enqueue(operation: Operation) -> None:
    """The operation's work, as an outbox entry of this transaction (relayed after commit)."""
    outbox.put(operation.pk)
    events.cluster_changed(operation.cluster_id)


def do_create_cluster(actor: Actor, ctx: TenantContext, spec: ClusterSpec, *,
                      idempotency_key: str = "") -> Cluster:
    """Record a new cluster (rows for it and its node groups, a create ``Operation``, an
    audit entry) and queue its creation on the platform once the transaction commits.

    Repeating it is refused, not duplicated: a name the tenant already uses is refused with
    the other errors of the spec (``already_exists``), and the unique constraint says the same
    to a concurrent create. Quota is checked again under the tenant row lock, so two
    concurrent creates cannot both pass it."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    check_access_change(ctx, (), spec.oidc_users)
    spec = dataclasses.replace(spec, namespace=ctx.tenant.namespace)
    taken = Cluster.objects.for_tenant(ctx.tenant).live().filter(name=spec.name).exists()
    errors = ([_name_taken()] if taken else []) + check_spec(ctx, spec)
    if errors:
        raise errors_to_validation_error(errors)
    try:
        with transaction.atomic():
            # Quota again under the tenant's row lock: two concurrent creates cannot both pass.
            _lock_tenant(ctx)
            errors = check_quota(ctx.tenant, spec)
            if errors:
                raise errors_to_validation_error(errors)
            cluster = Cluster(tenant=ctx.tenant, name=spec.name, created_by=actor.user,
                              phase=Cluster.Phase.CREATING,
                              status_message=_("Queued: waiting for a worker."))
            write_desired_rows(cluster, spec)
            _start_operation(actor, cluster, Operation.Kind.CREATE, spec, before=None,
                             params={}, summary=_("Creation requested."),
                             idempotency_key=idempotency_key)
            record(actor, "cluster.create", cluster, tenant=ctx.tenant,
                   changes={"spec": [None, spec_to_json(spec)]})
    except IntegrityError:
        raise _lost_race(spec) from None
    return cluster


def _lost_race(spec: ClusterSpec) -> ValidationError:
    """Which unique rule a concurrent creation took first: the API host (across tenants) or the
    name (in the tenant). Both checks passed before the insert, so the other one committed."""
    if spec.host and Cluster.objects.live().filter(host=spec.host).exists():
        return errors_to_validation_error([host_in_use(spec.host)])
    return errors_to_validation_error([_name_taken()])


def _name_taken() -> FieldError:
    return FieldError("name", _("A cluster with this name already exists."), "already_exists")


def check_plan(ctx: TenantContext, plan: plans.ChangePlan, *, cluster_id: int
               ) -> list[FieldError]:
    """Every refusal of a planned change to an existing cluster: nothing to change, then the
    platform rules, what staff offer, and quota. The preview shows them; the action raises
    them."""
    return plan.refusals() or check_spec(ctx, plan.after, previous=plan.before,
                                         cluster_id=cluster_id)


def do_change_cluster(actor: Actor, ctx: TenantContext, name: str, planner: plans.Planner, *,
                      idempotency_key: str = "") -> Operation:
    """Apply a change plan to an existing cluster: the desired rows, an operation of the
    plan's kind, the audit entry, in one transaction; the work is enqueued on commit.

    Under the tenant and cluster row locks it refuses while another operation runs (one at a
    time per cluster), plans against the spec the cluster has now, and refuses what
    ``check_plan`` refuses; a change of who gets access needs the right to manage members.
    A repeated request is refused as "nothing to change"."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        _lock_tenant(ctx)
        cluster = access_cluster(ctx, name, for_update=True)
        deferred = _defer_while_hibernating(actor, ctx, cluster, planner)
        if deferred is None:
            return _apply_plan(actor, ctx, cluster, planner, idempotency_key=idempotency_key)
    raise hibernation.ChangeDeferred(deferred)  # committed: what waking restores changed


def _apply_plan(actor: Actor, ctx: TenantContext, cluster: Cluster, planner: plans.Planner, *,
                idempotency_key: str = "", check_access: bool = True,
                waive: Waiver | None = None) -> Operation:
    """The body of a change, under the tenant and cluster row locks the caller holds."""
    if cluster.phase == Cluster.Phase.DELETING:
        raise ValidationError(_("This cluster is being deleted."), code="deleting")
    operations.check_idle(cluster)
    plan = planner(cluster.to_spec())
    if check_access:
        check_access_change(ctx, plan.before.oidc_users, plan.after.oidc_users)
    hibernation.check_live_groups_kept(cluster, plan)
    errors = (waive or plans.waived_for_hibernation)(
        plan, check_plan(ctx, plan, cluster_id=cluster.pk))
    if errors:
        raise errors_to_validation_error(errors)
    write_desired_rows(cluster, plan.after)
    cluster.phase = Cluster.Phase.UPDATING
    cluster.status_message = _("Queued: waiting for a worker.")
    cluster.save(update_fields=["phase", "status_message", "updated_at"])
    operation = _start_operation(actor, cluster, plan.kind, plan.after, before=plan.before,
                                 params=plan.params, summary=plan.summary,
                                 idempotency_key=idempotency_key)
    record(actor, plan.verb, cluster, tenant=ctx.tenant,
           changes={"spec": [spec_to_json(plan.before), spec_to_json(plan.after)],
                    **plan.params})
    return operation


def do_update_cluster(actor: Actor, ctx: TenantContext, name: str, spec: ClusterSpec, *,
                      idempotency_key: str = "") -> Operation:
    """Bring the cluster to ``spec`` as a whole (the API's PUT): desired rows, an update
    operation, the audit entry. A repeat with the same spec is refused ("nothing to change");
    one change runs at a time per cluster."""
    return do_change_cluster(actor, ctx, name, plans.update_cluster(spec),
                             idempotency_key=idempotency_key)


def do_scale_node_group(actor: Actor, ctx: TenantContext, name: str, group: str, *,
                        min_replicas: int, max_replicas: int,
                        idempotency_key: str = "") -> Operation:
    """Change a group's autoscaler limits (no node is replaced): the group row, a scale
    operation, the audit entry. Repeating the same limits is refused as "nothing to change"."""
    return do_change_cluster(actor, ctx, name, plans.scale_node_group(
        group, min_replicas=min_replicas, max_replicas=max_replicas),
        idempotency_key=idempotency_key)


def do_update_node_group(actor: Actor, ctx: TenantContext, name: str, group: NodeGroupSpec, *,
                         idempotency_key: str = "") -> Operation:
    """Change a group's template (instance type, disk, roles, GPUs) or limits; a template
    change replaces every node of the group on the platform. Same rules as
    ``do_change_cluster``."""
    return do_change_cluster(actor, ctx, name, plans.update_node_group(group),
                             idempotency_key=idempotency_key)


def do_add_node_group(actor: Actor, ctx: TenantContext, name: str, group: NodeGroupSpec, *,
                      idempotency_key: str = "") -> Operation:
    """Add a node group (a new group row, an operation, the audit entry). Adding a name that
    exists is refused."""
    return do_change_cluster(actor, ctx, name, plans.add_node_group(group),
                             idempotency_key=idempotency_key)


def do_remove_node_group(actor: Actor, ctx: TenantContext, name: str, group: str, *,
                         idempotency_key: str = "") -> Operation:
    """Remove a node group: its row is kept as history (``removed_at``) and its nodes stay
    metered until the platform has removed them. Removing it again, or the last group, is
    refused."""
    return do_change_cluster(actor, ctx, name, plans.remove_node_group(group),
                             idempotency_key=idempotency_key)


def do_upgrade_cluster(actor: Actor, ctx: TenantContext, name: str, version: str, *,
                       idempotency_key: str = "") -> Operation:
    """Move to the next minor version only (the platform refuses jumps and downgrades):
    the cluster's version, an upgrade operation, the audit entry. Asking again for the version
    the cluster already has is refused in words."""
    return do_change_cluster(actor, ctx, name, plans.upgrade(version),
                             idempotency_key=idempotency_key)


def do_set_addons(actor: Actor, ctx: TenantContext, name: str, addons: tuple[AddonSpec, ...], *,
                  idempotency_key: str = "") -> Operation:
    """Set the add-ons (the cluster's add-on settings, an operation, the audit entry). The
    same settings again are refused as "nothing to change"."""
    return do_change_cluster(actor, ctx, name, plans.set_addons(addons),
                             idempotency_key=idempotency_key)


def do_set_auto_repair(actor: Actor, ctx: TenantContext, name: str,
                       auto_repair: AutoRepairSpec | None,
                       groups: dict[str, tuple[str, str]] | None = None, *,
                       idempotency_key: str = "") -> Operation:
    """Set node auto-repair (None: the platform's default) and, for the groups named in
    ``groups``, their own (max unhealthy, start-up timeout) overrides: the cluster's rows, an
    update operation, the audit entry. No node is replaced. The same settings again are
    refused as "nothing to change"."""
    return do_change_cluster(actor, ctx, name, plans.set_auto_repair(auto_repair, groups),
                             idempotency_key=idempotency_key)


def do_set_cluster_access(actor: Actor, ctx: TenantContext, name: str,
                          users: tuple[OidcUserSpec, ...], *,
                          idempotency_key: str = "") -> Operation:
    """Choose the members who get into the cluster through single sign-on, each as admin or
    view (owners and admins only): the cluster's access list, an access operation, the audit
    entry. The same list again is refused as "nothing to change"."""
    _require_access_right(ctx)
    return do_change_cluster(actor, ctx, name, plans.set_oidc_users(users),
                             idempotency_key=idempotency_key)


def do_revoke_cluster_access(tenant: Tenant, cluster_id: int, emails: frozenset[str]
                             ) -> Operation | None:
    """Take ``emails`` (people who left the tenant) off the cluster's access list, as the
    system: an access operation and its audit entry, or None when the cluster grants them
    nothing (already revoked, deleted, or being deleted). Safe to repeat.

    Raises the "busy" ``ValidationError`` while another operation runs; the caller tries
    again later. It acts for the tenant whatever its state (a suspended tenant still loses
    access it no longer grants)."""
    actor = Actor.system()
    ctx = TenantContext(tenant, Role.OWNER, None)
    with transaction.atomic():
        _lock_tenant(ctx)
        cluster = (Cluster.objects.for_tenant(tenant).live().select_for_update(no_key=True)
                   .filter(pk=cluster_id).first())
        if cluster is None or cluster.phase == Cluster.Phase.DELETING:
            return None
        users = cluster.to_spec().oidc_users
        kept = tuple(u for u in users if u.email.lower() not in emails)
        if kept == users:
            return None
        return _apply_plan(actor, ctx, cluster, plans.set_oidc_users(
            kept, summary=_("Access of %(who)s removed: no longer a member of the tenant.")
            % {"who": ", ".join(sorted(u.email for u in users if u not in kept))}),
            check_access=False)


def do_lower_cluster_access(tenant: Tenant, cluster_id: int,
                            allowed: dict[str, tuple[str, ...]]) -> Operation | None:
    """Lower the access of the people in ``allowed`` (email, lower case → the cluster roles
    their portal role allows now) to what that allows, as the system: ``admin`` becomes
    ``view`` where only ``view`` is allowed, and a person allowed no role is taken off. An
    access operation and its audit entry, or None when the cluster grants them nothing more
    than allowed (already lowered, deleted, or being deleted). Nobody is ever given more than
    they had. Safe to repeat.

    Raises the "busy" ``ValidationError`` while another operation runs; the caller tries
    again later."""
    actor = Actor.system()
    ctx = TenantContext(tenant, Role.OWNER, None)
    with transaction.atomic():
        _lock_tenant(ctx)
        cluster = (Cluster.objects.for_tenant(tenant).live().select_for_update(no_key=True)
                   .filter(pk=cluster_id).first())
        if cluster is None or cluster.phase == Cluster.Phase.DELETING:
            return None
        users = cluster.to_spec().oidc_users
        kept: list[OidcUserSpec] = []
        lowered: list[str] = []
        removed: list[str] = []
        for user in users:
            roles = allowed.get(user.email.lower())
            if roles is None or user.role in roles:
                kept.append(user)
            elif roles:
                # Only "view" is ever below another role: lower, never raise.
                kept.append(dataclasses.replace(user, role="view"))
                lowered.append(user.email)
            else:
                removed.append(user.email)
        if not lowered and not removed:
            return None
        parts = []
        if lowered:
            parts.append(_("Access of %(who)s lowered to view: their role in the tenant no "
                           "longer allows cluster-admin.") % {"who": ", ".join(sorted(lowered))})
        if removed:
            parts.append(_("Access of %(who)s removed: their role in the tenant no longer "
                           "allows cluster access.") % {"who": ", ".join(sorted(removed))})
        return _apply_plan(actor, ctx, cluster, plans.set_oidc_users(
            tuple(kept), summary=" ".join(parts)), check_access=False)


def do_delete_cluster(actor: Actor, ctx: TenantContext, name: str, *, confirm: str,
                      idempotency_key: str = "") -> Operation:
    """Queue the deletion (phase ``deleting``, a delete operation, the audit entry); the
    platform deletes every persistent volume of the cluster too. A queued change not yet sent is
    cancelled first; a second deletion is refused while one runs. The row stays (``deleted_at``)
    for billing and audit."""
    _require(actor, ctx, Perm.CLUSTERS_DELETE)
    if confirm != name:
        raise ValidationError({"confirm": _("Type the cluster name exactly to confirm.")})
    if not platform_release.current().known:
        raise errors_to_validation_error([platform_release.unknown_release_error()])
    with transaction.atomic():
        cluster = access_cluster(ctx, name, for_update=True)
        active = operations.active_operation(cluster, lock=True)
        if active is not None:
            if active.kind == Operation.Kind.DELETE:
                raise ValidationError(_("This cluster is already being deleted."), code="busy")
            if not active.can_cancel:
                raise ValidationError(_(
                    "Another change to this cluster is being applied by the platform. Wait for "
                    "it to finish, then delete."), code="busy")
            _cancel(actor, active, reason=_("Superseded by the deletion."))
        before = cluster.to_spec()
        cluster.phase = Cluster.Phase.DELETING
        cluster.status_message = _("Queued: waiting for a worker.")
        cluster.save(update_fields=["phase", "status_message", "updated_at"])
        operation = _start_operation(actor, cluster, Operation.Kind.DELETE, before,
                                     before=before, params={},
                                     summary=_("Deletion requested."),
                                     idempotency_key=idempotency_key)
        record(actor, "cluster.delete", cluster, tenant=ctx.tenant,
               changes={"spec": [spec_to_json(before), None]})
    return operation


def access_operation(ctx: TenantContext, operation_id: int, *, for_update: bool = False
                     ) -> Operation:
    qs = Operation.objects.filter(tenant=ctx.tenant, pk=operation_id)
    if for_update:
        qs = qs.select_for_update(no_key=True, of=("self",))
    operation = qs.select_related("cluster").first()
    if operation is None:
        raise Http404
    return operation


def do_retry_operation(actor: Actor, ctx: TenantContext, operation_id: int) -> Operation:
    """Run a failed or cancelled operation again, as a new operation with the same intent
    (the desired rows are set back to it). Only the latest operation can be retried, and only
    while nothing else runs, so a retry cannot be applied twice."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        _lock_tenant(ctx)
        cluster_id = access_operation(ctx, operation_id).cluster_id
        cluster = Cluster.objects.select_for_update(no_key=True).get(pk=cluster_id)
        old = access_operation(ctx, operation_id, for_update=True)
        operations.check_retryable(old)
        if old.kind == Operation.Kind.DELETE:
            _require(actor, ctx, Perm.CLUSTERS_DELETE)
        if cluster.is_deleted:
            raise ValidationError(_("This cluster no longer exists."), code="deleted")
        operations.check_retry(old, cluster)
        after = spec_from_json(old.params["after"])
        if old.kind != Operation.Kind.DELETE:
            errors = check_spec(ctx, after, previous=None if old.kind == Operation.Kind.CREATE
                                else cluster.to_spec(), cluster_id=cluster.pk)
            errors = plans.waived_for_retry(errors)
            if errors:
                raise errors_to_validation_error(errors)
            write_desired_rows(cluster, after)
        cluster.phase = {Operation.Kind.CREATE: Cluster.Phase.CREATING,
                         Operation.Kind.DELETE: Cluster.Phase.DELETING}.get(
            Operation.Kind(old.kind), Cluster.Phase.UPDATING)
        cluster.last_error = ""
        cluster.save(update_fields=["phase", "last_error", "updated_at"])
        before = spec_from_json(old.params["before"]) if old.params.get("before") else None
        kept = {k: v for k, v in old.params.items() if k not in ("before", "after", "retry_of")}
        operation = operations.retry(actor, old, cluster, desired_spec=_manifest(old.kind, after),
                                     params={**kept, **_spec_params(after, before)},
                                     summary=_("Retry of “%(op)s” requested.")
                                     % {"op": old.get_kind_display()})
        _enqueue(operation)
        record(actor, "operation.retry", operation, tenant=ctx.tenant,
               changes={"retry_of": [None, old.pk]})
    return operation


def _cancel(actor: Actor, operation: Operation, *, reason: str) -> None:
    """Mark cancelled and put the desired rows back to what they were before the request.

    The caller holds the cluster row lock, then the operation's (that order, everywhere).
    """
    cluster = (Cluster.objects.select_for_update(no_key=True, of=("self",))
               .select_related("tenant").get(pk=operation.cluster_id))
    operations.cancel(operation, reason, actor_label=actor.label)
    before = operation.params.get("before")
    if operation.kind == Operation.Kind.CREATE:
        cluster.deleted_at = timezone.now()
        cluster.phase = Cluster.Phase.DELETED
        cluster.status_message = _("Cancelled before it reached the platform.")
        cluster.save()
        cluster.node_groups.filter(removed_at__isnull=True).update(removed_at=timezone.now())
    else:
        if before and operation.kind != Operation.Kind.DELETE:
            write_desired_rows(cluster, spec_from_json(before))
        observe.refresh(cluster)
    events.cluster_changed(cluster.pk)


def do_cancel_operation(actor: Actor, ctx: TenantContext, operation_id: int) -> Operation:
    """Cancel an operation the platform has not received yet: the desired rows go back to
    what they were (a cancelled creation forgets the cluster). Refused once a worker may be
    sending it; a queued message that still arrives finds the operation finished and does
    nothing."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        cluster_id = access_operation(ctx, operation_id).cluster_id
        Cluster.objects.select_for_update(no_key=True).filter(pk=cluster_id).first()
        operation = access_operation(ctx, operation_id, for_update=True)
        operations.check_cancellable(operation)
        if operation.kind == Operation.Kind.DELETE:
            _require(actor, ctx, Perm.CLUSTERS_DELETE)
        _cancel(actor, operation, reason=_("Cancelled by %(who)s.") % {"who": actor.label})
        record(actor, "operation.cancel", operation, tenant=ctx.tenant)
    return operation


# --------------------------------------------------------------------------- part A: maintenance
# The maintenance planner (``clusters.maintenance``) releases a scheduled upgrade through the
# same manifest and outbox path as every change.


def manifest_for(kind: str, spec: ClusterSpec) -> dict[str, Any]:
    return _manifest(kind, spec)


def enqueue(operation: Operation) -> None:
    _enqueue(operation)


# --------------------------------------------------------------------------- part B: hibernation


def lock_tenant(ctx: TenantContext) -> None:
    """The tenant's row lock every change takes first (quota and ordering)."""
    _lock_tenant(ctx)


def apply_system_plan(actor: Actor, ctx: TenantContext, cluster: Cluster,
                      planner: plans.Planner, *, waive: Waiver) -> Operation:
    """Apply a change plan the system makes (hibernate, wake) under the tenant and cluster row
    locks the caller holds: the same checks, desired rows, operation and audit entry as a
    person's change, less the refusals ``waive`` drops."""
    return _apply_plan(actor, ctx, cluster, planner, check_access=False, waive=waive)


def _defer_while_hibernating(actor: Actor, ctx: TenantContext, cluster: Cluster,
                             planner: plans.Planner) -> hibernation.Deferred | None:
    """While ``cluster`` hibernates, a change of its node groups (scale, add, remove, a group's
    template) changes what waking restores, checked like a change of the awake cluster; the
    live spec keeps every group at 0. None: not hibernating, or not such a change."""
    held = hibernation.open_hibernation(cluster.pk, lock=True)
    if held is None or (held.state == held.State.WAKING
                        and operations.active_operation(cluster) is not None):
        return None  # a wake under way has read what it restores: the change waits (busy)
    restore = hibernation.restore_spec(cluster, held)
    plan = planner(restore)
    if not plans.is_node_group_change(plan):
        return None
    check_access_change(ctx, plan.before.oidc_users, plan.after.oidc_users)
    errors = plan.refusals() or check_spec(ctx, plan.after, previous=plan.before,
                                           cluster_id=cluster.pk)
    if errors:
        raise errors_to_validation_error(errors)
    return hibernation.record_deferred(actor, cluster, held, plan)
