"""The live regions of the cluster pages, rendered the same way for the first page load, the
polling fallback, a socket's snapshot and every push (so live and static cannot drift).

A change travels as a small notice (``clusters.web.broadcast``); each web process renders what
its open pages need from the committed rows (``clusters.web.hub``), through the functions
here: a list row per language (``row_pushes``), the detail regions per language and role tier
(``detail_pushes``). The expensive parts are not redone when they cannot have changed: a list
row's HTML is cached under its content's fingerprint, a timeline entry (events never change)
under its id, and the action forms under ``actions_key``; the forms themselves are only built
when they are rendered.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.functional import SimpleLazyObject
from django.utils.safestring import SafeString, mark_safe

from clusters import features, hibernation, hibernation_actions, platform_release
from clusters.events import OfferingsChanged
from clusters.models import ClusterEvent
from clusters.web import forms as cluster_forms
from clusters.web import presentation, queries
from clusters.web.hibernation_forms import HibernationScheduleForm, schedule_initial
from clusters.web.queries import ClusterRow, ClusterState
from cozystack.specjson import spec_to_json
from portal.permissions import Perm
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.web.live")
VIEW, CHANGE, MANAGE = "view", "change", "manage"
TIERS = (VIEW, CHANGE, MANAGE)
DETAIL_TEMPLATE = "clusters/detail.html"
LIST_TEMPLATE = "clusters/list.html"
ROW_TEMPLATE = "clusters/list/_row.html"


def tier_of(ctx: TenantContext) -> str:
    """Which variant of the action buttons a member sees (the permission table decides)."""
    if ctx.can(Perm.CLUSTERS_DELETE):
        return MANAGE
    if ctx.can(Perm.CLUSTERS_CHANGE):
        return CHANGE
    return VIEW


def languages() -> list[str]:
    return [code for code, _name in settings.LANGUAGES]


def pick_language(requested: str | None) -> str:
    return requested if requested in languages() else settings.LANGUAGE_CODE


# --------------------------------------------------------------------------- detail regions


def actions_key(state: ClusterState, tier: str) -> str:
    """Changes exactly when the action forms would render differently, so a push that would
    not change them never disturbs someone typing in them."""
    cluster = state.cluster
    basis = {
        "spec": spec_to_json(cluster.to_spec(state.groups)) if not state.is_deleted else None,
        "busy": state.busy, "phase": cluster.phase, "tier": tier,
        "kubeconfig": cluster.kubeconfig_ready, "target": state.upgrade_target,
        "lang": translation.get_language(),
        "sleep": state.sleep.key if state.sleep else None,
    }
    return hashlib.sha1(json.dumps(basis, sort_keys=True, default=str).encode(),
                        usedforsecurity=False).hexdigest()[:16]


def action_forms(state: ClusterState, bound: dict[str, Any] | None = None,
                 tier: str = CHANGE) -> dict[str, Any]:
    """Action forms with the cluster's current values; ``bound`` replaces some by the forms a
    person just posted (keys: ``scale-<group>``, ``edit-<group>``, ``remove-<group>``,
    ``add``, ``upgrade``, ``addons``, ``repair``, ``access``, ``delete``). Auto-repair and
    access are there where the platform offers them; access for owners and admins only (the
    manage tier)."""
    bound = bound or {}
    cluster = state.cluster
    namespace = cluster.tenant.namespace
    spec = cluster.to_spec(state.groups)
    held = hibernation.open_hibernation(cluster.pk) if state.sleep else None
    if held is not None:  # the group forms show (and change) what waking restores
        spec = hibernation.restore_spec(cluster, held, spec)
    groups = []
    for group in spec.node_groups:
        groups.append({
            "name": group.name,
            "scale": bound.get(f"scale-{group.name}") or cluster_forms.ScaleForm(
                prefix=f"scale-{group.name}", initial={
                    "min_replicas": group.min_replicas, "max_replicas": group.max_replicas}),
            "edit": bound.get(f"edit-{group.name}") or cluster_forms.NodeGroupForm(
                prefix=f"edit-{group.name}", initial=cluster_forms.group_initial(group),
                namespace=namespace),
            "remove": bound.get(f"remove-{group.name}") or cluster_forms.ConfirmForm(
                prefix=f"remove-{group.name}"),
        })
    new_group = cluster_forms.NodeGroupForm(prefix="add", initial=cluster_forms.group_initial(
        cluster_forms.SpecForm._default_group(
            cluster_forms.next_group_name(g.name for g in spec.node_groups), namespace)),
        namespace=namespace)
    new_group.initial["ingress"] = False
    return {
        "groups": groups,
        "add": bound.get("add") or new_group,
        "upgrade": bound.get("upgrade") or cluster_forms.UpgradeForm(
            prefix="upgrade", initial={"version": state.upgrade_target or ""}),
        "addons": bound.get("addons") or cluster_forms.AddonsForm(
            prefix="addon", initial=cluster_forms.addons_initial(spec.addons)),
        "delete": bound.get("delete") or cluster_forms.DeleteForm(prefix="delete"),
        "repair": bound.get("repair") or (cluster_forms.AutoRepairForm(
            prefix="repair", groups=spec.node_groups,
            initial=cluster_forms.auto_repair_form_initial(spec))
            if features.supports(features.AUTO_REPAIR) else None),
        "access": bound.get("access") or (_access_form(state, spec)
                                          if tier == MANAGE else None),
        "hibernation": bound.get("hibernation") or HibernationScheduleForm(
            prefix="hibernation",
            initial=schedule_initial(hibernation_actions.schedule_of(cluster))),
    }


def _access_form(state: ClusterState, spec: Any) -> cluster_forms.AccessForm | None:
    if not features.supports(features.OIDC):
        return None
    members = queries.access_members(state.cluster.tenant)
    return cluster_forms.AccessForm(prefix="access", members=members, granted=spec.oidc_users,
                                    initial=cluster_forms.access_initial(members,
                                                                         spec.oidc_users))


def region_context(state: ClusterState, tier: str, *, oob: bool = False,
                   bound: dict[str, Any] | None = None) -> dict[str, Any]:
    can_change = tier in (CHANGE, MANAGE) and not state.is_deleted
    can_delete = tier == MANAGE and not state.is_deleted
    return {
        "state": state,
        "cluster": state.cluster,
        "tenant_slug": state.cluster.tenant.slug,
        "tier": tier,
        "can_change": can_change,
        "can_delete": can_delete,
        "can_steer": state.operation is not None and presentation.may_steer(
            state.operation, can_change=can_change, can_delete=can_delete),
        "actions_key": actions_key(state, tier),
        # Built when the actions region renders, not for the regions beside it.
        "forms": SimpleLazyObject(lambda: action_forms(state, bound, tier))
        if tier != VIEW and not state.is_deleted else {},
        "offers": offers(),
        "release_known": platform_release.current().known,
        "oob": oob,
    }


def offers() -> dict[str, bool]:
    """Which v1.6 settings the pages show (what the live platform offers)."""
    return {name: features.supports(name) for name in (
        features.DISK_SIZE, features.PER_GROUP_STORAGE_CLASS, features.AUTO_REPAIR,
        features.PER_GROUP_AUTO_REPAIR, features.OIDC)}


COMMON_REGIONS = ("header", "status", "groups", "timeline", "kubeconfig_state")
"""The detail page's live regions that read the same to every role (partials of the page)."""
TIERED_REGIONS = ("operation", "actions")
"""Those that differ by role tier (retry and cancel buttons, the action forms)."""


