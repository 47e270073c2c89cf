"""What a live page receives when a cluster changes, rendered once per change.

``render_cluster_messages`` runs after commit in whichever process made the change (worker,
watcher, web). It renders the page regions a single time per language and per role tier (the
action buttons differ by role), never per socket, and puts the HTML in the channel-layer
message; consumers only pick their variant and forward it. 1,000 open pages cost one render.

The detail regions are far dearer than a list row (every action form, per language and tier),
and most clusters have no detail page open. So an open detail page is registered in the cache
(``DetailPresence``) and the detail regions are rendered only for the clusters, languages and
tiers that have one. A page that opens in between loses nothing: it registers before it reads
its snapshot, so a change it was not rendered for is already in that snapshot.

The same partials render the first page load, the polling fallback and these pushes, so the
three can never drift.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.safestring import mark_safe

from clusters import features, platform_release
from clusters.events import OfferingsChanged
from clusters.models import Cluster
from clusters.web import forms as cluster_forms
from clusters.web import presentation, queries
from clusters.web.groups import cluster_group, tenant_group
from clusters.web.queries import ClusterRow, ClusterState, cluster_row, cluster_state_by_id
from cozystack.specjson import spec_to_json
from portal.permissions import Perm
from portal.tenancy import TenantContext

logger = logging.getLogger("clusters.web.live")
VIEW, CHANGE, MANAGE = "view", "change", "manage"
TIERS = (VIEW, CHANGE, MANAGE)
DETAIL_TEMPLATE = "clusters/detail.html"
LIST_TEMPLATE = "clusters/list.html"


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
        "forms": action_forms(state, bound, tier) if tier != VIEW and not state.is_deleted
        else {},
        "offers": offers(),
        "release_known": platform_release.current().known,
        "oob": oob,
    }


def offers() -> dict[str, bool]:
    """Which v1.6 settings the pages show (what the live platform offers)."""
    return {name: features.supports(name) for name in (
        features.DISK_SIZE, features.PER_GROUP_STORAGE_CLASS, features.AUTO_REPAIR,
        features.PER_GROUP_AUTO_REPAIR, features.OIDC)}


def render_detail(state: ClusterState, tier: str) -> str:
    """Every live region of the detail page as out-of-band swaps (snapshot and polling)."""
    context = region_context(state, tier, oob=True)
    return (render_to_string(f"{DETAIL_TEMPLATE}#live_common", context)
            + render_to_string(f"{DETAIL_TEMPLATE}#live_tiered", context))


def _detail_variants(state: ClusterState,
                     viewers: set[tuple[str, str]]) -> dict[str, dict[str, str]]:
    """The regions for each (language, tier) in ``viewers``: ``{lang: {"common", tier...}}``."""
    variants: dict[str, dict[str, str]] = {}
    for lang in sorted({lang for lang, _tier in viewers}):
        tiers = [tier for tier in TIERS if (lang, tier) in viewers]
        with translation.override(lang):
            common = render_to_string(f"{DETAIL_TEMPLATE}#live_common",
                                      region_context(state, VIEW, oob=True))
            tiered = {tier: render_to_string(f"{DETAIL_TEMPLATE}#live_tiered",
                                             region_context(state, tier, oob=True))
                      for tier in tiers}
        variants[lang] = {"common": common, **tiered}
    return variants


# --------------------------------------------------------------------------- open detail pages


PRESENCE_SECONDS = 30.0
"""Open detail pages count in time slots of this length: a page beats at least once per slot
and counts in the slot of its beat and the next one, so a page whose process died stops
counting within two slots (the cache keys expire a slot later), with no decrement needed."""


def _clock() -> float:
    return time.time()


def _slot(now: float) -> int:
    return math.floor(now / PRESENCE_SECONDS)


def _presence_timeout() -> int:
    return max(1, math.ceil(3 * PRESENCE_SECONDS))


def _presence_key(cluster_id: int, lang: str, tier: str, slot: int) -> str:
    return f"clusters:detail-open:{cluster_id}:{lang}:{tier}:{slot}"


class DetailPresence:
    """One open detail page in the registry: ``beat()`` on connect and then more often than
    every ``PRESENCE_SECONDS`` (so that it beats in every slot), ``leave()`` on disconnect.

    Each slot holds a counter per cluster, language and tier; a page adds itself once to the
    counter of each slot it beats in and takes itself off the counters that still count when
    it leaves, so closing the last page stops the rendering at once.
    """

    def __init__(self, cluster_id: int, lang: str, tier: str) -> None:
        self.cluster_id, self.lang, self.tier = cluster_id, lang, tier
        self.counted: set[int] = set()
        self.left = False
        # A heartbeat still running in its thread must not count the page again after it left.
        self._lock = threading.Lock()

    def due(self) -> bool:
        """Whether ``beat()`` has anything to write (cheap: no cache access)."""
        return not self.left and _slot(_clock()) not in self.counted

    def beat(self) -> None:
        with self._lock:
            slot = _slot(_clock())
            if self.left or slot in self.counted:
                return
            key = _presence_key(self.cluster_id, self.lang, self.tier, slot)
            cache.add(key, 0, timeout=_presence_timeout())
            try:
                cache.incr(key)
            except ValueError:  # gone between the two calls (evicted): start it again
                cache.set(key, 1, timeout=_presence_timeout())
            self.counted = {counted for counted in self.counted if counted >= slot - 1}
            self.counted.add(slot)

    def leave(self) -> None:
        with self._lock:
            self.left = True
            slot = _slot(_clock())
            for counted in sorted(self.counted):
                if counted >= slot - 1:
                    try:
                        cache.decr(_presence_key(self.cluster_id, self.lang, self.tier,
                                                 counted))
                    except ValueError:  # already expired
                        pass
            self.counted = set()


def detail_viewers(cluster_id: int) -> set[tuple[str, str]]:
    """The (language, tier) pairs in which the cluster's detail page is open somewhere.

    When the registry cannot be read, every pair: a change is then rendered for nothing
    rather than missed by a page that is open.
    """
    slot = _slot(_clock())
    keys = {(lang, tier, counted): _presence_key(cluster_id, lang, tier, counted)
            for lang in languages() for tier in TIERS for counted in (slot, slot - 1)}
    try:
        found = cache.get_many(list(keys.values()))
    except Exception:
        logger.warning("cluster.live.presence_unreadable", exc_info=True,
                       extra={"cluster_id": cluster_id})
        return {(lang, tier) for lang in languages() for tier in TIERS}
    return {(lang, tier) for (lang, tier, _counted), key in keys.items()
            if (found.get(key) or 0) > 0}


# --------------------------------------------------------------------------- list rows


ROW_CACHE_SECONDS = 24 * 3600


def _row_key(row: ClusterRow, tenant_slug: str) -> str:
    return f"clusters:row:{translation.get_language()}:{tenant_slug}:{row.fingerprint}"


def rows_html(rows: list[ClusterRow], tenant_slug: str) -> list[str]:
    """The list rows' HTML in the active language, from the cache where the same content was
    rendered before (by an earlier page or by the broadcast of the change), else rendered now.

    Keys are content fingerprints, so a cached row is never stale; one round trip fetches all.
    """
    keys = [_row_key(row, tenant_slug) for row in rows]
    cached = cache.get_many(keys)
    missing = {}
    result = []
    for key, row in zip(keys, rows, strict=True):
        html = cached.get(key)
        if html is None:
            html = render_to_string(f"{LIST_TEMPLATE}#row",
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
    html = rows_html([row], tenant_slug)[0]
    return html.replace('class="cluster-row"', 'class="cluster-row" hx-swap-oob="true"', 1)


def _row_variants(row: ClusterRow, tenant_slug: str) -> dict[str, str]:
    variants = {}
    for lang in languages():
        with translation.override(lang):
            variants[lang] = render_row(row, tenant_slug)
    return variants


# --------------------------------------------------------------------------- the broadcast


def render_cluster_messages(cluster_id: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """The channel-layer messages for one change of ``cluster_id`` (pre-rendered HTML).

    A generator, so the caller sends the list row (cheap, watched by every list page) before
    the detail regions are rendered. Those are rendered only in the languages and tiers of the
    detail pages open on this cluster, and not at all when none is.
    """
    row = cluster_row(cluster_id)
    if row is None:
        return
    cluster = row.cluster
    forget_list(cluster.tenant_id)
    gone = cluster.deleted_at is not None or cluster.phase == Cluster.Phase.DELETED
    yield tenant_group(cluster.tenant_id), {
        "type": "cluster.row", "cluster_id": cluster.pk, "phase": cluster.phase,
        "version": cluster.version, "name": cluster.name, "deleted": gone,
        "html": {} if gone else _row_variants(row, cluster.tenant.slug),
    }
    viewers = detail_viewers(cluster.pk)
    if not viewers:
        return
    state = cluster_state_by_id(cluster_id)
    if state is not None:
        yield cluster_group(cluster.tenant_id, cluster.pk), {
            "type": "cluster.detail", "cluster_id": cluster.pk,
            "html": _detail_variants(state, viewers),
        }
