"""Scoped reads for the cluster pages and their live pushes.

Every read starts from a tenant (``Cluster.objects.for_tenant``), so nothing here can return
another tenant's rows. The list loads in a constant number of queries whatever its length:
clusters with sub-query annotations, then their live node groups, then their latest
operations.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import Count, OuterRef, Prefetch, Q, QuerySet, Subquery

from clusters import presentation
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from clusters.platform import catalog
from portal.models import Tenant

LIST_PAGE_SIZE = 50
TIMELINE_LENGTH = 50
OFFERINGS_CACHE_KEY = "clusters:hidden-offerings:v1"
OFFERINGS_CACHE_SECONDS = 30


def hidden_offerings() -> dict[str, frozenset[str]]:
    """What staff hid from tenants, per ``Offering.Kind`` (cached briefly: forms render the
    pickers many times per page and per live push)."""
    from django.core.cache import cache

    from clusters.models import Offering

    def load() -> dict[str, frozenset[str]]:
        hidden: dict[str, set[str]] = {kind: set() for kind in Offering.Kind.values}
        for kind, name in Offering.objects.filter(hidden=True).values_list("kind", "name"):
            hidden.setdefault(kind, set()).add(name)
        return {kind: frozenset(names) for kind, names in hidden.items()}

    return cache.get_or_set(OFFERINGS_CACHE_KEY, load, OFFERINGS_CACHE_SECONDS)


def _live_groups() -> Prefetch:
    return Prefetch("node_groups", queryset=NodeGroup.objects.filter(removed_at__isnull=True)
                    .order_by("position", "name"), to_attr="groups")


def _annotated(qs: QuerySet[Cluster]) -> QuerySet[Cluster]:
    latest_op = Operation.objects.filter(cluster=OuterRef("pk")).order_by("-created_at", "-id")
    latest_event = ClusterEvent.objects.filter(cluster=OuterRef("pk")).order_by("-at", "-id")
    return qs.annotate(latest_operation_id=Subquery(latest_op.values("id")[:1]),
                       last_change_at=Subquery(latest_event.values("at")[:1]))


@dataclass
class ClusterRow:
    """One line of the list: the cluster, its groups summed up, its latest operation."""

    cluster: Cluster
    groups: list[NodeGroup]
    operation: Operation | None
    last_change_at: datetime | None
    end_of_life_on: date | None = None  # the cluster's version is past its end of life

    @property
    def nodes_ready(self) -> int:
        return sum(g.ready_nodes for g in self.groups)

    @property
    def nodes_observed(self) -> int:
        return sum(g.observed_nodes for g in self.groups)

    @property
    def nodes_min(self) -> int:
        return sum(g.min_replicas for g in self.groups)

    @property
    def nodes_max(self) -> int:
        return sum(g.max_replicas for g in self.groups)

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
        c, op = self.cluster, self.operation
        basis = (c.pk, c.name, c.phase, c.status_message, c.version, c.last_error,
                 tuple((g.min_replicas, g.max_replicas, g.observed_nodes, g.ready_nodes)
                       for g in self.groups),
                 (op.pk, op.state, op.error_class, op.error_message, op.steps) if op else None,
                 self.last_change_at.isoformat() if self.last_change_at else "",
                 self.end_of_life_on.isoformat() if self.end_of_life_on else "")
        return hashlib.sha1(repr(basis).encode(), usedforsecurity=False).hexdigest()

    def matches(self, phase: str = "", version: str = "") -> bool:
        return ((not phase or self.cluster.phase == phase)
                and (not version or self.cluster.version == version))


def _rows(clusters: list[Cluster]) -> list[ClusterRow]:
    from clusters.offerings import end_of_life_versions

    op_ids = [c.latest_operation_id for c in clusters if c.latest_operation_id]
    operations = {op.pk: op for op in Operation.objects.filter(pk__in=op_ids)} if op_ids else {}
    retired = end_of_life_versions() if clusters else {}
    return [ClusterRow(c, list(c.groups), operations.get(c.latest_operation_id),
                       c.last_change_at or c.updated_at,
                       retired[c.version].end_of_life_on if c.version in retired else None)
            for c in clusters]


def cluster_list(tenant: Tenant, *, phase: str = "", version: str = "") -> QuerySet[Cluster]:
    qs = Cluster.objects.for_tenant(tenant).live()
    if phase:
        qs = qs.filter(phase=phase)
    if version:
        qs = qs.filter(version=version)
    return qs.order_by("name")


def cluster_rows_page(tenant: Tenant, *, phase: str = "", version: str = "", page: Any = 1,
                      per_page: int = LIST_PAGE_SIZE, facets: Facets | None = None
                      ) -> tuple[Page, list[ClusterRow]]:
    """One page of the list in three queries (clusters, node groups, operations); the total
    comes from ``facets`` when given, else from a COUNT."""
    paginator = Paginator(cluster_list(tenant, phase=phase, version=version), per_page)
    if facets is not None:
        paginator.count = facets.count(phase=phase, version=version)  # type: ignore[misc]
    current = paginator.get_page(page)
    clusters = list(_annotated(current.object_list).prefetch_related(_live_groups()))
    return current, _rows(clusters)


def cluster_row(cluster_id: int) -> ClusterRow | None:
    """The row of one cluster, deleted ones included (the live list removes those)."""
    cluster = (_annotated(Cluster.objects.filter(pk=cluster_id))
               .prefetch_related(_live_groups()).select_related("tenant").first())
    return _rows([cluster])[0] if cluster is not None else None


def cluster_row_ids(tenant: Tenant, ids: list[int]) -> list[ClusterRow]:
    clusters = list(_annotated(Cluster.objects.for_tenant(tenant).filter(pk__in=ids))
                    .prefetch_related(_live_groups()))
    return _rows(clusters)


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
        times = [t for t in times if t]
        return int(max(times).timestamp() * 1_000_000) if times else 0

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
    from clusters.models import Offering

    target = catalog.next_minor(cluster.version)
    if target in hidden_offerings().get(Offering.Kind.VERSION, frozenset()):
        target = None
    # The end-of-life warning is rendered by ``{% eol_warning %}`` in the page's language.
    return ClusterState(cluster=cluster, groups=groups, operation=operation, events=events,
                        upgrade_target=target,
                        node_counts={g.name: g.observed_nodes for g in groups})


def cluster_state_by_id(cluster_id: int) -> ClusterState | None:
    cluster = Cluster.objects.select_related("tenant").filter(pk=cluster_id).first()
    return cluster_state(cluster) if cluster is not None else None
