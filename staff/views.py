"""Staff pages outside the raw admin: the operations console and read-only impersonation.

Only active staff whose session passed their second factor reach them, exactly like
``/admin/`` (``portal.mfa``). An impersonation session re-checks that standing on every request
(``check_impersonation``) and ends when it no longer holds.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import SESSION_KEY, get_user_model
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from billing.queries import revenue_mtd, top_tenants_mtd
from clusters.models import Cluster, NodeGroup, Operation
from clusters.offerings import end_of_life_versions
from clusters.platform_release import current as current_release
from clusters.watcher import watcher_health
from cozystack.gateway import PlatformError, get_gateway
from portal.audit import Actor, AuditEntry, actor_from_request, client_ip, record
from portal.htmx import htmx_partial, redirect_after_post, render_region
from portal.mfa import Standing, refuse, staff_standing
from portal.models import Tenant
from portal.pushes import group_send
from portal.tenancy import IMPERSONATION_SESSION_KEY


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        standing = staff_standing(request.user, request.session)
        if standing is Standing.NOT_STAFF:
            raise PermissionDenied(_("Staff only."))
        if standing is not Standing.TRUSTED:
            return refuse(request, standing)
        return view(request, *args, **kwargs)

    return wrapper


# --------------------------------------------------------------------------- impersonation

def start_impersonation(request: HttpRequest, tenant: Tenant) -> None:
    """Let a staff member see ``tenant`` as its members do, read-only; recorded for the tenant.

    Switching straight from another tenant ends that session in its own audit log first, so
    each tenant's owners see when staff started and stopped looking.
    """
    actor = actor_from_request(request, via=AuditEntry.Via.ADMIN)
    previous_id = request.session.get(IMPERSONATION_SESSION_KEY)
    if previous_id and previous_id != tenant.pk:
        previous = Tenant.objects.filter(pk=previous_id).first()
        if previous is not None:
            record(actor, "staff.impersonation.stop", previous, tenant=previous)
    request.session[IMPERSONATION_SESSION_KEY] = tenant.pk
    record(actor, "staff.impersonation.start", tenant, tenant=tenant)


def _session_user(request: HttpRequest) -> Any:
    """The person this session signed in, even once they can no longer sign in (deactivated)."""
    if request.user.is_authenticated:
        return request.user
    user_id = request.session.get(SESSION_KEY)
    return get_user_model().objects.filter(pk=user_id).first() if user_id else None


def check_impersonation(request: HttpRequest) -> None:
    """End this session's impersonation unless its staff member still stands: active staff
    whose session passed a second factor that still exists. Checked on every request of an
    impersonation session (``ImpersonationStandingMiddleware``); the end is recorded in the
    tenant's audit log, with the reason, like a stop by hand."""
    tenant_id = request.session.get(IMPERSONATION_SESSION_KEY)
    if tenant_id is None:
        return
    standing = staff_standing(request.user, request.session)
    if standing is Standing.TRUSTED:
        return
    del request.session[IMPERSONATION_SESSION_KEY]
    tenant = Tenant.objects.filter(pk=tenant_id).first()
    if tenant is None:
        return
    actor = Actor(user=_session_user(request), via=AuditEntry.Via.ADMIN, ip=client_ip(request))
    record(actor, "staff.impersonation.stop", tenant, tenant=tenant,
           changes={"reason": [None, standing.value]})
    messages.warning(request, _("Your read-only view of %(name)s ended: staff pages need active "
                                "staff whose session passed their second factor.")
                     % {"name": tenant.name})


@staff_required
@require_POST
def impersonate(request: HttpRequest) -> HttpResponse:
    tenant = get_object_or_404(Tenant, slug=request.POST.get("tenant", ""))
    start_impersonation(request, tenant)
    return redirect_after_post(request, "tenant_home", tenant_slug=tenant.slug)


@login_required
@require_POST
def impersonate_stop(request: HttpRequest) -> HttpResponse:
    tenant_id = request.session.pop(IMPERSONATION_SESSION_KEY, None)
    tenant = Tenant.objects.filter(pk=tenant_id).first() if tenant_id else None
    if tenant is not None:
        record(actor_from_request(request, via=AuditEntry.Via.ADMIN),
               "staff.impersonation.stop", tenant, tenant=tenant)
        messages.info(request, _("You stopped viewing %(name)s.") % {"name": tenant.name})
    return redirect("staff_console")


# --------------------------------------------------------------------------- the console

def _operations_section(stuck_minutes: int) -> dict[str, Any]:
    now = timezone.now()
    failed_since = now - timedelta(days=7)
    stuck = (Operation.objects.filter(state__in=Operation.ACTIVE_STATES,
                                      created_at__lt=now - timedelta(minutes=stuck_minutes))
             .select_related("cluster", "tenant").order_by("created_at")[:50])
    failed = (Operation.objects.filter(state=Operation.State.FAILED, finished_at__gte=failed_since)
              .select_related("cluster", "tenant").order_by("-finished_at")[:200])
    by_class: dict[str, list[Operation]] = defaultdict(list)
    for operation in failed:
        by_class[operation.get_error_class_display()].append(operation)
    return {"stuck": list(stuck), "failed_by_class": sorted(by_class.items()),
            "stuck_minutes": stuck_minutes}


