"""The staff console's automation page: what automation will do platform-wide in the next
24 hours or 7 days, grouped by window, and the one switch that pauses all of it."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import groupby
from typing import Any

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST, require_safe

from clusters import lifecycle, maintenance
from clusters.models import Cluster, FreezePeriod
from portal.audit import actor_from_request
from staff.views import staff_required

TEMPLATE = "portal/staff/automation.html"
HORIZONS = {"24h": timedelta(hours=24), "7d": timedelta(days=7)}
REASON_MAX = 200


def upcoming_groups(now: datetime, until: datetime) -> list[dict[str, Any]]:
    """Every planner's next actions on every cluster, one group per window opening (the same
    start and reason), each with its clusters by tenant and name."""
    items = lifecycle.upcoming(None, now, until)
    names = {c.pk: f"{c.tenant.slug}/{c.name}" for c in Cluster.objects.filter(
        pk__in={i.cluster_id for i in items}).select_related("tenant")}
    groups = []
    for (at, reason, kind), entries in groupby(items, key=lambda i: (i.at, i.reason, i.kind)):
        rows = sorted(({"cluster": names.get(e.cluster_id, str(e.cluster_id)),
                        "summary": e.summary} for e in entries), key=lambda r: r["cluster"])
        groups.append({"at": at, "reason": reason, "kind": kind, "entries": rows})
    return groups


@staff_required
@require_safe
def automation(request: HttpRequest) -> HttpResponse:
    horizon = request.GET.get("within", "24h")
    if horizon not in HORIZONS:
        horizon = "24h"
    now = timezone.now()
    control = lifecycle.control()
    return render(request, TEMPLATE, {
        "groups": upcoming_groups(now, now + HORIZONS[horizon]), "horizon": horizon,
        "horizons": list(HORIZONS), "control": control, "limits": maintenance.limits(),
        "freezes": FreezePeriod.objects.filter(ends_at__gt=now).order_by("starts_at")[:20],
    })


@staff_required
@require_POST
def automation_pause(request: HttpRequest) -> HttpResponse:
    """Pause or resume every automatic action (``lifecycle.set_paused``, audited)."""
    paused = request.POST.get("paused") == "true"
    reason = request.POST.get("reason", "").strip()[:REASON_MAX]
    lifecycle.set_paused(actor_from_request(request), paused, reason)
    messages.success(request, _("Automation paused.") if paused else _("Automation resumed."))
    return redirect("staff_automation")
