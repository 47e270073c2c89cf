"""Scoped reads for the cluster pages and their live pushes.

Every read starts from a tenant (``Cluster.objects.for_tenant``), so nothing here can return
another tenant's rows. A page of the list is one query, whatever its length: the clusters'
shown columns, each with its live node groups summed up, its latest operation and its last
event fetched by correlated sub-queries (each an index lookup per listed cluster).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Generic, NamedTuple, TypeVar, cast

from django.core.paginator import Page, Paginator
from django.db import connection, transaction
from django.db.models import (
    Count,
    F,
    JSONField,
    Model,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Window,
)
from django.db.models.functions import Coalesce, JSONObject, RowNumber

from billing.periods import Period
from billing.pricing import pool_monthly_costs
from billing.queries import MonthToDate, month_to_date
from clusters import hibernation, offerings, platform_release
from clusters.models import (
    Cluster,
    ClusterEvent,
    ClusterQuerySet,
    ClusterRevision,
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
    tenant_id: int
    deleted_at: datetime | None

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
                    "updated_at", "tenant_id", "deleted_at")


def revision_of(cluster: Any = None) -> Coalesce:
    """The cluster's revision (``ClusterRevision``; 0 before its first published change), as an
    annotation of a cluster query (``cluster``: the expression of the cluster's id)."""
    counted = ClusterRevision.objects.filter(cluster=cluster if cluster is not None
                                             else OuterRef("pk")).values("revision")[:1]
    return Coalesce(Subquery(counted), 0)


def _row_annotations() -> dict[str, Any]:
    """Per cluster: its live node groups summed up, its latest operation (as a JSON object),
    that operation's steps if it is active, the time of its latest event and its revision."""
    groups = (NodeGroup.objects.filter(cluster=OuterRef("pk"), removed_at__isnull=True)
              .order_by().values("cluster")
              .annotate(totals=JSONObject(
                  ready=Sum("ready_nodes"), observed=Sum("observed_nodes"),
                  min=Sum("min_replicas"), max=Sum("max_replicas")))
              .values("totals"))
    # An operation waiting for its maintenance window is not the cluster's latest change.
    latest_op = (Operation.objects.filter(cluster=OuterRef("pk"))
                 .exclude(state=Operation.State.SCHEDULED).order_by("-created_at", "-id")
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
            "last_change_at": Subquery(latest_event),
            "revision": revision_of()}


_ROW_COLUMNS = (*_CLUSTER_COLUMNS, "group_totals", "latest_operation", "active_steps",
                "last_change_at", "revision")


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
    revision: int = 0  # the cluster's ``ClusterRevision`` when the row was read
    sleep: hibernation.Badge | None = None  # "Hibernating since … · wakes at …"

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
        """The revision the row shows: pushes, polls and snapshots may reach a page in any
        order, and the page keeps the newest (``live.js``)."""
        return self.revision

    @property
    def deleted(self) -> bool:
        return self.cluster.deleted_at is not None or self.cluster.phase == Cluster.Phase.DELETED

    @property
    def fingerprint(self) -> str:
        """Changes whenever anything the row shows changes: its rendered HTML can be cached
        under it (per language) and never go stale."""
        c, op, g = self.cluster, self.operation, self.groups
        basis = (c.pk, self.revision, c.name, c.phase, c.status_message, c.version, c.last_error,
                 (g.ready, g.observed, g.min, g.max),
                 (op.pk, op.state, op.error_class, op.error_message, op.steps) if op else None,
                 self.last_change_at.isoformat() if self.last_change_at else "",
                 self.end_of_life_on.isoformat() if self.end_of_life_on else "",
                 str(self.cost_mtd), self.sleep.key if self.sleep else None)
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
    revision: int


def _row(cluster: _Listed, computed: _Computed, retired: dict[str, date],
         costs: MonthToDate | None = None) -> ClusterRow[_Listed]:
    totals, latest, steps, last_change_at, revision = computed
    operation = None
    if latest is not None:
        operation = ListedOperation(latest["id"], latest["state"], latest["error_class"],
                                    latest["error_message"],
                                    (steps or []) if latest["state"] in Operation.ACTIVE_STATES
                                    else [])
    groups = GroupTotals(**{k: v or 0 for k, v in totals.items()}) if totals else GroupTotals()
    return ClusterRow(cluster, operation, last_change_at or cluster.updated_at, groups,
                      retired.get(cluster.version),
                      costs.of(cluster.pk) if costs is not None else None, revision)


def _month_to_date(tenant_id: int) -> MonthToDate:

    return month_to_date(tenant_id)


def _rows(values: list[tuple[Any, ...]], tenant: Tenant) -> list[ClusterRow[ListedCluster]]:

    if not values:
        return []
    retired, costs = end_of_life_dates(), _month_to_date(tenant.pk)
    return _with_sleep([_row(ListedCluster(*v[:_LISTED]), _Computed(*v[_LISTED:]), retired,
                             costs) for v in values])


def _with_sleep(rows: list[ClusterRow[_Listed]]) -> list[ClusterRow[_Listed]]:
    """The hibernation badge of each row that hibernates (one query for them all)."""
    found = hibernation.badges(row.cluster.pk for row in rows)
    for row in rows:
        row.sleep = found.get(row.cluster.pk)
    return rows


_LISTED = len(_CLUSTER_COLUMNS)


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
    return _with_sleep([_row(cluster, computed, end_of_life_dates(),
                             _month_to_date(cluster.tenant_id))])[0]


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
    revision: int = 0  # the cluster's ``ClusterRevision`` when the state was read
    # KubernetesNodes pools the platform runs for the cluster outside its spec (read-only),
    # with what each costs per month at its current size (None: not priced).
    pools: list[NodePool] = field(default_factory=list)
    pool_costs: dict[int, Decimal | None] = field(default_factory=dict)
    sleep: hibernation.Badge | None = None  # "Hibernating since … · wakes at …"
    # Whether it hibernated this month (None: not read; the page then asks billing).
    slept_this_month: bool | None = None

    @property
    def cost_mtd(self) -> Decimal | None:
        return self.costs.of(self.cluster.pk) if self.costs is not None else None

    @property
    def style(self) -> str:
        return presentation.PHASE_STYLE.get(self.cluster.phase, "idle")

    @property
    def stamp(self) -> int:
        """The revision the regions show (see ``ClusterRow.stamp``)."""
        return self.revision

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
    """Load the detail of ``cluster`` (already scoped by the caller) in four queries.

    The revision is read first: the rest is then at least as new as the revision says (a
    page may take it for an older state, never the other way round)."""
    revision = (ClusterRevision.objects.filter(cluster_id=cluster.pk)
                .values_list("revision", flat=True).first()) or 0
    groups = [g for g in NodeGroup.objects.filter(cluster=cluster, removed_at__isnull=True)
              .order_by("position", "name")]
    operation = (Operation.objects.filter(cluster=cluster).select_related("requested_by")
                 .exclude(state=Operation.State.SCHEDULED)
                 .order_by("-created_at", "-id").first())
    events = list(ClusterEvent.objects.filter(cluster=cluster).order_by("-at", "-id")
                  [:TIMELINE_LENGTH])
    return _state(cluster, groups, operation, events, revision)


def _state(cluster: Cluster, groups: list[NodeGroup], operation: Operation | None,
           events: list[ClusterEvent], revision: int, *, pools: list[NodePool] | None = None,
           sleep: hibernation.Badge | None | bool = False,
           slept_this_month: bool | None = None) -> ClusterState:
    """The state from what was read; ``pools`` and ``sleep`` (the badge, or None for none)
    are read here when the caller did not read them with the rest."""
    if pools is None:
        pools = list(NodePool.objects.filter(cluster=cluster, removed_at__isnull=True)
                     .order_by("name"))
    if sleep is False:
        sleep = hibernation.badges([cluster.pk]).get(cluster.pk)
    target = platform_release.next_version(cluster.version)
    if target in offerings.hidden_offerings().get(Offering.Kind.VERSION, frozenset()):
        target = None
    # The end-of-life warning is rendered by ``{% eol_warning %}`` in the page's language.
    return ClusterState(cluster=cluster, groups=groups, operation=operation, events=events,
                        upgrade_target=target,
                        node_counts={g.name: g.observed_nodes for g in groups},
                        costs=_month_to_date(cluster.tenant_id), revision=revision,
                        pools=pools, pool_costs=pool_monthly_costs(pools) if pools else {},
                        sleep=sleep if isinstance(sleep, hibernation.Badge) else None,
                        slept_this_month=slept_this_month)


def cluster_state_by_id(cluster_id: int) -> ClusterState | None:
    return cluster_states_by_id([cluster_id]).get(cluster_id)


# --------------------------------------------------------------------------- live reads
#
# What the live pushes read: many clusters at once, each a row of the list or the state of a
# detail page, in one snapshot. The queries are the ORM's, compiled once per process and
# size (building and compiling them costs several times more than running them).


@contextmanager
def snapshot() -> Iterator[None]:
    """Read in one snapshot of the database (PostgreSQL: a read-only REPEATABLE READ
    transaction), so that a revision read with the state it labels is that state's (inside a
    transaction already: that one's)."""
    outer = connection.in_atomic_block
    with transaction.atomic():
        if connection.vendor == "postgresql" and not outer:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


_M = TypeVar("_M", bound=Model)


class Prepared:
    """An ORM query of some ids, compiled once per process (and per power-of-two number of
    ids; the list is padded by repeating its last id) and then run with other ids.

    ``build(ids)`` returns the queryset; its ``values_list`` columns come back as tuples,
    converted as the ORM converts them (JSON, dates). Compiled per thread: a compiler keeps
    the connection it compiled for.
    """

    _FIRST = -(10 ** 15)  # stand-in ids, found again among the compiled parameters

    def __init__(self, build: Callable[[list[int]], QuerySet[Any]]) -> None:
        self.build = build
        self._local = threading.local()

    def _compiled(self, size: int) -> tuple[str, list[Any], list[int], Any, Any]:
        cache: dict[int, tuple[str, list[Any], list[int], Any, Any]] = \
            self._local.__dict__.setdefault("compiled", {})
        found = cache.get(size)
        if found is None:
            stand_ins = [self._FIRST - i for i in range(size)]
            compiler = self.build(stand_ins).query.get_compiler(using=connection.alias)
            sql, params = compiler.as_sql()
            where = {value: i for i, value in enumerate(stand_ins)}
            slots = [-1] * size
            for position, param in enumerate(params):
                if type(param) is int and param in where:
                    slots[where[param]] = position
            if -1 in slots:
                raise RuntimeError("an id of the prepared query was not found among its "
                                   "parameters")
            fields = [expression for expression, _sql, _alias
                      in compiler.select[:compiler.col_count]]
            found = cache[size] = (sql, list(params), slots, compiler,
                                   compiler.get_converters(fields))
        return found

    def statement(self, ids: Sequence[int]) -> tuple[str, list[Any]]:
        """The SQL and parameters for ``ids`` (at least one)."""
        size = 1 << (len(ids) - 1).bit_length()
        sql, params, slots, _compiler, _converters = self._compiled(size)
        params = list(params)
        padded = [*ids, *[ids[-1]] * (size - len(ids))]
        for slot, value in zip(slots, padded, strict=True):
            params[slot] = value
        return sql, params

    def converted(self, ids: Sequence[int], rows: Iterable[Any]) -> list[tuple[Any, ...]]:
        """Rows of ``statement(ids)`` as the ORM would have converted them."""
        size = 1 << (len(ids) - 1).bit_length()
        *_sql, compiler, converters = self._compiled(size)
        if converters:
            rows = compiler.apply_converters(map(list, rows), converters)
        return [tuple(row) for row in rows]

    def rows(self, ids: Sequence[int]) -> list[tuple[Any, ...]]:
        if not ids:
            return []
        sql, params = self.statement(ids)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return self.converted(ids, cursor.fetchall())

    def objects(self, model: type[_M], ids: Sequence[int]) -> list[_M]:
        """The rows as ``model`` instances (the query lists ``attnames(model)``)."""
        return as_objects(model, self.rows(ids))


def as_objects(model: type[_M], rows: list[tuple[Any, ...]]) -> list[_M]:
    names = attnames(model)
    return [model.from_db(connection.alias, names, row) for row in rows]


def read_together(parts: list[tuple[Prepared, Sequence[int]]]) -> list[list[tuple[Any, ...]]]:
    """The rows of several prepared queries read in one snapshot of the database.

    On PostgreSQL outside any transaction, in one round trip: the statements go together,
    between the ``BEGIN`` of a read-only REPEATABLE READ transaction and its ``COMMIT`` (the
    connection binds parameters on the client, so one execution may hold several statements).
    Elsewhere, one after the other in ``snapshot()``.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        with snapshot():
            return [prepared.rows(ids) if ids else [] for prepared, ids in parts]
    statements = [prepared.statement(ids) for prepared, ids in parts if ids]
    sql = "; ".join(["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
                     *(statement for statement, _params in statements), "COMMIT"])
    params = [param for _statement, statement_params in statements
              for param in statement_params]
    results: list[list[Any]] = []
    connection.ensure_connection()
    with connection.cursor() as cursor:
        try:
            cursor.execute(sql, params)
            while True:
                if cursor.description is not None:
                    results.append(cursor.fetchall())
                if not cursor.nextset():
                    break
        except BaseException:
            with contextlib.suppress(Exception):
                cursor.execute("ROLLBACK")
            raise
    found = iter(results)
    return [prepared.converted(ids, next(found)) if ids else [] for prepared, ids in parts]


@functools.cache
def attnames(model: type[Model]) -> list[str]:
    return [f.attname for f in model._meta.concrete_fields]


_ROWS = Prepared(lambda ids: _listing().filter(pk__in=ids).order_by())
_BADGES = Prepared(hibernation.badge_rows)


def cluster_rows_by_id(ids: Sequence[int]) -> dict[int, ClusterRow[ListedCluster]]:
    """The list rows of these clusters (deleted ones too: the live list removes them), each
    with its revision, read in one query. Whose tenant each belongs to is the caller's to
    check (``row.cluster.tenant_id``)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    values, sleeping = read_together([(_ROWS, ids), (_BADGES, ids)])
    badges = hibernation.badges_from_rows(sleeping)
    retired = end_of_life_dates()
    costs = {tenant_id: _month_to_date(tenant_id)
             for tenant_id in {v[_CLUSTER_COLUMNS.index("tenant_id")] for v in values}}
    rows = {}
    for v in values:
        listed = ListedCluster(*v[:_LISTED])
        row = rows[listed.pk] = _row(listed, _Computed(*v[_LISTED:]), retired,
                                     costs[listed.tenant_id])
        row.sleep = badges.get(listed.pk)
    return rows


_NOTICES = Prepared(lambda ids: Cluster.objects.filter(pk__in=ids).order_by()
                    .annotate(revision_=revision_of()).values_list("pk", "tenant_id", "revision_"))


def tenants_and_revisions(ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Cluster id → (its tenant's id, its revision), in one small query."""
    return {pk: (tenant_id, revision or 0)
            for pk, tenant_id, revision in _NOTICES.rows(sorted(set(ids)))}


_STATE_CLUSTERS = Prepared(lambda ids: Cluster.objects.filter(pk__in=ids).order_by()
                           .annotate(revision_=revision_of())
                           .values_list(*attnames(Cluster), "revision_",
                                        *(f"tenant__{name}" for name in attnames(Tenant))))
_STATE_GROUPS = Prepared(lambda ids: NodeGroup.objects
                         .filter(cluster_id__in=ids, removed_at__isnull=True)
                         .order_by("cluster_id", "position", "name")
                         .values_list(*attnames(NodeGroup)))
# The latest operation of each cluster, with the email of whoever asked for it.
_STATE_OPERATIONS = Prepared(lambda ids: Operation.objects.filter(cluster_id__in=ids)
                             .exclude(state=Operation.State.SCHEDULED)
                             .annotate(latest=Window(RowNumber(), partition_by=F("cluster_id"),
                                                     order_by=[F("created_at").desc(),
                                                               F("id").desc()]))
                             .filter(latest=1).order_by()
                             .values_list(*attnames(Operation), "requested_by__email"))
_STATE_EVENTS = Prepared(lambda ids: ClusterEvent.objects.filter(cluster_id__in=ids)
                         .annotate(newest=Window(RowNumber(), partition_by=F("cluster_id"),
                                                 order_by=[F("at").desc(), F("id").desc()]))
                         .filter(newest__lte=TIMELINE_LENGTH).order_by("cluster_id", "newest")
                         .values_list(*attnames(ClusterEvent)))
_STATE_POOLS = Prepared(lambda ids: NodePool.objects
                        .filter(cluster_id__in=ids, removed_at__isnull=True)
                        .order_by("cluster_id", "name").values_list(*attnames(NodePool)))
_STATE_SLEEPS = Prepared(hibernation.sleep_rows)


def cluster_states_by_id(ids: Sequence[int]) -> dict[int, ClusterState]:
    """The detail states of these clusters (deleted ones too), read in one snapshot (so each
    state is exactly the one its revision labels) and, on PostgreSQL, in one round trip
    however many they are. Whose tenant each belongs to is the caller's to check."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    found, groups, operations, events, pools, sleeping, sleeps = read_together([
        (_STATE_CLUSTERS, ids), (_STATE_GROUPS, ids), (_STATE_OPERATIONS, ids),
        (_STATE_EVENTS, ids), (_STATE_POOLS, ids), (_BADGES, ids), (_STATE_SLEEPS, ids)])
    names, tenant_names = attnames(Cluster), attnames(Tenant)
    tenant_field = Cluster._meta.get_field("tenant")
    clusters: dict[int, tuple[Cluster, int]] = {}
    for row in found:
        cluster = Cluster.from_db(connection.alias, names, row[:len(names)])
        tenant = Tenant.from_db(connection.alias, tenant_names, row[len(names) + 1:])
        tenant_field.set_cached_value(cluster, tenant)
        clusters[cluster.pk] = (cluster, row[len(names)] or 0)
    groups_of: dict[int, list[NodeGroup]] = {}
    for group in as_objects(NodeGroup, groups):
        groups_of.setdefault(group.cluster_id, []).append(group)
    events_of: dict[int, list[ClusterEvent]] = {}
    for event in as_objects(ClusterEvent, events):
        events_of.setdefault(event.cluster_id, []).append(event)
    pools_of: dict[int, list[NodePool]] = {}
    for pool in as_objects(NodePool, pools):
        pools_of.setdefault(pool.cluster_id, []).append(pool)
    operation_of = dict(_operation(row) for row in operations)
    badges = hibernation.badges_from_rows(sleeping)
    slept = hibernation.slept_since(sleeps, Period.current().start_at)
    return {pk: _state(cluster, groups_of.get(pk, []), operation_of.get(pk),
                       events_of.get(pk, []), revision, pools=pools_of.get(pk, []),
                       sleep=badges.get(pk), slept_this_month=pk in slept)
            for pk, (cluster, revision) in clusters.items()}


def _operation(row: tuple[Any, ...]) -> tuple[int, Operation]:
    """An operation of ``_STATE_OPERATIONS`` with the one field of its requester pages read
    (the email) in place, so reading it makes no query."""
    operation = Operation.from_db(connection.alias, attnames(Operation), row[:-1])
    requester = None
    if operation.requested_by_id is not None:
        user_model = Operation._meta.get_field("requested_by").related_model
        requester = user_model.from_db(
            connection.alias, ["id", "email"], (operation.requested_by_id, row[-1]))
    Operation._meta.get_field("requested_by").set_cached_value(operation, requester)
    return operation.cluster_id, operation


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
