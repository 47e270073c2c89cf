"""Every write to clusters: create, change, scale, upgrade, add-ons, delete, retry, cancel.

Each action checks the caller's rights, the platform rules (the published schema after chart
defaults), and the tenant quota; then writes the desired rows, one ``Operation`` and the audit
entry in one transaction, and enqueues the work on commit. One operation at a time per cluster:
the database refuses a second one (partial unique index), and the action says so in words.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import broadcast, observe, progress
from clusters.hosts import check_api_host, host_in_use
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation, addons_to_json
from clusters.offerings import check_offered
from clusters.platform import catalog
from clusters.platform.manifests import render_kubernetes
from clusters.platform.rules import FieldError
from clusters.platform.specs import AddonSpec, ClusterSpec, NodeGroupSpec
from clusters.platform.validation import validate_manifest
from clusters.quotas import check_quota
from clusters.schema import platform_schema
from clusters.specjson import spec_from_json, spec_to_json
from portal.audit import Actor, record
from portal.models import Tenant
from portal.permissions import Perm
from portal.tenancy import TenantContext

PORTAL_LABELS = {"app.kubernetes.io/managed-by": "kube-portal"}


def errors_to_validation_error(errors: list[FieldError]) -> ValidationError:
    by_field: dict[str, list[ValidationError]] = {}
    for error in errors:
        by_field.setdefault(error.field or "__all__", []).append(
            ValidationError(error.message, code=error.code))
    return ValidationError(by_field)


def check_spec(ctx: TenantContext, spec: ClusterSpec, *, previous: ClusterSpec | None = None,
               cluster_id: int | None = None) -> list[FieldError]:
    """Every rule a spec must pass before the portal accepts it (platform rules, what staff
    offer, and quota)."""
    errors = validate_manifest(spec, platform_schema(), creating=previous is None,
                               previous=previous)
    errors += check_offered(spec, previous)
    if previous is None:  # the host is chosen at creation and never changes
        errors += check_api_host(ctx.tenant, spec, cluster_id=cluster_id)
    return errors + check_quota(ctx.tenant, spec, cluster_id=cluster_id)


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


def write_desired_rows(cluster: Cluster, spec: ClusterSpec) -> None:
    """Make the desired rows say ``spec``. Groups no longer in it are kept as removed history.

    A group that comes back before the platform removed it (a cancelled or failed removal)
    gets its row back, with the node counts still observed on it.
    """
    cluster.version = spec.version
    cluster.storage_class = spec.storage_class
    cluster.host = spec.host
    cluster.control_plane_replicas = spec.control_plane.replicas
    cluster.control_plane_preset = spec.control_plane.api_server_preset
    cluster.addons = addons_to_json(spec.addons)
    cluster.save()
    existing = {g.name: g for g in cluster.node_groups.filter(removed_at__isnull=True)}
    now = timezone.now()
    for position, group in enumerate(spec.node_groups):
        row = existing.pop(group.name, None) or _returning_group(cluster, group.name) \
            or NodeGroup(cluster=cluster, name=group.name)
        row.removed_at = None
        gpu_models = sorted(set(group.gpus))
        row.position = position
        row.instance_type = group.instance_type
        row.min_replicas = group.min_replicas
        row.max_replicas = group.max_replicas
        row.disk_gib = group.ephemeral_storage_gib
        row.gpu_model = gpu_models[0] if gpu_models else ""
        row.gpus_per_node = len(group.gpus)
        row.roles = list(group.roles)
        row.full_clean(exclude=["cluster"], validate_constraints=False)
        row.save()
    for row in existing.values():
        row.removed_at = now
        row.save(update_fields=["removed_at"])


def _returning_group(cluster: Cluster, name: str) -> NodeGroup | None:
    return (cluster.node_groups.filter(name=name, removed_at__isnull=False)
            .exclude(observed_phase="Deleted").order_by("-removed_at").first())


def _start_operation(actor: Actor, cluster: Cluster, kind: str, spec: ClusterSpec, *,
                     before: ClusterSpec | None, params: dict[str, Any], summary: str,
                     idempotency_key: str = "") -> Operation:
    now = timezone.now()
    manifest = render_kubernetes(spec, labels=PORTAL_LABELS) if kind != Operation.Kind.DELETE \
        else {}
    operation = Operation(
        tenant=cluster.tenant, cluster=cluster, kind=kind, params={
            **params, "before": spec_to_json(before) if before else None,
            "after": spec_to_json(spec)},
        desired_spec=manifest, steps=progress.initial_steps(kind),
        requested_by=actor.user, requested_via=actor.via, created_at=now,
        deadline_at=now + timedelta(seconds=settings.PLATFORM_OPERATION_TIMEOUT),
        idempotency_key=idempotency_key)
    try:
        with transaction.atomic():
            operation.save()
    except IntegrityError:
        raise ValidationError(
            _("Another change to this cluster is still in progress. Wait for it to finish, or "
              "cancel it, then try again."), code="busy") from None
    ClusterEvent.objects.create(
        tenant=cluster.tenant, cluster=cluster, operation=operation, at=now,
        source=ClusterEvent.Source.PORTAL, reason=f"operation.{kind}", message=summary,
        actor_label=actor.label)
    _enqueue_on_commit(operation)
    return operation


def _enqueue_on_commit(operation: Operation) -> None:
    from clusters import tasks

    op_id = operation.pk
    transaction.on_commit(lambda: tasks.apply_operation.delay(op_id))
    broadcast.on_commit(operation.cluster_id)


def do_create_cluster(actor: Actor, ctx: TenantContext, spec: ClusterSpec, *,
                      idempotency_key: str = "") -> Cluster:
    """Record a new cluster (rows for it and its node groups, a create ``Operation``, an
    audit entry) and queue its creation on the platform once the transaction commits.

    Repeating it is refused, not duplicated: a second cluster of the same name fails the
    unique constraint and says so. Quota is checked again under the tenant row lock, so two
    concurrent creates cannot both pass it."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    spec = dataclasses.replace(spec, namespace=ctx.tenant.namespace)
    errors = check_spec(ctx, spec)
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
        raise _lost_race(ctx, spec) from None
    return cluster


