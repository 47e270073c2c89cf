"""A circuit breaker per dependency and process: after a failure, callers skip the dependency
for a few seconds instead of each waiting for it to refuse (or time out) again.

Used where a dependency is optional for the answer: the Redis cache (``portal.cache``: a miss
instead) and the channel layer's pushes (``portal.pushes``: pages poll instead). Nothing here
decides what to do instead; the caller does.
"""

from __future__ import annotations

import logging
import threading
import time

logger = logging.getLogger("portal.breaker")


class Breaker:
    """``allows()`` says whether to try the dependency now; report the outcome with
    ``failed()`` or ``succeeded()``. After a failure it stays open for ``seconds``; then the
    next caller tries again (and closes it on success, or opens it for another period)."""

    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        self._lock = threading.Lock()
        self._retry_at = 0.0
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def allows(self) -> bool:
        return not self._open or time.monotonic() >= self._retry_at

    def failed(self, error: BaseException) -> None:
        with self._lock:
            opened = not self._open
            self._open = True
            self._retry_at = time.monotonic() + self.seconds
        if opened:
            logger.warning("dependency.unavailable", extra={
                "dependency": self.name, "error": f"{type(error).__name__}: {error}"[:300],
                "retry_seconds": self.seconds})

    def succeeded(self) -> bool:
        """Close the breaker; True when it was open (the dependency just came back)."""
        if not self._open:
            return False
        with self._lock:
            recovered = self._open
            self._open = False
        if recovered:
            logger.info("dependency.recovered", extra={"dependency": self.name})
        return recovered