def render_region(name: str, context: dict[str, Any]) -> str:
    return render_to_string(f"{DETAIL_TEMPLATE}#{name}", context)


def render_detail(state: ClusterState, tier: str) -> str:
    """Every live region of the detail page as out-of-band swaps (snapshot and polling)."""
    return detail_snapshot(state, tier)[0]


def detail_snapshot(state: ClusterState, tier: str) -> tuple[str, str]:
    """Every live region as ``render_detail``, and the ``actions_key`` of the forms in it
    (kept for the pushes that follow: they leave out forms the page already shows)."""
    context = region_context(state, tier, oob=True)
    html = {name: render_region(name, context) for name in (*COMMON_REGIONS, *TIERED_REGIONS)}
    keep_actions(context["actions_key"], html["actions"])
    return "".join(html.values()), context["actions_key"]


# --------------------------------------------------------------------------- list rows


ROW_CACHE_SECONDS = 24 * 3600


def _row_key(row: ClusterRow, tenant_slug: str) -> str:
    return f"clusters:row:{translation.get_language()}:{tenant_slug}:{row.fingerprint}"


def rows_html(rows: list[ClusterRow], tenant_slug: str, *, kept: bool = True) -> list[str]:
    """The list rows' HTML in the active language, from the cache where the same content was
    rendered before (by an earlier page), else rendered now and kept.

    Keys are content fingerprints, so a cached row is never stale; one round trip fetches all.
    A push (``kept=False``) renders its row at a revision no page has read yet: it skips the
    cache's two round trips.
    """
    if not kept:
        return [mark_safe(render_to_string(  # noqa: S308 - our own template's output
            ROW_TEMPLATE, {"row": row, "tenant_slug": tenant_slug, "oob": False}))
            for row in rows]
    keys = [_row_key(row, tenant_slug) for row in rows]
    cached = cache.get_many(keys)
    missing = {}
    result = []
    for key, row in zip(keys, rows, strict=True):
        html = cached.get(key)
        if html is None:
            html = render_to_string(ROW_TEMPLATE,
                                    {"row": row, "tenant_slug": tenant_slug, "oob": False})
            missing[key] = str(html)
        result.append(mark_safe(html))  # noqa: S308 - our own template's output, escaped there
    if missing:
        cache.set_many(missing, ROW_CACHE_SECONDS)
    return result