def _fleet_section() -> dict[str, Any]:
    eol = end_of_life_versions()
    versions = (Cluster.objects.live().values("version").annotate(n=Count("id"))
                .order_by("-version"))
    groups = NodeGroup.objects.filter(removed_at__isnull=True, cluster__deleted_at__isnull=True)
    capacity = (groups.values("instance_type").annotate(nodes=Sum("observed_nodes"),
                                                        groups=Count("id"))
                .order_by("-nodes", "instance_type"))
    gpus: Counter[str] = Counter()
    for row in groups.exclude(gpu_model="").values("gpu_model", "gpus_per_node",
                                                   "observed_nodes"):
        gpus[row["gpu_model"]] += row["gpus_per_node"] * row["observed_nodes"]
    labels = dict(Cluster.Phase.choices)
    phases = {labels.get(phase, phase): n for phase, n in
              Cluster.objects.live().values_list("phase").annotate(n=Count("id"))
              .order_by("phase")}
    return {
        "versions": [{**v, "eol": eol.get(v["version"])} for v in versions],
        "capacity": list(capacity),
        "gpus": sorted(gpus.items()),
        "phases": phases,
    }


PING_CACHE_KEY = "staff:platform-ping"
PING_CACHE_SECONDS = 5
WATCHER_STALE_AFTER = timedelta(minutes=10)


def _ping_platform() -> tuple[bool, str]:
    """Whether the management cluster answers, remembered a few seconds: every open console
    refreshes every 5 s, and an unreachable platform costs a whole request timeout."""
    cached = cache.get(PING_CACHE_KEY)
    if cached is not None:
        return cached
    try:
        info = get_gateway().ping()
        result = (True, str(info.get("git_version", "")))
    except PlatformError as exc:
        result = (False, exc.message)
    cache.set(PING_CACHE_KEY, result, PING_CACHE_SECONDS)
    return result


def _as_datetime(value: Any) -> datetime | None:
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


def _platform_section() -> dict[str, Any]:
    reachable, detail = _ping_platform()
    now = timezone.now()
    health = watcher_health() or {}
    streams = health.get("streams", {})
    last_event = max((s.get("last_event_at") or 0 for s in streams.values()), default=0)
    published = _as_datetime(health.get("published_at"))
    resync = cache.get("clusters:last-resync")
    if resync:
        resync = {**resync, "at": _as_datetime(resync.get("at"))}
    return {
        "reachable": reachable,
        "detail": detail,
        "watcher": health,
        "watcher_streams": streams,
        "watcher_last_event": _as_datetime(last_event),
        "watcher_published": published,
        "watcher_stale": published is None or now - published > WATCHER_STALE_AFTER,
        "resync": resync,
        "release": current_release(),
    }


def _revenue_section() -> dict[str, Any]:
    return {"revenue": revenue_mtd(),
            "top_tenants": [{"name": t.name, "slug": t.slug, "amount": amount}
                            for t, amount in top_tenants_mtd(limit=10)]}


CONSOLE_TEMPLATE = "portal/staff/console.html"
STUCK_CHOICES = (10, 30, 60, 240)
DEFAULT_STUCK_MINUTES = 30


def stuck_minutes_from(value: Any) -> int:
    """The console's "running longer than" threshold from a query parameter (1 min – 1 day)."""
    try:
        return max(1, min(24 * 60, int(value)))
    except (TypeError, ValueError):
        return DEFAULT_STUCK_MINUTES


def board_context(stuck_minutes: int) -> dict[str, Any]:
    """Everything the console's board shows, read now."""
    return {
        **_operations_section(stuck_minutes),
        **_fleet_section(),
        **_platform_section(),
        **_revenue_section(),
        "now": timezone.now(),
        "suspended": Tenant.objects.filter(suspended_at__isnull=False).count(),
        "tenants": Tenant.objects.count(),
    }


def render_board(stuck_minutes: int) -> str:
    """The board as an out-of-band swap, for the staff WebSocket (no request: the impersonation
    buttons post through htmx, which sends the page's CSRF token itself)."""
    return render_to_string(f"{CONSOLE_TEMPLATE}#board", {
        **board_context(stuck_minutes), "oob": True, "csrf_token": "NOTPROVIDED"})


@staff_required
def console(request: HttpRequest) -> HttpResponse:
    stuck_minutes = stuck_minutes_from(request.GET.get("stuck", DEFAULT_STUCK_MINUTES))
    context = {**board_context(stuck_minutes), "oob": htmx_partial(request),
               "stuck_choices": STUCK_CHOICES}
    return render_region(request, CONSOLE_TEMPLATE, "board", context)


# --------------------------------------------------------------------------- live updates

STAFF_GROUP = "staff"


def notify_staff() -> None:
    """Tell open consoles that something they show changed; they re-read it. Never raises: the
    consoles also refresh on their own."""
    try:
        group_send(STAFF_GROUP, {"type": "staff.changed"})
    except Exception:  # a push failure must never fail the change it reports
        logging.getLogger("staff.views").exception("staff.notify.failed")


def notify_staff_on_commit() -> None:
    transaction.on_commit(notify_staff)
