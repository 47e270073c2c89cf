"""Maintenance windows and automatic upgrades: the ``window`` planner of ``clusters.lifecycle``.

Each cluster has a maintenance window (weekdays, a start time, a duration of at least an hour,
an IANA time zone) and an upgrade policy: *manual*, *before end of life* (one minor version
once the version is within staff's lead of its end of life) or *keep current* (one minor per
window until the newest version staff offer). A cluster without a window of its own follows
its tenant's default, else the platform's (``settings.MAINTENANCE_DEFAULT_WINDOW``).

What the planner does, once a minute (``plan``), each step safe to repeat:

1. **Re-plan.** A scheduled upgrade whose reason is gone (a person upgraded or changed the
   policy, the version is no longer offered, the cluster went away) is dropped; the next step
   plans anew.
2. **Schedule.** A cluster whose policy calls for an upgrade gets one *scheduled operation*
   (``clusters.operations.schedule``) for its first window at least ``announce_days`` ahead
   that no freeze period covers (sooner only if that would pass the end of life). Scheduling
   is the announcement: a timeline entry, the audit entry and ``MaintenanceScheduled`` (email
   to owners and admins, webhooks), exactly once per scheduled upgrade (the row and the
   operation are written in one transaction, under the cluster's row lock).
3. **Release.** A scheduled upgrade whose window is open starts when the cluster is idle, no
   freeze covers now, and fewer than staff's maximum of automatic upgrades run platform-wide.
   Its change is planned then, against the cluster as it is (the same change plan as a
   person's upgrade), and it runs like any operation. A window that closes before it could
   start moves it to the next window. A failed automatic upgrade is not retried in its
   window: the next one is scheduled for a later window (staff are alerted of platform-side
   failures by ``staff.alerts``, as for every operation).

Times are UTC in the database; windows are computed in the cluster's zone with ``zoneinfo``,
so a window at 03:00 starts at 03:00 local time on both sides of a DST change.
"""

from __future__ import annotations

from clusters.maintenance.actions import (
    do_postpone_upgrade,
    do_set_maintenance,
    do_set_tenant_default,
    do_upgrade_now,
)
from clusters.maintenance.planner import (
    PLANNER,
    MaintenancePlanner,
    local_text,
    postpone_choices,
    scheduled_for,
    waiting_upgrades,
    what_rolls,
)
from clusters.maintenance.windows import (
    Limits,
    Setting,
    Window,
    check_window,
    frozen_at,
    limits,
    next_window,
    platform_default,
    setting_of,
    settings_of,
    tenant_default,
    window_of,
)

__all__ = ["PLANNER", "Limits", "MaintenancePlanner", "Setting", "Window", "check_window",
           "do_postpone_upgrade", "do_set_maintenance", "do_set_tenant_default",
           "do_upgrade_now", "frozen_at", "limits", "local_text", "next_window",
           "platform_default", "postpone_choices", "scheduled_for", "setting_of", "settings_of",
           "tenant_default", "waiting_upgrades", "what_rolls", "window_of"]