def _lost_race(ctx: TenantContext, spec: ClusterSpec) -> ValidationError:
    """Which unique rule a concurrent creation took first: the API host (across tenants) or the
    name (in the tenant). Both checks passed before the insert, so the other one committed."""
    if spec.host and Cluster.objects.live().filter(host=spec.host).exists():
        return errors_to_validation_error([host_in_use(spec.host)])
    return ValidationError({"name": _("A cluster with this name already exists.")},
                           code="duplicate")


def _change(actor: Actor, ctx: TenantContext, name: str, kind: str,
            mutate: Callable[[ClusterSpec], ClusterSpec], *, verb: str, summary: str,
            params: dict[str, Any] | None = None, idempotency_key: str = "") -> Operation:
    """Every change to an existing cluster: under the tenant and cluster row locks, refuse
    while another operation runs (the partial unique index backs this), check the platform
    rules and quota, write the desired rows and the operation, enqueue on commit."""
    _require(actor, ctx, Perm.CLUSTERS_CHANGE)
    with transaction.atomic():
        _lock_tenant(ctx)
        cluster = access_cluster(ctx, name, for_update=True)
        if cluster.phase == Cluster.Phase.DELETING:
            raise ValidationError(_("This cluster is being deleted."), code="deleting")
        if cluster.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
            raise ValidationError(
                _("Another change to this cluster is still in progress. Wait for it to finish, "
                  "or cancel it, then try again."), code="busy")
        before = cluster.to_spec()
        after = mutate(before)
        if after == before:
            raise ValidationError(_("Nothing to change: this is the current configuration."),
                                  code="no_change")
        errors = check_spec(ctx, after, previous=before, cluster_id=cluster.pk)
        if errors:
            raise errors_to_validation_error(errors)
        write_desired_rows(cluster, after)
        cluster.phase = Cluster.Phase.UPDATING
        cluster.status_message = _("Queued: waiting for a worker.")
        cluster.save(update_fields=["phase", "status_message", "updated_at"])
        operation = _start_operation(actor, cluster, kind, after, before=before,
                                     params=params or {}, summary=summary,
                                     idempotency_key=idempotency_key)
        record(actor, verb, cluster, tenant=ctx.tenant,
               changes={"spec": [spec_to_json(before), spec_to_json(after)], **(params or {})})
    return operation


def _replace_group(spec: ClusterSpec, name: str, fn: Callable[[NodeGroupSpec], NodeGroupSpec]
                   ) -> ClusterSpec:
    if spec.group(name) is None:
        raise ValidationError({"node_group": _("This cluster has no node group %(name)s.")
                               % {"name": name}})
    groups = tuple(fn(g) if g.name == name else g for g in spec.node_groups)
    return dataclasses.replace(spec, node_groups=groups)


def do_update_cluster(actor: Actor, ctx: TenantContext, name: str, spec: ClusterSpec, *,
                      idempotency_key: str = "") -> Operation:
    """Bring the cluster to ``spec`` as a whole (the API's PUT): desired rows, an update
    operation, the audit entry. A repeat with the same spec is refused ("nothing to change");
    one change runs at a time per cluster."""
    return _change(actor, ctx, name, Operation.Kind.UPDATE,
                   lambda before: dataclasses.replace(spec, name=before.name,
                                                      namespace=before.namespace),
                   verb="cluster.update", summary=_("Configuration change requested."),
                   idempotency_key=idempotency_key)


