"""Every role of the portal as its own process, the way production runs them, with their
output captured line by line and time-stamped (a fault is timed against what a process says,
e.g. the watcher's "Watching the management cluster.").

The suite is the supervisor: it starts the roles, kills the ones a fault kills and starts their
replacements. A role that exits by itself is *not* restarted during a fault (that would hide
the finding); it is recorded, and started again before the next fault.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
T0 = time.monotonic()


def now() -> float:
    """Seconds since the suite started (every timestamp in the report)."""
    return time.monotonic() - T0


@dataclass
class Exit:
    role: str
    code: int | None
    at: float
    by_suite: bool


@dataclass
class Role:
    """One process of a role (``worker-2``, ``watcher-1``…)."""

    name: str
    kind: str
    cmd: list[str]
    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)
    started_at: float = 0.0
    ended_at: float | None = None  # when its output ended (the process exited)
    killed_by_suite: bool = False
    _reader: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Role:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.killed_by_suite = False
        self.ended_at = None
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=self.env, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     bufsize=1, text=True, errors="replace")
        self.started_at = now()
        self._reader = threading.Thread(target=self._read, args=(self.proc,),
                                        name=f"log-{self.name}", daemon=True)
        self._reader.start()
        return self

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        with self.log_path.open("a") as log:
            log.write(f"--- {self.name} started at {now():.1f} s: {' '.join(self.cmd)}\n")
            for line in proc.stdout:
                at = now()
                text = line.rstrip("\n")
                with self._lock:
                    self.lines.append((at, text))
                log.write(f"{at:8.2f} {text}\n")
                log.flush()
            self.ended_at = now()
            log.write(f"--- {self.name} output ended at {self.ended_at:.1f} s\n")

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def exit_code(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def said(self, fragment: str, since: float = 0.0) -> float | None:
        """When the process first printed ``fragment`` at or after ``since`` (suite time)."""
        with self._lock:
            return next((at for at, text in self.lines if at >= since and fragment in text),
                        None)

    def last_said(self, *fragments: str) -> str | None:
        """Which of ``fragments`` the process printed last (None: none of them)."""
        with self._lock:
            for _at, text in reversed(self.lines):
                for fragment in fragments:
                    if fragment in text:
                        return fragment
        return None

    def signal_group(self, sig: int) -> None:
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def kill(self) -> float:
        """SIGKILL the role's whole process group; returns the instant."""
        self.killed_by_suite = True
        at = now()
        self.signal_group(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(10)
        return at

    def terminate(self, grace: float = 30.0, *, group: bool = False) -> float | None:
        """SIGTERM (to the main process only, as a container runtime does, unless ``group``);
        seconds until it exited, or None if it was still running after ``grace`` (then it is
        killed)."""
        if not self.alive():
            return 0.0
        self.killed_by_suite = True
        assert self.proc is not None
        started = time.monotonic()
        if group:
            self.signal_group(signal.SIGTERM)
        else:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(grace)
            took: float | None = time.monotonic() - started
        except subprocess.TimeoutExpired:
            took = None
        self.signal_group(signal.SIGKILL)  # whatever is left of the group (uvicorn's workers)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        return took


def python() -> str:
    return sys.executable