# --------------------------------------------------------------------------- the list region

LIST_REGION_SECONDS = 60
"""How long a rendered part of a list page may serve further requests. Every change of a
cluster replaces its tenant's generation (``forget_list``) when its push is rendered, and a
staff change of the offerings replaces every tenant's, so this only bounds how far the
month-to-date figures (themselves a snapshot of up to a minute) and a change that bypassed
the pushes can lag."""

_GENERATION_ALL = "clusters:list:gen"


def _generation_key(tenant_id: int) -> str:
    return f"clusters:list:gen:{tenant_id}"


def on_offerings_changed(event: OfferingsChanged) -> None:
    forget_list()  # rows mark versions past their end of life


def forget_list(tenant_id: int | None = None) -> None:
    """The tenant's cached list regions (every tenant's with ``None``) are out of date."""
    cache.set(_generation_key(tenant_id) if tenant_id is not None else _GENERATION_ALL,
              time.time_ns(), None)


def forget_lists(tenant_ids: Iterable[int]) -> None:
    """``forget_list`` for each of these tenants, in one round trip to the cache."""
    now = time.time_ns()
    keys = {_generation_key(tenant_id): now for tenant_id in tenant_ids}
    if keys:
        cache.set_many(keys, None)


def list_fragment(tenant_id: int, view: list[Any], render: Callable[[], str]) -> str:
    """A rendered part of the tenant's list page for ``view`` (what it depends on besides the
    tenant's clusters: fragment, filters, page, role, ...) and the active language: from the
    cache when it was rendered since the last change, else ``render()`` (and kept).

    One round trip reads the generations and the fragment together; a fragment rendered
    under older generations is never served (a change while rendering makes the result miss
    at once, never linger).
    """
    digest = hashlib.sha1(json.dumps([translation.get_language(), *view]).encode(),
                          usedforsecurity=False).hexdigest()
    key = f"clusters:list:{tenant_id}:{digest}"
    found = cache.get_many([_GENERATION_ALL, _generation_key(tenant_id), key])
    generation = (found.get(_GENERATION_ALL, 0), found.get(_generation_key(tenant_id), 0))
    cached = found.get(key)
    if cached is not None and cached[0] == generation:
        return cached[1]
    html = render()
    cache.set(key, (generation, html), LIST_REGION_SECONDS)
    return html


def render_row(row: ClusterRow, tenant_slug: str) -> str:
    """One row as an out-of-band swap (the cached page row, marked to replace its twin)."""
    return as_oob_row(rows_html([row], tenant_slug)[0])


def as_oob_row(html: str) -> str:
    return html.replace('class="cluster-row"', 'class="cluster-row" hx-swap-oob="true"', 1)


# --------------------------------------------------------------------------- rendered parts kept

_K = TypeVar("_K", bound=Hashable)
_V = TypeVar("_V")


