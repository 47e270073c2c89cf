"""Scoped reads for the cluster pages and their live pushes.

Every read starts from a tenant (``Cluster.objects.for_tenant``), so nothing here can return
another tenant's rows. A page of the list is one query, whatever its length: the clusters'
shown columns, each with its live node groups summed up, its latest operation and its last
event fetched by correlated sub-queries (each an index lookup per listed cluster).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar, cast

from django.core.paginator import Page, Paginator
from django.db.models import Count, JSONField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import JSONObject

from billing.pricing import pool_monthly_costs
from billing.queries import MonthToDate, month_to_date
from clusters import offerings, platform_release
from clusters.models import (
    Cluster,
    ClusterEvent,
    ClusterQuerySet,
    NodeGroup,
    NodePool,
    Offering,
    Operation,
)
from clusters.offerings import end_of_life_dates
from clusters.spec_rules import oidc_roles_for
from clusters.web import presentation
from cozystack import catalog
from portal.models import Membership, Tenant

LIST_PAGE_SIZE = 50
TIMELINE_LENGTH = 50
# --------------------------------------------------------------------------- list

_PHASE_LABELS = dict(Cluster.Phase.choices)


@dataclass(frozen=True, slots=True)
class ListedCluster:
    """The columns of a cluster the list shows (and its row fingerprint reads)."""

    pk: int
    name: str
    phase: str
    status_message: str
    version: str
    last_error: str
    updated_at: datetime | None

    def get_phase_display(self) -> str:
        return str(_PHASE_LABELS.get(self.phase, self.phase))


@dataclass(frozen=True, slots=True)
class ListedOperation:
    """What a row shows of a cluster's latest operation; ``steps`` only while it is active
    (the running step's detail can explain a stall)."""

    pk: int
    state: str
    error_class: str
    error_message: str
    steps: list[dict[str, Any]]

    @property
    def is_active(self) -> bool:
        return self.state in Operation.ACTIVE_STATES


@dataclass(frozen=True, slots=True)
class GroupTotals:
    ready: int = 0
    observed: int = 0
    min: int = 0
    max: int = 0


_CLUSTER_COLUMNS = ("pk", "name", "phase", "status_message", "version", "last_error",
                    "updated_at")


def _row_annotations() -> dict[str, Any]:
    """Per cluster: its live node groups summed up, its latest operation (as a JSON object),
    that operation's steps if it is active, and the time of its latest event."""
    groups = (NodeGroup.objects.filter(cluster=OuterRef("pk"), removed_at__isnull=True)
              .order_by().values("cluster")
              .annotate(totals=JSONObject(
                  ready=Sum("ready_nodes"), observed=Sum("observed_nodes"),
                  min=Sum("min_replicas"), max=Sum("max_replicas")))
              .values("totals"))
    latest_op = (Operation.objects.filter(cluster=OuterRef("pk")).order_by("-created_at", "-id")
                 .values(data=JSONObject(id="id", state="state", error_class="error_class",
                                         error_message="error_message"))[:1])
    # At most one operation per cluster is active (a unique constraint), so this is the
    # latest one whenever the latest one is active.
    active_steps = (Operation.objects.filter(cluster=OuterRef("pk"),
                                             state__in=Operation.ACTIVE_STATES)
                    .order_by().values("steps")[:1])
    latest_event = (ClusterEvent.objects.filter(cluster=OuterRef("pk")).order_by("-at", "-id")
                    .values("at")[:1])
    return {"group_totals": Subquery(groups, output_field=JSONField()),
            "latest_operation": Subquery(latest_op, output_field=JSONField()),
            "active_steps": Subquery(active_steps, output_field=JSONField()),
            "last_change_at": Subquery(latest_event)}


_ROW_COLUMNS = (*_CLUSTER_COLUMNS, "group_totals", "latest_operation", "active_steps",
                "last_change_at")


# A row of the list reads the cluster's listed columns; the row of one cluster has the model.
_Listed = TypeVar("_Listed", ListedCluster, Cluster)


@dataclass
class ClusterRow(Generic[_Listed]):
    """One line of the list: the cluster, its groups summed up, its latest operation."""

    cluster: _Listed
    operation: ListedOperation | None
    last_change_at: datetime | None
    groups: GroupTotals = field(default_factory=GroupTotals)
    end_of_life_on: date | None = None  # the cluster's version is past its end of life
    cost_mtd: Decimal | None = None  # this month so far (CHF, before VAT)

    @property
    def nodes_ready(self) -> int:
        return self.groups.ready

    @property
    def nodes_observed(self) -> int:
        return self.groups.observed

    @property
    def nodes_min(self) -> int:
        return self.groups.min

    @property
    def nodes_max(self) -> int:
        return self.groups.max

    @property
    def style(self) -> str:
        return presentation.PHASE_STYLE.get(self.cluster.phase, "idle")

    @property
    def problem(self) -> presentation.Problem | None:
        return presentation.problem_for(self.cluster, self.operation)

    @property
    def stamp(self) -> int:
        """When the shown state was last changed (µs): pushes rendered by different processes
        may arrive out of order, and the page keeps the newest."""
        times = [t for t in (self.cluster.updated_at, self.last_change_at) if t]
        return int(max(times).timestamp() * 1_000_000) if times else 0

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything the row shows changes: its rendered HTML can be cached
        under it (per language) and never go stale."""
        c, op, g = self.cluster, self.operation, self.groups
        basis = (c.pk, c.name, c.phase, c.status_message, c.version, c.last_error,
                 (g.ready, g.observed, g.min, g.max),
                 (op.pk, op.state, op.error_class, op.error_message, op.steps) if op else None,
                 self.last_change_at.isoformat() if self.last_change_at else "",
                 self.end_of_life_on.isoformat() if self.end_of_life_on else "",
                 str(self.cost_mtd))
        return hashlib.sha1(repr(basis).encode(), usedforsecurity=False).hexdigest()

    def matches(self, phase: str = "", version: str = "") -> bool:
        return ((not phase or self.cluster.phase == phase)
                and (not version or self.cluster.version == version))


class _Computed(NamedTuple):
    """A row's computed columns: ``_ROW_COLUMNS`` after the cluster's own."""

    totals: dict[str, int] | None
    latest: dict[str, Any] | None
    steps: list[dict[str, Any]] | None
    last_change_at: datetime | None


def _row(cluster: _Listed, computed: _Computed, retired: dict[str, date],
         costs: MonthToDate | None = None) -> ClusterRow[_Listed]:
    totals, latest, steps, last_change_at = computed
    operation = None
    if latest is not None:
        operation = ListedOperation(latest["id"], latest["state"], latest["error_class"],
                                    latest["error_message"],
                                    (steps or []) if latest["state"] in Operation.ACTIVE_STATES
                                    else [])
    groups = GroupTotals(**{k: v or 0 for k, v in totals.items()}) if totals else GroupTotals()
    return ClusterRow(cluster, operation, last_change_at or cluster.updated_at, groups,
                      retired.get(cluster.version),
                      costs.of(cluster.pk) if costs is not None else None)


def _month_to_date(tenant_id: int) -> MonthToDate:

    return month_to_date(tenant_id)


def _rows(values: list[tuple[Any, ...]], tenant: Tenant) -> list[ClusterRow[ListedCluster]]:

    if not values:
        return []
    retired, costs = end_of_life_dates(), _month_to_date(tenant.pk)
    return [_row(ListedCluster(*v[:7]), _Computed(*v[7:]), retired, costs) for v in values]


def cluster_list(tenant: Tenant, *, phase: str = "", version: str = "",
                 qs: ClusterQuerySet | None = None) -> ClusterQuerySet:
    """The tenant's live clusters by name, narrowed to ``phase`` and ``version`` when given
    (from ``qs`` when given, else from every cluster)."""
    qs = (qs if qs is not None else Cluster.objects.all()).for_tenant(tenant).live()
    if phase:
        qs = qs.filter(phase=phase)
    if version:
        qs = qs.filter(version=version)
    return qs.order_by("name")


@functools.cache
def _listing() -> ClusterQuerySet:
    """Every cluster as the row's columns. Building the sub-queries costs more than running
    them, so this is built once per process and only ever narrowed down (never evaluated)."""
    return cast(ClusterQuerySet, Cluster.objects.annotate(**_row_annotations())
                .values_list(*_ROW_COLUMNS))


def cluster_rows_page(tenant: Tenant, *, phase: str = "", version: str = "", page: Any = 1,
                      per_page: int = LIST_PAGE_SIZE, facets: Facets | None = None
                      ) -> tuple[Page, list[ClusterRow[ListedCluster]]]:
    """One page of the list in one query; the total comes from ``facets`` when given, else
    from a COUNT."""
    paginator = Paginator(cluster_list(tenant, phase=phase, version=version, qs=_listing()),
                          per_page)
    if facets is not None:
        paginator.count = facets.count(phase=phase, version=version)
    current = paginator.get_page(page)
    return current, _rows(list(current.object_list), tenant)  # type: ignore[arg-type]  # as in cluster_row_ids


def cluster_row(cluster_id: int) -> ClusterRow[Cluster] | None:
    """The row of one cluster, deleted ones included (the live list removes those); its
    ``cluster`` is the whole model, with its tenant."""

    cluster = (Cluster.objects.filter(pk=cluster_id).select_related("tenant")
               .annotate(**_row_annotations()).first())
    if cluster is None:
        return None
    computed = _Computed(*(getattr(cluster, name)
                           for name in _ROW_COLUMNS[len(_CLUSTER_COLUMNS):]))
    return _row(cluster, computed, end_of_life_dates(), _month_to_date(cluster.tenant_id))


def cluster_row_ids(tenant: Tenant, ids: list[int]) -> list[ClusterRow[ListedCluster]]:
    return _rows(list(_listing().for_tenant(tenant).filter(pk__in=ids)),  # type: ignore[arg-type]  # _listing() rows are tuples, cast to keep ClusterQuerySet's methods
                 tenant)


@dataclass(frozen=True)
class Facets:
    """How many live clusters per (phase, version): the filters' choices and every count."""

    counts: dict[tuple[str, str], int]

    def count(self, *, phase: str = "", version: str = "") -> int:
        return sum(n for (p, v), n in self.counts.items()
                   if (not phase or p == phase) and (not version or v == version))

    @property
    def versions(self) -> list[str]:
        return sorted({v for _p, v in self.counts},
                      key=lambda v: catalog.parse_version(v) or (0, 0), reverse=True)

    @property
    def total(self) -> int:
        return self.count()


def list_facets(tenant: Tenant) -> Facets:
    """One GROUP BY for the filters and the paginator."""
    rows = (Cluster.objects.for_tenant(tenant).live().values_list("phase", "version")
            .annotate(n=Count("id")).order_by())
    return Facets({(phase, version): n for phase, version, n in rows})


def tenant_summary(tenant: Tenant) -> dict[str, Any]:
    """For the tenant home card: how many clusters, how many need attention."""
    live = Cluster.objects.for_tenant(tenant).live()
    counts = live.aggregate(
        total=Count("id"),
        running=Count("id", filter=Q(phase=Cluster.Phase.RUNNING)),
        failing=Count("id", filter=Q(phase__in=[Cluster.Phase.FAILED, Cluster.Phase.DEGRADED])),
        busy=Count("id", filter=Q(phase__in=[Cluster.Phase.CREATING, Cluster.Phase.UPDATING,
                                             Cluster.Phase.DELETING])))
    return counts


# --------------------------------------------------------------------------- detail


@dataclass
class ClusterState:
    """Everything the detail page (and its live push) shows about one cluster."""

    cluster: Cluster
    groups: list[NodeGroup]
    operation: Operation | None
    events: list[ClusterEvent]
    upgrade_target: str | None = None
    node_counts: dict[str, int] = field(default_factory=dict)
    costs: MonthToDate | None = None  # the tenant's month-to-date snapshot
    # KubernetesNodes pools the platform runs for the cluster outside its spec (read-only),
    # with what each costs per month at its current size (None: not priced).
    pools: list[NodePool] = field(default_factory=list)
    pool_costs: dict[int, Decimal | None] = field(default_factory=dict)

    @property
    def cost_mtd(self) -> Decimal | None:
        return self.costs.of(self.cluster.pk) if self.costs is not None else None

    @property
    def style(self) -> str:
        return presentation.PHASE_STYLE.get(self.cluster.phase, "idle")

    @property
    def stamp(self) -> int:
        """See ``ClusterRow.stamp``: the newest change among the cluster, its latest operation
        and its timeline."""
        op = self.operation
        times = [self.cluster.updated_at, self.events[0].at if self.events else None,
                 *(s.finished_at or s.started_at for s in self.steps)]
        if op is not None:
            times += [op.created_at, op.finished_at]
        known = [t for t in times if t is not None]
        return int(max(known).timestamp() * 1_000_000) if known else 0

    @property
    def problem(self) -> presentation.Problem | None:
        return presentation.problem_for(self.cluster, self.operation)

    @property
    def steps(self) -> list[presentation.StepView]:
        return presentation.steps_of(self.operation) if self.operation else []

    @property
    def elapsed(self) -> str:
        if self.operation is None:
            return ""
        return presentation.duration_words(presentation.elapsed_seconds(self.operation))

    @property
    def busy(self) -> bool:
        return self.operation is not None and self.operation.is_active

    @property
    def is_deleted(self) -> bool:
        return self.cluster.deleted_at is not None

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return list(self.cluster.conditions or [])

    @property
    def nodes_ready(self) -> int:
        return sum(g.ready_nodes for g in self.groups)

    @property
    def nodes_wanted(self) -> int:
        return sum(max(g.min_replicas, g.desired_nodes) for g in self.groups)


def cluster_state(cluster: Cluster) -> ClusterState:
    """Load the detail of ``cluster`` (already scoped by the caller) in three queries."""
    groups = [g for g in NodeGroup.objects.filter(cluster=cluster, removed_at__isnull=True)
              .order_by("position", "name")]
    operation = (Operation.objects.filter(cluster=cluster).select_related("requested_by")
                 .order_by("-created_at", "-id").first())
    events = list(ClusterEvent.objects.filter(cluster=cluster).order_by("-at", "-id")
                  [:TIMELINE_LENGTH])

    pools = list(NodePool.objects.filter(cluster=cluster, removed_at__isnull=True)
                 .order_by("name"))

    target = platform_release.next_version(cluster.version)
    if target in offerings.hidden_offerings().get(Offering.Kind.VERSION, frozenset()):
        target = None
    # The end-of-life warning is rendered by ``{% eol_warning %}`` in the page's language.
    return ClusterState(cluster=cluster, groups=groups, operation=operation, events=events,
                        upgrade_target=target,
                        node_counts={g.name: g.observed_nodes for g in groups},
                        costs=_month_to_date(cluster.tenant_id), pools=pools,
                        pool_costs=pool_monthly_costs(pools) if pools else {})


def cluster_state_by_id(cluster_id: int) -> ClusterState | None:
    cluster = Cluster.objects.select_related("tenant").filter(pk=cluster_id).first()
    return cluster_state(cluster) if cluster is not None else None


# --------------------------------------------------------------------------- access


@dataclass(frozen=True)
class AccessMember:
    """A member of the tenant as the access form offers them: the cluster roles their portal
    role allows (none for billing people, who do not see clusters)."""

    membership_id: int
    email: str
    name: str
    portal_role: str
    roles: tuple[str, ...]

    @property
    def field(self) -> str:
        return f"m{self.membership_id}"


def access_members(tenant: Tenant) -> list[AccessMember]:
    """Every member of the tenant with an email, by email (one query)."""
    rows = (Membership.objects.filter(tenant=tenant).select_related("user")
            .order_by("user__email"))
    return [AccessMember(m.pk, m.user.email.lower(), m.user.get_full_name() or m.user.email,
                         m.role, oidc_roles_for(m.role)) for m in rows if m.user.email]