def do_scale_node_group(actor: Actor, ctx: TenantContext, name: str, group: str, *,
                        min_replicas: int, max_replicas: int,
                        idempotency_key: str = "") -> Operation:
    """Change a group's autoscaler limits (no node is replaced): the group row, a scale
    operation, the audit entry. Repeating the same limits is refused as "nothing to change"."""
    return _change(
        actor, ctx, name, Operation.Kind.SCALE,
        lambda spec: _replace_group(spec, group, lambda g: dataclasses.replace(
            g, min_replicas=min_replicas, max_replicas=max_replicas)),
        verb="cluster.scale", params={"node_group": group},
        summary=_("Scale of %(group)s to %(min)s–%(max)s nodes requested.")
        % {"group": group, "min": min_replicas, "max": max_replicas},
        idempotency_key=idempotency_key)


def do_update_node_group(actor: Actor, ctx: TenantContext, name: str, group: NodeGroupSpec, *,
                         idempotency_key: str = "") -> Operation:
    """Change a group's template (instance type, disk, roles, GPUs) or limits; a template
    change replaces every node of the group on the platform. Same rules as ``_change``."""
    return _change(
        actor, ctx, name, Operation.Kind.UPDATE,
        lambda spec: _replace_group(spec, group.name, lambda _g: group),
        verb="cluster.node_group.update", params={"node_group": group.name},
        summary=_("Change of node group %(group)s requested.") % {"group": group.name},
        idempotency_key=idempotency_key)


def do_add_node_group(actor: Actor, ctx: TenantContext, name: str, group: NodeGroupSpec, *,
                      idempotency_key: str = "") -> Operation:
    """Add a node group (a new group row, an operation, the audit entry). Adding a name that
    exists is refused."""
    def add(spec: ClusterSpec) -> ClusterSpec:
        if spec.group(group.name) is not None:
            raise ValidationError({"name": _("A node group with this name already exists.")})
        return dataclasses.replace(spec, node_groups=(*spec.node_groups, group))

    return _change(actor, ctx, name, Operation.Kind.ADD_NODE_GROUP, add,
                   verb="cluster.node_group.add", params={"node_group": group.name},
                   summary=_("Node group %(group)s requested.") % {"group": group.name},
                   idempotency_key=idempotency_key)


def do_remove_node_group(actor: Actor, ctx: TenantContext, name: str, group: str, *,
                         idempotency_key: str = "") -> Operation:
    """Remove a node group: its row is kept as history (``removed_at``) and its nodes stay
    metered until the platform has removed them. Removing it again, or the last group, is
    refused."""
    def remove(spec: ClusterSpec) -> ClusterSpec:
        if spec.group(group) is None:
            raise ValidationError({"node_group": _("This cluster has no node group %(name)s.")
                                   % {"name": group}})
        if len(spec.node_groups) == 1:
            raise ValidationError({"node_group": _(
                "A cluster needs at least one node group; delete the cluster instead.")})
        return dataclasses.replace(
            spec, node_groups=tuple(g for g in spec.node_groups if g.name != group))

    return _change(actor, ctx, name, Operation.Kind.REMOVE_NODE_GROUP, remove,
                   verb="cluster.node_group.remove", params={"node_group": group},
                   summary=_("Removal of node group %(group)s requested.") % {"group": group},
                   idempotency_key=idempotency_key)


def do_upgrade_cluster(actor: Actor, ctx: TenantContext, name: str, version: str, *,
                       idempotency_key: str = "") -> Operation:
    """Move to the next minor version only (the platform refuses jumps and downgrades):
    the cluster's version, an upgrade operation, the audit entry. Asking again for the version
    the cluster already has is refused in words."""

    def upgrade(spec: ClusterSpec) -> ClusterSpec:
        target = catalog.next_minor(spec.version)
        if version == spec.version:
            raise ValidationError({"version": _("The cluster already runs %(v)s.")
                                   % {"v": version}})
        if version != target:
            raise ValidationError({"version": _(
                "Upgrades go one minor version at a time: from %(current)s the only target is "
                "%(target)s.") % {"current": spec.version,
                                  "target": target or _("none (this is the newest)")}})
        return dataclasses.replace(spec, version=version)

    return _change(actor, ctx, name, Operation.Kind.UPGRADE, upgrade, verb="cluster.upgrade",
                   params={"version": version},
                   summary=_("Upgrade to %(v)s requested.") % {"v": version},
                   idempotency_key=idempotency_key)


