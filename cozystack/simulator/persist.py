"""The simulator's state on disk: a restart finds every object where it was.

One JSON file holds the release, every stored object, the last resourceVersion and the
controller's own state. It is written atomically (a temporary file renamed over the old one), at
most every `interval` seconds and only when something changed, and once more at stop.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

Obj = dict[str, Any]
FORMAT = 1


class StateError(Exception):
    """The saved state cannot be used; the message says what to do."""


def read_state(path: Path) -> Obj | None:
    """The saved snapshot, or None when there is none yet."""
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise StateError(
            f"cannot read the simulator's saved state {path}: {error}. Move the file away to "
            "start an empty platform (every cluster in it will be gone)."
        ) from error
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise StateError(
            f"{path} is not a simulator state file of format {FORMAT}. Move it away to start "
            "an empty platform."
        )
    return data


def write_state(path: Path, data: Obj) -> None:
    """Replace the file in one step: a reader sees the old snapshot or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.tmp")
    with partial.open("w", encoding="utf-8") as handle:
        json.dump(data, handle, separators=(",", ":"))
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


class StateWriter:
    """Background writer: every `interval` seconds, save if `marker()` moved since last time."""

    def __init__(
        self,
        path: Path,
        snapshot: Callable[[], Obj],
        marker: Callable[[], Any],
        interval: float = 0.5,
    ) -> None:
        self.path = path
        self.snapshot = snapshot
        self.marker = marker
        self.interval = interval
        self._saved: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, saved_marker: Any = None) -> None:
        self._saved = saved_marker
        self._thread = threading.Thread(target=self._run, name="simulator-state", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.save_if_changed()

    def save_if_changed(self) -> bool:
        with self._lock:
            marker = self.marker()
            if marker == self._saved:
                return False
            write_state(self.path, self.snapshot())
            self._saved = marker
            return True

    def stop(self) -> None:
        """Stop the thread and write what changed since the last save."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.save_if_changed()