class Kept(Generic[_K, _V]):
    """A bounded map of rendered parts that forgets the least recently used first, by their
    total ``weight`` (characters of HTML), shared by the threads of a process."""

    def __init__(self, limit: int, weight: Callable[[_V], int] = lambda _value: 1) -> None:
        self.limit, self.weight = limit, weight
        self._items: OrderedDict[_K, _V] = OrderedDict()
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: _K) -> _V | None:
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: _K, value: _V) -> None:
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._total -= self.weight(old)
            self._items[key] = value
            self._total += self.weight(value)
            while self._total > self.limit and len(self._items) > 1:
                _key, dropped = self._items.popitem(last=False)
                self._total -= self.weight(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._total = 0


_EVENTS: Kept[tuple[int, str], str] = Kept(4_000_000, len)
"""Timeline entries by (event, language): an event never changes once recorded."""
_ACTIONS: Kept[str, str] = Kept(16_000_000, len)
"""The actions region by ``actions_key`` (which names the cluster, tier and language)."""


def event_html(event: ClusterEvent) -> SafeString:
    """One timeline entry in the active language (rendered once per process and language)."""
    key = (event.pk, translation.get_language())
    html = _EVENTS.get(key)
    if html is None:
        html = render_to_string("clusters/detail/_event.html", {"e": event})
        _EVENTS.put(key, html)
    return mark_safe(html)  # noqa: S308 - our own template's output, escaped there


# --------------------------------------------------------------------------- pushes


@dataclass(frozen=True)
class RowPush:
    """A changed cluster as the list pages show it: enough to place it (phase and version for
    the filters, whether it is gone) and the row in each language asked for."""

    cluster_id: int
    tenant_id: int
    revision: int
    phase: str
    version: str
    deleted: bool
    html: dict[str, str]  # language → the row as the page shows it (not out of band)
    _oob: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def oob(self, lang: str) -> str:
        """The row in ``lang`` as an out-of-band swap of the one the page shows."""
        found = self._oob.get(lang)
        if found is None:
            html = self.html.get(lang) or next(iter(self.html.values()), "")
            found = self._oob[lang] = as_oob_row(html)
        return found


def row_pushes(wanted: Mapping[int, Iterable[str]], tenant_slugs: dict[int, str]
               ) -> dict[int, RowPush]:
    """The rows of the ``wanted`` clusters (id → languages) read in one query, each rendered
    once per language by the page's own row renderer (``rows_html``). Only clusters of the
    tenants in ``tenant_slugs`` (id → slug: those the asking pages show) come back."""
    rows = [row for row in queries.cluster_rows_by_id(list(wanted)).values()
            if row.cluster.tenant_id in tenant_slugs]
    html: dict[int, dict[str, str]] = {row.cluster.pk: {} for row in rows}
    for lang in sorted({lang for langs in wanted.values() for lang in langs}):
        asked = [row for row in rows if lang in wanted[row.cluster.pk]]
        by_tenant: dict[int, list[ClusterRow]] = {}
        for row in asked:
            by_tenant.setdefault(row.cluster.tenant_id, []).append(row)
        with translation.override(lang):
            for tenant_id, tenant_rows in by_tenant.items():
                for row, text in zip(tenant_rows, rows_html(
                        tenant_rows, tenant_slugs[tenant_id], kept=False), strict=True):
                    html[row.cluster.pk][lang] = text
    return {row.cluster.pk: RowPush(row.cluster.pk, row.cluster.tenant_id, row.revision,
                                    row.cluster.phase, row.cluster.version, row.deleted,
                                    html[row.cluster.pk])
            for row in rows}


Variant = tuple[str, str]
"""(language, role tier): what a detail page reads differs by these only."""


@dataclass
class DetailPush:
    """A changed cluster as its detail pages show it, for each variant asked: every live
    region but the action forms, and the forms' key with their HTML when a page lacks them."""

    cluster_id: int
    tenant_id: int
    revision: int
    regions: dict[Variant, str] = field(default_factory=dict)
    actions: dict[Variant, tuple[str, str | None]] = field(default_factory=dict)


def detail_pushes(wanted: dict[int, dict[Variant, set[str]]]) -> dict[int, DetailPush]:
    """The detail regions of the ``wanted`` clusters, read in one snapshot: cluster →
    variant → the ``actions_key`` values the pages of that variant already show. The action
    forms are rendered (or taken from those kept) only for a variant where some page shows
    other ones. Whose tenant each cluster belongs to is the caller's to check."""
    pushes = {}
    states = queries.cluster_states_by_id(list(wanted))
    for cluster_id, state in states.items():
        push = pushes[cluster_id] = DetailPush(cluster_id, state.cluster.tenant_id,
                                               state.revision)
        variants = wanted[cluster_id]
        for lang in sorted({lang for lang, _tier in variants}):
            with translation.override(lang):
                tiers = [tier for tier in TIERS if (lang, tier) in variants]
                # The common regions read the same in every tier's context.
                first = region_context(state, tiers[0], oob=True)
                common = "".join(render_region(name, first) for name in COMMON_REGIONS)
                for tier in tiers:
                    context = first if tier == tiers[0] else region_context(state, tier,
                                                                            oob=True)
                    push.regions[(lang, tier)] = common + render_region("operation",
                                                                        context)
                    key = context["actions_key"]
                    html = None
                    if variants[(lang, tier)] - {key}:
                        html = _ACTIONS.get(key)
                        if html is None:
                            html = render_region("actions", context)
                            _ACTIONS.put(key, html)
                    push.actions[(lang, tier)] = (key, html)
    return pushes


def keep_actions(key: str, html: str) -> None:
    """The action forms rendered for a page (its snapshot), kept for the pushes after it."""
    _ACTIONS.put(key, html)
