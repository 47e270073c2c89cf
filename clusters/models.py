"""Clusters as the portal knows them: what a tenant asked for (desired) and what the platform
reports (observed), the operations that move one towards the other, and the timeline.

A deleted cluster keeps its rows (``deleted_at``): billing and audit need its history.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from cozystack import catalog
from cozystack.specs import (
    AddonSpec,
    AutoRepairSpec,
    ClusterSpec,
    ControlPlaneSpec,
    KubeletSpec,
    NodeGroupSpec,
    OidcUserSpec,
)
from portal.models import Tenant
from portal.validators import validate_visible_text

CLUSTER_NAME_MAX = 42
GROUP_NAME_MAX = 39  # and len(cluster) + len(group) <= 39: checked by the platform rules
cluster_name_validator = RegexValidator(
    r"^[a-z]([-a-z0-9]*[a-z0-9])?$",
    _("Use lowercase letters, digits and dashes; start with a letter and end with a letter or "
      "digit."),
    code="invalid_name",
)
group_name_validator = RegexValidator(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
    _("Use lowercase letters, digits and dashes; start and end with a letter or digit."),
    code="invalid_group_name",
)


HELD_NODE_GROUPS = "_held_node_groups"
"""Where a cluster read for the watcher's batch keeps its node groups (``clusters.observe``):
the same objects every time they are asked for within the batch, changes included."""

class ClusterQuerySet(models.QuerySet["Cluster"]):
    def for_tenant(self, tenant: Tenant) -> ClusterQuerySet:
        return self.filter(tenant=tenant)

    def live(self) -> ClusterQuerySet:
        return self.filter(deleted_at__isnull=True)


class Cluster(models.Model):
    class Phase(models.TextChoices):
        CREATING = "creating", _("Creating")
        UPDATING = "updating", _("Updating")
        RUNNING = "running", _("Running")
        DEGRADED = "degraded", _("Degraded")
        FAILED = "failed", _("Failed")
        DELETING = "deleting", _("Deleting")
        DELETED = "deleted", _("Deleted")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="clusters")
    name = models.CharField(_("name"), max_length=CLUSTER_NAME_MAX,
                            validators=[cluster_name_validator])
    version = models.CharField(_("Kubernetes version"), max_length=8)
    storage_class = models.CharField(_("storage class"), max_length=32,
                                     default=catalog.DEFAULT_STORAGE_CLASS)
    host = models.CharField(_("API host"), max_length=253, blank=True)
    control_plane_replicas = models.PositiveSmallIntegerField(
        _("control-plane replicas"), default=catalog.DEFAULT_CONTROL_PLANE_REPLICAS,
        validators=[MinValueValidator(1), MaxValueValidator(5)])
    # The API server's preset, under the portal's own names (the v1.6 families; a v1.3
    # platform gets the old name of the same size).
    control_plane_preset = models.CharField(_("control-plane size"), max_length=16,
                                            default=catalog.DEFAULT_API_SERVER_PRESET)
    addons = models.JSONField(_("add-ons"), default=dict, blank=True)
    # None: the platform's own auto-repair setting; else {enabled, max_unhealthy,
    # node_startup_timeout} (v1.6).
    auto_repair = models.JSONField(_("auto-repair"), null=True, blank=True)
    # [{email, role}] given their own access to the cluster (v1.6 OIDC), sorted by email.
    oidc_users = models.JSONField(_("cluster access"), default=list, blank=True)

    # Observed state, written by the watcher and the operation poller only.
    phase = models.CharField(max_length=16, choices=Phase.choices, default=Phase.CREATING,
                             db_index=True)
    status_message = models.CharField(max_length=500, blank=True)
    conditions = models.JSONField(default=list, blank=True)
    platform_ready = models.BooleanField(default=False)
    # When the portal saw Ready become True (its own clock): how long the platform has said
    # "applied" without the control plane answering (v1.6).
    ready_since = models.DateTimeField(null=True, blank=True)
    kubeconfig_ready = models.BooleanField(default=False)
    chart_revision = models.CharField(max_length=64, blank=True)
    platform_resource_version = models.CharField(max_length=32, blank=True)
    last_error = models.TextField(blank=True)
    last_observed_at = models.DateTimeField(null=True, blank=True)
    platform_deleted_at = models.DateTimeField(null=True, blank=True)
    # The platform object carries a deletionTimestamp (removal under way, whoever asked).
    platform_terminating = models.BooleanField(default=False)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                   null=True, blank=True, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    deleted_at = models.DateTimeField(null=True, blank=True)

    objects = ClusterQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "name"],
                                    condition=models.Q(deleted_at__isnull=True),
                                    name="cluster_name_unique_per_tenant"),
            # The platform routes API traffic by host name, across every tenant.
            models.UniqueConstraint(
                fields=["host"], condition=models.Q(deleted_at__isnull=True) & ~models.Q(host=""),
                name="cluster_host_unique_live"),
        ]
        indexes = [models.Index(fields=["tenant", "deleted_at"])]

    def __str__(self) -> str:
        return f"{self.tenant.slug}/{self.name}" if self.tenant_id else self.name

    @property
    def namespace(self) -> str:
        return self.tenant.namespace

    @property
    def release_name(self) -> str:
        return f"kubernetes-{self.name}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    def condition(self, kind: str) -> dict[str, Any] | None:
        return next((c for c in self.conditions or [] if c.get("type") == kind), None)

    def live_node_groups(self) -> list[NodeGroup]:
        held = self.__dict__.get(HELD_NODE_GROUPS)
        return [g for g in (held if held is not None else self.node_groups.all())
                if g.removed_at is None]

    def to_spec(self, node_groups: list[NodeGroup] | None = None) -> ClusterSpec:
        groups = node_groups if node_groups is not None else self.live_node_groups()
        return ClusterSpec(
            name=self.name,
            namespace=self.namespace,
            version=self.version,
            storage_class=self.storage_class,
            host=self.host,
            control_plane=ControlPlaneSpec(replicas=self.control_plane_replicas,
                                           api_server_preset=self.control_plane_preset),
            node_groups=tuple(g.to_spec() for g in sorted(groups, key=lambda g: g.position)),
            addons=addons_from_json(self.addons),
            auto_repair=auto_repair_from_json(self.auto_repair),
            oidc_users=oidc_users_from_json(self.oidc_users),
        )


def auto_repair_from_json(data: dict[str, Any] | None) -> AutoRepairSpec | None:
    if not data:
        return None
    default = AutoRepairSpec()
    return AutoRepairSpec(enabled=bool(data.get("enabled", default.enabled)),
                          max_unhealthy=str(data.get("max_unhealthy") or default.max_unhealthy),
                          node_startup_timeout=str(data.get("node_startup_timeout")
                                                   or default.node_startup_timeout))


def auto_repair_to_json(spec: AutoRepairSpec | None) -> dict[str, Any] | None:
    if spec is None:
        return None
    return {"enabled": spec.enabled, "max_unhealthy": spec.max_unhealthy,
            "node_startup_timeout": spec.node_startup_timeout}


def oidc_users_from_json(data: list[dict[str, Any]] | None) -> tuple[OidcUserSpec, ...]:
    return tuple(OidcUserSpec(email=str(u["email"]), role=str(u["role"]))
                 for u in data or () if isinstance(u, dict) and u.get("email"))


def oidc_users_to_json(users: tuple[OidcUserSpec, ...]) -> list[dict[str, str]]:
    return [{"email": u.email, "role": u.role} for u in users]


def addons_from_json(data: dict[str, Any]) -> tuple[AddonSpec, ...]:
    specs = []
    for key, value in sorted((data or {}).items()):
        specs.append(AddonSpec(
            key=key,
            enabled=bool(value.get("enabled", False)),
            values_override=value.get("values_override") or {},
            expose_method=value.get("expose_method") or catalog.DEFAULT_EXPOSE_METHOD,
            hosts=tuple(value.get("hosts") or ()),
        ))
    return tuple(specs)


def addons_to_json(addons: tuple[AddonSpec, ...]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for addon in addons:
        entry: dict[str, Any] = {"enabled": addon.enabled}
        if addon.values_override:
            entry["values_override"] = addon.values_override
        if addon.key == catalog.INGRESS_NGINX:
            entry["expose_method"] = addon.expose_method
            entry["hosts"] = list(addon.hosts)
        data[addon.key] = entry
    return data


class ClusterRevision(models.Model):
    """How many changes of a cluster were published (``clusters.events.cluster_changed``
    counts them in the transaction that makes each one), so whatever shows the cluster can
    tell a newer state from an older one: the live pages ignore a push older than what they
    show.

    A row of its own rather than a column of the cluster: a writer that holds the lock of an
    operation but not its cluster's (a worker backing off) counts its change without taking
    the cluster row's lock, which would invert the order every other writer keeps (cluster
    row first). No foreign key either, for the same reason (its check locks the cluster row).
    """

    cluster = models.OneToOneField(Cluster, primary_key=True, on_delete=models.CASCADE,
                                   db_constraint=False, related_name="+")
    revision = models.PositiveBigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.cluster_id}@{self.revision}"


class NodeGroup(models.Model):
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="node_groups")
    name = models.CharField(_("name"), max_length=GROUP_NAME_MAX,
                            validators=[group_name_validator])
    position = models.PositiveSmallIntegerField(default=0)
    instance_type = models.CharField(_("instance type"), max_length=32)
    min_replicas = models.PositiveIntegerField(_("minimum nodes"))
    max_replicas = models.PositiveIntegerField(_("maximum nodes"))
    disk_gib = models.PositiveIntegerField(_("disk (GiB)"), default=catalog.DEFAULT_DISK_GIB)
    gpu_model = models.CharField(_("GPU model"), max_length=64, blank=True)
    gpus_per_node = models.PositiveSmallIntegerField(_("GPUs per node"), default=0)
    roles = models.JSONField(_("roles"), default=list, blank=True)
    # v1.6 only; empty: the cluster's storage class and auto-repair settings.
    storage_class = models.CharField(_("storage class"), max_length=63, blank=True)
    max_unhealthy = models.CharField(_("auto-repair limit"), max_length=8, blank=True)
    node_startup_timeout = models.CharField(_("node start-up time"), max_length=16, blank=True)
    # {system_reserved_memory: "1Gi", ...}: only what the tenant set (v1.6).
    kubelet = models.JSONField(_("kubelet reservations"), default=dict, blank=True)

    # Observed from the MachineDeployment.
    desired_nodes = models.PositiveIntegerField(default=0)  # spec.replicas (autoscaler target)
    observed_nodes = models.PositiveIntegerField(default=0)  # status.replicas
    ready_nodes = models.PositiveIntegerField(default=0)  # status.readyReplicas
    updated_nodes = models.PositiveIntegerField(default=0)
    observed_phase = models.CharField(max_length=32, blank=True)
    last_observed_at = models.DateTimeField(null=True, blank=True)

    created_at = models.DateTimeField(default=timezone.now)
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "position", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"],
                                    condition=models.Q(removed_at__isnull=True),
                                    name="node_group_name_unique_per_cluster"),
            models.CheckConstraint(condition=models.Q(min_replicas__lte=models.F("max_replicas")),
                                   name="node_group_min_le_max"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name}"

    @property
    def gpus(self) -> tuple[str, ...]:
        return (self.gpu_model,) * self.gpus_per_node if self.gpu_model else ()

    def to_spec(self) -> NodeGroupSpec:
        return NodeGroupSpec(
            name=self.name,
            instance_type=self.instance_type,
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            disk_gib=self.disk_gib,
            roles=tuple(self.roles or ()),
            gpus=self.gpus,
            storage_class=self.storage_class,
            max_unhealthy=self.max_unhealthy,
            node_startup_timeout=self.node_startup_timeout,
            kubelet=KubeletSpec(**(self.kubelet or {})),
        )


class NodePool(models.Model):
    """A worker pool the platform runs for a cluster outside its spec (Cozystack v1.6
    ``KubernetesNodes`` ``<cluster>-<pool>``, PLATFORM-v1.6.md rows 23, 24).

    Observed only, from the ``KubernetesNodes`` object (its size) and its MachineDeployment
    (its nodes): the portal shows it and meters its nodes, and never writes it. It is not a node
    group of the portal: no spec, no scaling, no quota, no change plan ever names it.
    """

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="node_pools")
    name = models.CharField(_("name"), max_length=63)  # the part after "<cluster>-"
    # From the KubernetesNodes object; ``spec_seen`` False until it was read.
    spec_seen = models.BooleanField(default=False)
    instance_type = models.CharField(_("instance type"), max_length=64, blank=True)
    cpu = models.CharField(max_length=20, blank=True)  # a custom size, with memory
    memory = models.CharField(max_length=20, blank=True)
    min_replicas = models.PositiveIntegerField(_("minimum nodes"), default=0)
    max_replicas = models.PositiveIntegerField(_("maximum nodes"), default=0)
    disk_gib = models.PositiveIntegerField(_("disk (GiB)"), default=0)
    gpu_model = models.CharField(_("GPU model"), max_length=100, blank=True)
    gpus_per_node = models.PositiveSmallIntegerField(_("GPUs per node"), default=0)
    # The platform's word when the pool is not Ready (its release failed, it waits…).
    status_message = models.CharField(max_length=500, blank=True)

    # From the MachineDeployment, as for node groups.
    desired_nodes = models.PositiveIntegerField(default=0)
    observed_nodes = models.PositiveIntegerField(default=0)
    ready_nodes = models.PositiveIntegerField(default=0)
    updated_nodes = models.PositiveIntegerField(default=0)
    observed_phase = models.CharField(max_length=32, blank=True)

    first_seen_at = models.DateTimeField(default=timezone.now)
    last_observed_at = models.DateTimeField(null=True, blank=True)
    # The KubernetesNodes object and its machines are gone.
    removed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["cluster", "name"]
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"],
                                    condition=models.Q(removed_at__isnull=True),
                                    name="node_pool_name_unique_per_cluster"),
        ]

    def __str__(self) -> str:
        return f"{self.cluster.name}/{self.name} (pool)"

    @property
    def sized(self) -> bool:
        """What one node of it is, is known (an instance type, or a custom CPU and memory)."""
        return self.spec_seen and bool(self.instance_type or (self.cpu and self.memory))


class Operation(models.Model):
    """One change in flight: queued → running → succeeded / failed / cancelled.

    Its state is written by ``clusters.operations`` only (the state machine and its checks).
    """

    class Kind(models.TextChoices):
        CREATE = "create", _("Create")
        UPDATE = "update", _("Update")
        SCALE = "scale", _("Scale")
        UPGRADE = "upgrade", _("Upgrade")
        ADDONS = "addons", _("Change add-ons")
        ACCESS = "access", _("Change access")
        ADD_NODE_GROUP = "add_node_group", _("Add node group")
        REMOVE_NODE_GROUP = "remove_node_group", _("Remove node group")
        DELETE = "delete", _("Delete")

    class State(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")
        # Waits for its start time (``not_before``): a maintenance window. Not active: it
        # blocks no other change until it is released to ``queued``.
        SCHEDULED = "scheduled", _("Scheduled")

    class ErrorClass(models.TextChoices):
        NONE = "", _("None")
        INVALID_SPEC = "invalid_spec", _("The platform rejected the specification")
        QUOTA = "quota", _("Quota exceeded")
        PLATFORM_UNAVAILABLE = "platform_unavailable", _("Platform unreachable")
        PLATFORM_ERROR = "platform_error", _("Platform error")
        TIMEOUT = "timeout", _("Did not converge in time")
        CONFLICT = "conflict", _("Conflicting change")

    ACTIVE_STATES = (State.QUEUED, State.RUNNING)
    RETRYABLE_STATES = (State.FAILED, State.CANCELLED)

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="operations")
    cluster = models.ForeignKey(Cluster, on_delete=models.PROTECT, related_name="operations")
    kind = models.CharField(max_length=24, choices=Kind.choices)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED,
                             db_index=True)
    params = models.JSONField(default=dict, blank=True)
    desired_spec = models.JSONField(default=dict, blank=True)
    steps = models.JSONField(default=list, blank=True)
    error_class = models.CharField(max_length=24, choices=ErrorClass.choices, blank=True,
                                   default=ErrorClass.NONE)
    error_message = models.TextField(blank=True)
    attempts = models.PositiveIntegerField(default=0)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL,
                                     null=True, blank=True, related_name="+")
    requested_via = models.CharField(max_length=8, default="web")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    deadline_at = models.DateTimeField(null=True, blank=True)
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # A worker holds the operation while it talks to the platform; a dead worker's lease runs out.
    lease_until = models.DateTimeField(null=True, blank=True)
    # Which scheduled attempt may take the lease before it runs out (a retry carries it).
    lease_token = models.CharField(max_length=32, blank=True)
    # Which claim holds the lease (its worker renews it while the task runs: a heartbeat).
    lease_holder = models.CharField(max_length=32, blank=True)
    idempotency_key = models.CharField(max_length=200, blank=True)
    # What the submit found and did on the platform: whether the spec changed there, and the
    # Ready condition it replaced (an equal condition later still describes the old spec).
    submitted_changed = models.BooleanField(default=True)
    baseline_ready = models.JSONField(null=True, blank=True)
    # A scheduled operation starts no earlier than this (its maintenance window).
    not_before = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["cluster"],
                                    condition=models.Q(state__in=["queued", "running"]),
                                    name="one_active_operation_per_cluster"),
            # One operation waiting for a window per cluster (the maintenance planner's).
            models.UniqueConstraint(fields=["cluster"], condition=models.Q(state="scheduled"),
                                    name="one_scheduled_operation_per_cluster"),
        ]
        indexes = [models.Index(fields=["state", "created_at"])]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.cluster.name} ({self.state})"

    @property
    def is_active(self) -> bool:
        return self.state in self.ACTIVE_STATES

    @property
    def can_retry(self) -> bool:
        return self.state in self.RETRYABLE_STATES

    @property
    def in_flight(self) -> bool:
        """A worker holds the lease and may be sending the change right now."""
        return (self.lease_until is not None and self.lease_until >= timezone.now()
                and not self.lease_token)

    @property
    def can_cancel(self) -> bool:
        # Once the platform has the change, cancelling would only hide it: allowed until sent,
        # and never while a worker may be sending it (waiting for a retry is fine).
        return self.is_active and self.submitted_at is None and not self.in_flight

    def step(self, key: str) -> dict[str, Any] | None:
        return next((s for s in self.steps if s["key"] == key), None)


class ClusterEvent(models.Model):
    """The timeline a person reads: what the portal did and what the platform reported."""

    class Source(models.TextChoices):
        PORTAL = "portal", _("Portal")
        PLATFORM = "platform", _("Platform")

    class Severity(models.TextChoices):
        INFO = "info", _("Info")
        WARNING = "warning", _("Warning")
        ERROR = "error", _("Error")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="cluster_events")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="events")
    operation = models.ForeignKey(Operation, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="events")
    at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=8, choices=Source.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices, default=Severity.INFO)
    reason = models.CharField(max_length=64)
    message = models.TextField()
    actor_label = models.CharField(max_length=254, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["cluster", "-at"])]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.reason}: {self.message[:60]}"


class Offering(models.Model):
    """Staff's choices over the platform catalogue: hide an item, or mark a version end-of-life.

    The catalogue itself (instance types, GPU models, versions) comes from the platform; a row
    here only changes what tenants are offered, without editing code. Staff change rows through
    the actions of ``clusters.offerings``, which tell the caches built from them.
    """

    class Kind(models.TextChoices):
        INSTANCE_TYPE = "instance_type", _("Instance type")
        GPU_MODEL = "gpu_model", _("GPU model")
        VERSION = "version", _("Kubernetes version")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    name = models.CharField(max_length=64)
    hidden = models.BooleanField(
        _("hidden from tenants"), default=False,
        help_text=_("Not offered for new clusters or node groups; existing ones keep it."))
    end_of_life_on = models.DateField(
        _("end of life"), null=True, blank=True,
        help_text=_("Versions only: from this date tenants see a warning and an upgrade "
                    "suggestion."))
    note = models.CharField(max_length=300, blank=True, validators=[validate_visible_text])

    class Meta:
        ordering = ["kind", "name"]
        constraints = [models.UniqueConstraint(fields=["kind", "name"], name="offering_unique")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.name}"


class VersionNotice(models.Model):
    """The tenant was told that ``cluster`` runs ``version`` near its end of life: once per
    cluster and version (``clusters.offerings.check_end_of_life``)."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE,
                                related_name="version_notices")
    version = models.CharField(max_length=8)
    end_of_life_on = models.DateField()
    noticed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "version"],
                                               name="version_notice_once")]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.version} (end of life {self.end_of_life_on})"