def do_set_addons(actor: Actor, ctx: TenantContext, name: str, addons: tuple[AddonSpec, ...], *,
                  idempotency_key: str = "") -> Operation:
    """Set the add-ons (the cluster's add-on settings, an operation, the audit entry). The
    same settings again are refused as "nothing to change"."""
    return _change(actor, ctx, name, Operation.Kind.ADDONS,
                   lambda spec: dataclasses.replace(spec, addons=tuple(addons)),
                   verb="cluster.addons", summary=_("Add-on change requested."),
                   idempotency_key=idempotency_key)


def do_delete_cluster(actor: Actor, ctx: TenantContext, name: str, *, confirm: str,
                      idempotency_key: str = "") -> Operation:
    """Queue the deletion (phase ``deleting``, a delete operation, the audit entry); the
    platform deletes every persistent volume of the cluster too. A queued change not yet sent is
    cancelled first; a second deletion is refused while one runs. The row stays (``deleted_at``)
    for billing and audit."""
    _require(actor, ctx, Perm.CLUSTERS_DELETE)
    if confirm != name:
        raise ValidationError({"confirm": _("Type the cluster name exactly to confirm.")})
    with transaction.atomic():
        cluster = access_cluster(ctx, name, for_update=True)
        active = cluster.operations.select_for_update(no_key=True).filter(
            state__in=Operation.ACTIVE_STATES).first()
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
        if not old.can_retry:
            raise ValidationError(_("Only a failed or cancelled operation can be retried."),
                                  code="not_retryable")
        if old.kind == Operation.Kind.DELETE:
            _require(actor, ctx, Perm.CLUSTERS_DELETE)
        if cluster.is_deleted:
            raise ValidationError(_("This cluster no longer exists."), code="deleted")
        newer = cluster.operations.filter(created_at__gt=old.created_at).exists()
        if newer:
            raise ValidationError(_("A newer change to this cluster exists; retry that one."),
                                  code="superseded")
        if cluster.operations.filter(state__in=Operation.ACTIVE_STATES).exists():
            raise ValidationError(
                _("Another change to this cluster is still in progress. Wait for it to finish, "
                  "or cancel it, then try again."), code="busy")
        after = spec_from_json(old.params["after"])
        if old.kind != Operation.Kind.DELETE:
            errors = check_spec(ctx, after, previous=None if old.kind == Operation.Kind.CREATE
                                else cluster.to_spec(), cluster_id=cluster.pk)
            errors = [e for e in errors if e.code not in ("immutable", "no_change")]
            if errors:
                raise errors_to_validation_error(errors)
            write_desired_rows(cluster, after)
        cluster.phase = {Operation.Kind.CREATE: Cluster.Phase.CREATING,
                         Operation.Kind.DELETE: Cluster.Phase.DELETING}.get(
            old.kind, Cluster.Phase.UPDATING)
        cluster.last_error = ""
        cluster.save(update_fields=["phase", "last_error", "updated_at"])
        before = spec_from_json(old.params["before"]) if old.params.get("before") else None
        operation = _start_operation(actor, cluster, old.kind, after, before=before,
                                     params={k: v for k, v in old.params.items()
                                             if k not in ("before", "after")} |
                                     {"retry_of": old.pk},
                                     summary=_("Retry of “%(op)s” requested.")
                                     % {"op": old.get_kind_display()})
        record(actor, "operation.retry", operation, tenant=ctx.tenant,
               changes={"retry_of": [None, old.pk]})
    return operation


def _cancel(actor: Actor, operation: Operation, *, reason: str) -> None:
    """Mark cancelled and put the desired rows back to what they were before the request.

    The caller holds the cluster row lock, then the operation's (that order, everywhere).
    """
    cluster = (Cluster.objects.select_for_update(no_key=True, of=("self",))
               .select_related("tenant").get(pk=operation.cluster_id))
    operation.state = Operation.State.CANCELLED
    operation.finished_at = timezone.now()
    operation.error_message = reason
    operation.steps = progress.cancel_steps(operation.steps)
    operation.lease_until = None
    operation.lease_token = ""
    operation.save(update_fields=["state", "finished_at", "error_message", "steps",
                                  "lease_until", "lease_token"])
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
    ClusterEvent.objects.create(
        tenant=cluster.tenant, cluster=cluster, operation=operation,
        source=ClusterEvent.Source.PORTAL, reason="operation.cancelled",
        message=reason, actor_label=actor.label)
    broadcast.on_commit(cluster.pk)


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
        if not operation.can_cancel:
            raise ValidationError(_(
                "This operation can no longer be cancelled: the platform already has the "
                "change. Make a new change to undo it."), code="not_cancellable")
        if operation.kind == Operation.Kind.DELETE:
            _require(actor, ctx, Perm.CLUSTERS_DELETE)
        _cancel(actor, operation, reason=_("Cancelled by %(who)s.") % {"who": actor.label})
        record(actor, "operation.cancel", operation, tenant=ctx.tenant)
    return operation
