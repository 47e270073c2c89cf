"""Plain WebSocket clients (the ``websockets`` package) for the SIGTERM trials: 50 sockets on
the cluster pages, each signed in with the session cookie and the page's Origin, each waiting
for the snapshot a page gets at connect, then held open until the server closes them."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any


class Held:
    """``count`` sockets held open in a thread of their own."""

    def __init__(self, host: str, port: int, session: str, slugs: list[str],
                 count: int = 50) -> None:
        self.host, self.port, self.session, self.slugs, self.count = \
            host, port, session, slugs, count
        self.connected = threading.Event()
        self.failed: str = ""
        self.codes: Counter = Counter()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True,
                                        name="ws-clients")

    def start(self) -> Held:
        self._thread.start()
        return self

    async def _one(self, index: int) -> Any:
        from websockets.asyncio.client import connect

        slug = self.slugs[index % len(self.slugs)]
        ws = await connect(f"ws://{self.host}:{self.port}/ws/t/{slug}/clusters/?lang=en",
                           origin=f"http://{self.host}:{self.port}",
                           additional_headers=[("Cookie", f"sessionid={self.session}")],
                           open_timeout=30, ping_interval=None, max_size=None)
        await asyncio.wait_for(ws.recv(), 30)  # the snapshot every page gets at connect
        return ws

    @staticmethod
    async def _until_closed(ws: Any) -> int | None:
        try:
            async for _frame in ws:
                pass
        except Exception:  # noqa: BLE001, S110 - any end of the connection is the end
            pass
        return ws.close_code

    async def _run(self) -> None:
        try:
            sockets = await asyncio.gather(*(self._one(i) for i in range(self.count)))
        except Exception as error:  # noqa: BLE001
            self.failed = f"{type(error).__name__}: {error}"
            self.connected.set()
            return
        self.connected.set()
        codes = await asyncio.gather(*(self._until_closed(ws) for ws in sockets))
        self.codes = Counter(codes)

    def join(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()