class OutboxEntry(models.Model):
    """The intent to hand an operation to a worker: written in the transaction that starts the
    operation, relayed to the broker after commit (``clusters.outbox``).

    A pending entry (``sent_at`` empty) is relayed until the broker takes it; a sent one is kept
    a while to show when and how often, then purged. One pending entry per operation and task.
    """

    class Task(models.TextChoices):
        APPLY = "apply", "clusters.apply_operation"
        POLL = "poll", "clusters.poll_operation"

    operation = models.ForeignKey(Operation, on_delete=models.CASCADE, related_name="+")
    task = models.CharField(max_length=8, choices=Task.choices)
    created_at = models.DateTimeField(default=timezone.now)
    # Not before: a refused attempt waits (backoff) before the next.
    due_at = models.DateTimeField(default=timezone.now)
    # Hand-overs tried (the last one succeeded when ``sent_at`` is set).
    tries = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["operation", "task"],
                                    condition=models.Q(sent_at__isnull=True),
                                    name="one_pending_outbox_entry"),
        ]
        indexes = [
            models.Index(fields=["due_at"], condition=models.Q(sent_at__isnull=True),
                         name="outbox_pending_due"),
            models.Index(fields=["sent_at"], name="outbox_sent"),
        ]

    def __str__(self) -> str:
        return f"{self.task} {self.operation_id} ({'sent' if self.sent_at else 'pending'})"


