"""The database connections of background threads that run job after job (the watcher's
appliers, the delivery of changes).

Between two requests Django closes a connection older than ``CONN_MAX_AGE`` (0 by default:
every request connects anew), which suits requests. A thread that applies a few rows several
times a second would then spend more on connecting than on its work; it keeps its connection
between jobs instead, and drops only one that cannot be trusted any more.
"""

from __future__ import annotations

from django.db import connections


def between_jobs() -> None:
    """Before a background thread's next job: close the thread's connections that failed
    and no longer answer, or were left outside autocommit; keep the others open."""
    for conn in connections.all(initialized_only=True):
        if conn.connection is None:
            continue
        if conn.get_autocommit() != conn.settings_dict["AUTOCOMMIT"]:
            conn.close()
        elif conn.errors_occurred:
            if conn.is_usable():
                conn.errors_occurred = False
            else:
                conn.close()
