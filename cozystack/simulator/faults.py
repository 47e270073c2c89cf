"""Fault injection: make the platform slow, failing or unreachable on purpose.

Faults let tests prove that the portal retries transient errors and reports permanent ones, without
patching the gateway: the real client sees real 503s, real latency and real dropped connections.
"""

from __future__ import annotations

import re
import threading
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(eq=False)
class Fault:
    """One injected fault, matched against each API request in insertion order.

    `path` is a regex searched in the request target (path plus query string, so
    `watch=true` can be targeted). `times` counts down on each match; at zero the fault is
    removed (`None` = until cleared). `latency` sleeps before answering. `drop=True` closes
    the connection without any response. When `status` is left out it defaults to 503, unless
    the fault only adds latency (`Fault(latency=0.5)` = slow but successful) or drops.
    """

    method: str | None = None
    path: str = ".*"
    status: int | None = None
    times: int | None = None
    latency: float = 0.0
    drop: bool = False
    message: str = "simulated fault"
    retry_after: int | None = None
    hits: int = 0

    def __post_init__(self) -> None:
        if self.method is not None:
            self.method = self.method.upper()
        if self.status is None and not self.drop and not self.latency:
            self.status = 503
        self._regex = re.compile(self.path)

    def matches(self, method: str, target: str) -> bool:
        if self.method is not None and self.method != method.upper():
            return False
        return bool(self._regex.search(target))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        allowed = {
            "method",
            "path",
            "status",
            "times",
            "latency",
            "drop",
            "message",
            "retry_after",
        }
        unknown = set(data) - allowed
        if unknown:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        return cls(**data)


class FaultSet:
    """Thread-safe list of active faults; `take` consumes one use atomically."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> Fault:
        with self._lock:
            self._faults.append(fault)
        return fault

    def remove(self, fault: Fault) -> None:
        with self._lock:
            if fault in self._faults:
                self._faults.remove(fault)

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def list(self) -> list[Fault]:
        with self._lock:
            return list(self._faults)

    def take(self, method: str, target: str) -> Fault | None:
        """Return the first matching fault, counting one use (and dropping it when used up)."""
        with self._lock:
            for fault in self._faults:
                if not fault.matches(method, target):
                    continue
                fault.hits += 1
                if fault.times is not None:
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def __len__(self) -> int:
        with self._lock:
            return len(self._faults)