class LeaderTerm(models.Model):
    """The fencing token of a leader-elected role (the watcher): ``epoch`` grows by one each
    time a process takes the leadership. A leader writes only while the row still carries its
    epoch, checked in the transaction that writes, so a deposed leader cannot write.
    """

    name = models.CharField(max_length=64, unique=True)
    epoch = models.BigIntegerField(default=0)
    holder = models.CharField(max_length=200, blank=True)
    taken_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.name} #{self.epoch} ({self.holder})"


class AutomationControl(models.Model):
    """The one switch staff use to pause every automatic action of the lifecycle planner
    (``clusters.lifecycle``): upgrades in maintenance windows, hibernation schedules, expiry.
    One row (``pk=1``); no row means automation runs."""

    paused = models.BooleanField(default=False)
    reason = models.CharField(max_length=200, blank=True)
    changed_by = models.CharField(max_length=254, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("automation control")

    def __str__(self) -> str:
        return "paused" if self.paused else "running"


# --------------------------------------------------------------------------- part A: maintenance
# windows and automatic upgrades (``clusters.maintenance``)

WINDOW_MIN_MINUTES = 60
WINDOW_MAX_MINUTES = 720
WEEKDAY_CHOICES = [(0, _("Monday")), (1, _("Tuesday")), (2, _("Wednesday")), (3, _("Thursday")),
                   (4, _("Friday")), (5, _("Saturday")), (6, _("Sunday"))]


class UpgradePolicy(models.TextChoices):
    MANUAL = "manual", _("Manual")
    BEFORE_END_OF_LIFE = "before_end_of_life", _("Before end of life")
    KEEP_CURRENT = "keep_current", _("Keep current")


class MaintenanceWindow(models.Model):
    """When automatic operations may start on a cluster (``cluster`` set), or the tenant's
    default for its new clusters (``cluster`` empty), with the cluster's upgrade policy.

    The window opens on each of ``weekdays`` (0 Monday … 6 Sunday) at ``start_time`` in
    ``time_zone`` (IANA) and lasts ``duration_minutes``. A cluster without a row follows its
    tenant's default, else the platform's (settings)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE,
                               related_name="maintenance_windows")
    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, null=True, blank=True,
                                   related_name="maintenance_window")
    weekdays = models.JSONField(_("weekdays"), default=list)
    start_time = models.TimeField(_("start time"))
    duration_minutes = models.PositiveSmallIntegerField(
        _("duration (minutes)"),
        validators=[MinValueValidator(WINDOW_MIN_MINUTES), MaxValueValidator(WINDOW_MAX_MINUTES)])
    time_zone = models.CharField(_("time zone"), max_length=64)
    upgrade_policy = models.CharField(_("upgrade policy"), max_length=24,
                                      choices=UpgradePolicy.choices,
                                      default=UpgradePolicy.MANUAL)
    updated_by = models.CharField(max_length=254, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant"], condition=models.Q(cluster__isnull=True),
                                    name="maintenance_default_once_per_tenant"),
            models.CheckConstraint(
                condition=models.Q(duration_minutes__gte=WINDOW_MIN_MINUTES,
                                   duration_minutes__lte=WINDOW_MAX_MINUTES),
                name="maintenance_window_duration_bounded"),
        ]

    def __str__(self) -> str:
        return f"{self.tenant_id}/{self.cluster_id or 'default'} {self.weekdays} {self.start_time}"


class FreezePeriod(models.Model):
    """Staff's platform-wide freeze: no automatic operation starts from ``starts_at`` until
    ``ends_at``."""

    starts_at = models.DateTimeField(_("starts at"))
    ends_at = models.DateTimeField(_("ends at"))
    reason = models.CharField(_("reason"), max_length=200, blank=True,
                              validators=[validate_visible_text])
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["starts_at"]
        verbose_name = _("freeze period")
        constraints = [models.CheckConstraint(condition=models.Q(ends_at__gt=models.F("starts_at")),
                                              name="freeze_period_ends_after_start")]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d %H:%M} – {self.ends_at:%Y-%m-%d %H:%M}"


class UpgradeControl(models.Model):
    """Staff's settings of automatic upgrades, platform-wide. One row (``pk=1``); no row means
    the defaults from settings."""

    max_concurrent_upgrades = models.PositiveIntegerField(
        _("maximum concurrent automatic upgrades"),
        validators=[MinValueValidator(1), MaxValueValidator(1000)])
    end_of_life_lead_days = models.PositiveSmallIntegerField(
        _("upgrade this many days before end of life"),
        validators=[MinValueValidator(1), MaxValueValidator(365)])
    announce_days = models.PositiveSmallIntegerField(
        _("announce this many days ahead"),
        validators=[MinValueValidator(0), MaxValueValidator(30)])
    changed_by = models.CharField(max_length=254, blank=True)
    changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("automatic upgrade settings")

    def __str__(self) -> str:
        return f"max {self.max_concurrent_upgrades}"


class AutomaticUpgrade(models.Model):
    """One upgrade the maintenance planner scheduled: its waiting operation, the window it
    waits for, its announcement (once) and its postponement (once)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE,
                                related_name="automatic_upgrades")
    operation = models.OneToOneField(Operation, on_delete=models.CASCADE,
                                     related_name="automatic_upgrade")
    policy = models.CharField(max_length=24, choices=UpgradePolicy.choices)
    from_version = models.CharField(max_length=8)
    to_version = models.CharField(max_length=8)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    end_of_life_on = models.DateField(null=True, blank=True)
    announced_at = models.DateTimeField(null=True, blank=True)
    postponed_at = models.DateTimeField(null=True, blank=True)
    postponed_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["window_start", "id"]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.from_version}→{self.to_version} {self.window_start}"


