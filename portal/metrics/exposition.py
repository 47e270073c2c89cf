"""Serving the metrics: /metrics on the web role, or a port of its own on the other roles.

Both answer only a caller with the bearer token ``METRICS_TOKEN`` (compared in constant
time). On the web role, /metrics is answered by ``MetricsEndpoint`` in front of Django, so a
scrape by the pod's address is not refused by ``ALLOWED_HOSTS`` or redirected to HTTPS, and
never counts as a page view: without a token configured it answers 404, as if it did not
exist; with one, a request without it gets 401.

The worker, beat and watcher serve their metrics on ``METRICS_PORT`` (``serve_on_port``) when
it is set: that is how a scrape reaches them when each role has a directory of its own (a
pod each). There the token is checked when one is configured; the port is the restriction
otherwise (bind it to a private address: ``METRICS_BIND``).

A scrape of the web role also runs the collectors registered with
``portal.metrics.register_collector`` (operations in flight, queue depth, open segments,
the watcher's last event): values of the whole service, read from the database, Redis and the
cache. The other roles' ports serve their processes' values only.
"""

from __future__ import annotations

import hmac
import logging
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from portal import metrics
from portal.proxies import ASGIApp, Scope

logger = logging.getLogger("portal.metrics")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4


def authorization_status(header: str | None, *, token_required: bool = True) -> int:
    """200 if ``header`` (an ``Authorization`` value) carries the configured token; 404 when
    no token is configured and one is required (the endpoint is off), 401 otherwise."""
    token = str(getattr(settings, "METRICS_TOKEN", "") or "")
    if not token:
        return 404 if token_required else 200
    expected = f"Bearer {token}".encode()
    given = (header or "").strip().encode("latin-1", "replace")
    return 200 if hmac.compare_digest(given, expected) else 401


class ServiceCollector(Collector):
    """The registered scrape-time collectors, each isolated from the others' failures."""

    def collect(self) -> Iterable[Metric]:
        up = GaugeMetricFamily("portal_scrape_collector_up",
                               "1 if the collector of service-wide values read them at this "
                               "scrape, 0 if it failed (see the web role's log).",
                               labels=["collector"])
        for name, collect in sorted(metrics.collectors().items()):
            try:
                families = list(collect())
            except Exception:  # one unreachable dependency must not hide every other metric
                logger.exception("metrics.collector_failed", extra={"collector": name})
                up.add_metric([name], 0)
                continue
            up.add_metric([name], 1)
            yield from families
        yield up


_service_registry = CollectorRegistry(auto_describe=False)
_service_registry.register(ServiceCollector())


def process_registry() -> CollectorRegistry:
    """This host's processes: the shared directory added up, or this process alone."""
    if metrics.MULTIPROC_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=metrics.MULTIPROC_DIR)
        return registry
    return REGISTRY


def render(*, service: bool) -> bytes:
    """The exposition text: the processes' values, and with ``service`` the service-wide ones
    (reads the database: run it in a thread of its own, not on an event loop)."""
    output = generate_latest(process_registry())
    if service:
        close_old_connections()
        try:
            output += generate_latest(_service_registry)
        finally:
            connections.close_all()
    return output


class MetricsEndpoint:
    """ASGI: answers ``METRICS_PATH`` (GET or HEAD) itself, passes everything else on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.path = str(getattr(settings, "METRICS_PATH", "/metrics"))

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("path") != self.path:
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or ())
        status = authorization_status(
            headers.get(b"authorization", b"").decode("latin-1", "replace"))
        body, extra = b"", []
        if status == 200 and scope.get("method") not in ("GET", "HEAD"):
            status, extra = 405, [(b"allow", b"GET, HEAD")]
        if status == 200:
            body = await sync_to_async(render, thread_sensitive=False)(service=True)
            content_type = CONTENT_TYPE.encode()
        else:
            body = {401: b"Unauthorized\n", 404: b"Not Found\n"}.get(status, b"Not allowed\n")
            content_type = b"text/plain; charset=utf-8"
            if status == 401:
                extra.append((b"www-authenticate", b'Bearer realm="metrics"'))
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", content_type), (b"cache-control", b"no-store"),
            (b"content-length", str(len(body)).encode()), *extra]})
        await send({"type": "http.response.body",
                    "body": body if scope.get("method") != "HEAD" else b""})


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = self.path.partition("?")[0]
        status = authorization_status(self.headers.get("Authorization"), token_required=False)
        if path not in ("/metrics", "/"):
            status = 404
        body = render(service=False) if status == 200 else b""
        self.send_response(status)
        self.send_header("Content-Type", CONTENT_TYPE if status == 200 else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="metrics"')
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        return  # scrapes every few seconds are not worth a log line


_servers: dict[int, ThreadingHTTPServer] = {}


def serve_on_port(port: int | None = None, bind: str | None = None) -> ThreadingHTTPServer | None:
    """Serve this role's metrics on ``port`` (``METRICS_PORT``; 0: not at all) in a daemon
    thread; once per process and port."""
    port = int(port if port is not None else getattr(settings, "METRICS_PORT", 0) or 0)
    if not port:
        return None
    if port in _servers:
        return _servers[port]
    address = bind if bind is not None else str(getattr(settings, "METRICS_BIND", "127.0.0.1"))
    server = ThreadingHTTPServer((address, port), _Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-port", daemon=True).start()
    _servers[port] = server
    logger.info("metrics.serving", extra={"port": port, "bind": address})
    return server
