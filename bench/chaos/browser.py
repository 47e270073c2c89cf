"""Fifty live page regions in a real browser (Debian's chromium, driven by Playwright), so the
sockets connect, close and reconnect exactly as the portal's pages make them: htmx's ws
extension with whatever reconnect policy the page configures, and ``live.js`` polling while a
socket is down.

One tab opens the cluster list of the first fault's tenant; before htmx starts, an init script
adds 49 more live regions (the list's own markup: ``hx-ext="ws"``, ``ws-connect``,
``data-live`` and its poll URL) spread over the other tenants, and records every ``htmx:wsOpen``
and ``htmx:wsClose``. Every HTTP answer the tab gets (the polls) is recorded too.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any

from bench.chaos.roles import now
from bench.chaos.workload import Recorder

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-background-timer-throttling", "--disable-renderer-backgrounding"]

INIT = """
(() => {
  if (!location.pathname.startsWith("/t/")) { return; }
  const config = %(config)s;
  const state = window.__chaos = {open: {}, events: []};
  const mark = (kind) => (e) => {
    const id = e.target && e.target.id;
    if (!id) { return; }
    state.open[id] = kind === "open";
    const code = kind === "close" && e.detail && e.detail.event ? e.detail.event.code : null;
    state.events.push([Date.now(), kind, id, code]);
  };
  document.addEventListener("htmx:wsOpen", mark("open"));
  document.addEventListener("htmx:wsClose", mark("close"));
  document.addEventListener("DOMContentLoaded", () => {
    const own = document.getElementById("cluster-live");
    const extra = config.count - (own ? 1 : 0);
    for (let i = 0; i < extra; i++) {
      const slug = config.slugs[i %% config.slugs.length];
      const div = document.createElement("div");
      div.id = "chaos-ws-" + i;
      div.setAttribute("hx-ext", "ws");
      div.setAttribute("ws-connect", "/ws/t/" + slug + "/clusters/?lang=en");
      div.setAttribute("data-live", "");
      div.setAttribute("data-poll-url", "/t/" + slug + "/clusters/-/live/");
      div.hidden = true;
      document.body.appendChild(div);
    }
  });
})();
"""


class Browser:
    def __init__(self, base: str, session: str, slugs: list[str], recorder: Recorder,
                 count: int = 50) -> None:
        self.base, self.session, self.slugs = base.rstrip("/"), session, slugs
        self.recorder, self.count = recorder, count
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="browser")
        self._pw: Any = None
        self._browser: Any = None
        self.page: Any = None
        # Suite time = wall-clock time - offset (JS timestamps are wall-clock milliseconds).
        self.offset = time.time() - now()

    def _call(self, coro: Any, timeout: float = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> Browser:
        self._thread.start()
        self._call(self._start())
        return self

    async def _start(self) -> None:
        from playwright.async_api import async_playwright

        self._pw = await async_playwright().start()
        self._browser = await self._pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = await self._browser.new_context()
        await context.add_cookies([{"name": "sessionid", "value": self.session,
                                    "url": self.base}])
        await context.add_init_script(INIT % {"config": json.dumps(
            {"count": self.count, "slugs": self.slugs})})
        self.page = await context.new_page()
        self.page.on("response", self._response)
        await self.page.goto(self.list_url, wait_until="domcontentloaded")

    @property
    def list_url(self) -> str:
        return f"{self.base}/t/{self.slugs[0]}/clusters/"

    def _response(self, response: Any) -> None:
        path = response.url.removeprefix(self.base)
        if path.startswith("/static/"):
            return
        self.recorder.add("browser", response.request.method, path.split("?")[0],
                          str(response.status))

    async def _state(self) -> dict[str, Any]:
        return await self.page.evaluate(
            "() => window.__chaos ? {open: Object.values(window.__chaos.open).filter(Boolean)"
            ".length, events: window.__chaos.events} : {open: 0, events: []}")

    def state(self) -> dict[str, Any] | None:
        """Sockets open now, and every open/close so far (suite time, kind, id, close code)."""
        try:
            raw = self._call(self._state(), timeout=10)
        except Exception:  # noqa: BLE001 - the tab is navigating or the browser is busy
            return None
        events = [(ms / 1000 - self.offset, kind, elt, code)
                  for ms, kind, elt, code in raw["events"]]
        return {"open": raw["open"], "events": events}

    def open_sockets(self) -> int:
        state = self.state()
        return state["open"] if state else 0

    def reload(self) -> None:
        """A fresh page (reconnect backoff starts again at zero)."""
        self._call(self.page.goto(self.list_url, wait_until="domcontentloaded"))

    def blank(self) -> None:
        """Close every socket: the tab leaves the portal."""
        self._call(self.page.goto("about:blank"))

    def close(self) -> None:
        async def stop() -> None:
            if self._browser is not None:
                await self._browser.close()
            if self._pw is not None:
                await self._pw.stop()

        try:
            self._call(stop(), timeout=30)
        except Exception:  # noqa: BLE001, S110 - the suite is ending anyway
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