# --------------------------------------------------------------------------- part B: hibernation


class HibernationSchedule(models.Model):
    """When a cluster sleeps on its own: time ranges per weekday in an IANA time zone
    (``clusters.hibernation_schedule`` computes them, DST-correct). A range whose end is not
    after its start ends the next day ("20:00–08:00"). The planner acts at each boundary once
    (``handled_until``), so a person who wakes a cluster during a scheduled night keeps it
    awake until the next boundary."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE,
                                   related_name="hibernation_schedule")
    enabled = models.BooleanField(_("enabled"), default=True)
    time_zone = models.CharField(_("time zone"), max_length=64, default="UTC")
    preset = models.CharField(_("preset"), max_length=24, blank=True)
    # [{"day": 0 (Monday)..6, "start": "HH:MM", "end": "HH:MM"}], sorted by day and start.
    ranges = models.JSONField(_("ranges"), default=list, blank=True)
    # The last boundary (sleep or wake) the planner has acted on; none acted on before it.
    handled_until = models.DateTimeField(null=True, blank=True)
    updated_by = models.CharField(max_length=254, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("hibernation schedule")

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.time_zone} ({len(self.ranges or [])} ranges)"


class Hibernation(models.Model):
    """One period a cluster hibernates, from the request to sleep to the request to wake: what
    waking restores (``restore``, the spec of its node groups with their exact min and max) and
    the hours the savings figure counts. Kept after waking (billing reads past periods)."""

    class State(models.TextChoices):
        HIBERNATING = "hibernating", _("Hibernating")
        WAKING = "waking", _("Waking")
        WOKEN = "woken", _("Woken")
        FAILED = "failed", _("Did not hibernate")
        ENDED = "ended", _("Ended with the cluster")

    tenant = models.ForeignKey(Tenant, on_delete=models.PROTECT, related_name="+")
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="hibernations")
    state = models.CharField(max_length=12, choices=State.choices, default=State.HIBERNATING)
    reason = models.CharField(max_length=16, default="manual")  # "manual" or "schedule"
    started_at = models.DateTimeField(default=timezone.now)
    started_by = models.CharField(max_length=254, blank=True)
    # When the wake was asked for: the end of the hours the savings figure counts.
    ended_at = models.DateTimeField(null=True, blank=True)
    woken_by = models.CharField(max_length=254, blank=True)
    woken_at = models.DateTimeField(null=True, blank=True)  # the wake operation succeeded
    # The node groups waking restores: spec_to_json(...)["node_groups"] of the spec to restore.
    restore = models.JSONField(default=list)
    hibernate_operation = models.ForeignKey(Operation, on_delete=models.SET_NULL, null=True,
                                            blank=True, related_name="+")
    wake_operation = models.ForeignKey(Operation, on_delete=models.SET_NULL, null=True,
                                       blank=True, related_name="+")
    wake_attempts = models.PositiveSmallIntegerField(default=0)
    next_wake_try_at = models.DateTimeField(null=True, blank=True)
    staff_alerted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["cluster"],
                                    condition=models.Q(state__in=["hibernating", "waking"]),
                                    name="one_open_hibernation_per_cluster"),
        ]
        indexes = [models.Index(fields=["tenant", "started_at"])]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.state} since {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def is_open(self) -> bool:
        return self.state in (self.State.HIBERNATING, self.State.WAKING)


# --------------------------------------------------------------------------- issue 16, part C:
# expiry of ephemeral clusters and cluster templates.

EXPIRY_MIN_HOURS = 1
EXPIRY_MAX_HOURS = 90 * 24
TEMPLATE_NAME_MAX = 60
TEMPLATE_DESCRIPTION_MAX = 500
TEMPLATES_PER_TENANT_MAX = 50


class ExpiryPolicy(models.Model):
    """A tenant's rule for expiry (set by its owners and admins): every cluster its members
    create must expire, within ``max_hours`` of when the expiry is set or extended."""

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, related_name="expiry_policy")
    max_hours = models.PositiveIntegerField(
        _("maximum expiry (hours)"), null=True, blank=True,
        validators=[MinValueValidator(EXPIRY_MIN_HOURS), MaxValueValidator(EXPIRY_MAX_HOURS)])
    changed_by = models.CharField(max_length=254, blank=True)
    changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = _("expiry policy")
        verbose_name_plural = _("expiry policies")

    def __str__(self) -> str:
        return f"{self.tenant_id}: {self.max_hours or '-'} h"


class ClusterExpiry(models.Model):
    """When a cluster is deleted by itself (``clusters.expiry``), who set it, and whether the
    deletion was started (``expired_at``, with its operation)."""

    cluster = models.OneToOneField(Cluster, on_delete=models.CASCADE, primary_key=True,
                                   related_name="expiry")
    expires_at = models.DateTimeField(_("expires at"), db_index=True)
    set_by = models.CharField(max_length=254, blank=True)
    set_at = models.DateTimeField(default=timezone.now)
    expired_at = models.DateTimeField(null=True, blank=True)
    operation = models.ForeignKey(Operation, on_delete=models.SET_NULL, null=True, blank=True,
                                  related_name="+")

    class Meta:
        verbose_name = _("cluster expiry")
        verbose_name_plural = _("cluster expiries")

    def __str__(self) -> str:
        return f"{self.cluster_id} expires {self.expires_at:%Y-%m-%d %H:%M}"


class ExpiryReminder(models.Model):
    """A reminder of an expiry that went out: once per cluster, expiry time and lead."""

    class Lead(models.IntegerChoices):
        DAY = 24, _("24 hours")
        HOUR = 1, _("1 hour")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE,
                                related_name="expiry_reminders")
    expires_at = models.DateTimeField()
    lead_hours = models.PositiveSmallIntegerField(choices=Lead.choices)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["cluster", "expires_at", "lead_hours"],
                                               name="expiry_reminder_once")]

    def __str__(self) -> str:
        return f"{self.cluster_id} {self.lead_hours} h before {self.expires_at:%Y-%m-%d %H:%M}"


class ClusterTemplate(models.Model):
    """A cluster's configuration saved for reuse by the tenant: the spec without its name and
    API host (``clusters.templates``)."""

    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="cluster_templates")
    name = models.CharField(_("name"), max_length=TEMPLATE_NAME_MAX,
                            validators=[validate_visible_text])
    description = models.CharField(_("description"), max_length=TEMPLATE_DESCRIPTION_MAX,
                                   blank=True, validators=[validate_visible_text])
    spec = models.JSONField(default=dict)
    source_cluster = models.CharField(max_length=CLUSTER_NAME_MAX, blank=True)
    created_by = models.CharField(max_length=254, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "name"],
                                               name="cluster_template_name_unique")]

    def __str__(self) -> str:
        return self.name
