"""HTTP front of the simulator: routing, auth, faults, Status errors and chunked watch streams.

Speaks just enough of the Kubernetes REST API for the real `kubernetes` Python client. Control
endpoints under `/_sim/` let a test drive a simulator running in another process.
"""

from __future__ import annotations

import base64
import json
import select
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError, status_body, success_body
from .patch import PatchError, json_patch, merge_patch
from .resources import OPTION_SOURCES, OPTIONS, ResourceType
from .selectors import parse_field_selector, parse_label_selector
from .store import Selection

if TYPE_CHECKING:
    from .platform import SimulatedPlatform

Obj = dict[str, Any]
PUBLIC_PATHS = ("/version", "/healthz", "/livez", "/readyz")
K8S_VERSION = {
    "major": "1",
    "minor": "33",
    "gitVersion": "v1.33.6",
    "gitCommit": "simulated",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.24.9",
    "compiler": "gc",
    "platform": "linux/amd64",
}


class RequestRecord(NamedTuple):
    """One entry of `platform.request_log` (status 0 = connection dropped)."""

    method: str
    path: str
    status: int
    query: str = ""


class Route(NamedTuple):
    rtype: ResourceType
    namespace: str | None
    name: str | None
    subresource: str | None
    watch: bool


class SimulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], platform: SimulatedPlatform) -> None:
        self.platform = platform
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up between requests is normal; anything else is a simulator bug."""
        error = sys.exception()
        if isinstance(error, ConnectionError | TimeoutError):
            return
        trace = traceback.format_exc()
        self.platform.record_server_error("?", str(client_address), error or Exception(), trace)

    def close_connections(self) -> None:
        """Unblock keep-alive and watch threads at shutdown."""
        with self.connections_lock:
            for conn in list(self.connections):
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1", "yes")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cozystack-simulator"
    server: SimulatorHTTPServer

    # --- plumbing ------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without NODELAY, Nagle plus the client's
        # delayed ACK would add ~40 ms to every response.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Silence stderr access logs; `platform.request_log` records requests instead."""

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    @property
    def platform(self) -> SimulatedPlatform:
        return self.server.platform

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        self._path, self._query_text = split.path.rstrip("/") or "/", split.query
        self._query = {k: v[-1] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        self._status_sent = 0
        self._logged = False
        try:
            raw = self._read_body()
            if self._path.startswith("/_sim/"):
                self._authorize()
                self._send_json(*self.platform.control(method, self._path, self._json(raw)))
                return
            if self._refused(method):
                return
            if self._path not in PUBLIC_PATHS or self.headers.get("Authorization"):
                self._authorize()
            self._dispatch(method, raw)
        except ApiError as error:
            self._send_json(error.code, error.body())
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
            self.close_connection = True
        except Exception as error:  # noqa: BLE001 - every bug must surface as a recorded 500
            self.platform.record_server_error(method, self.path, error, traceback.format_exc())
            if not self._status_sent:
                self._send_json(500, status_body(500, f"simulator bug: {error!r}"))
            self.close_connection = True
        finally:
            self._log(method)

    def _log(self, method: str) -> None:
        """Record once, when the status line goes out (a watch is logged when it starts)."""
        if not self._logged:
            self._logged = True
            record = RequestRecord(method, self._path, self._status_sent, self._query_text)
            self.platform.log_request(record)

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _json(self, raw: bytes) -> Any:
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as error:
            raise ApiError(400, f"invalid JSON in request body: {error}", "BadRequest")

    def _authorize(self) -> None:
        expected = f"Bearer {self.platform.token}"
        if self.platform.token and self.headers.get("Authorization") != expected:
            raise ApiError(401, "Unauthorized", "Unauthorized")

    def _refused(self, method: str) -> bool:
        """Platform down or a matching fault: answer (or hang up) before any real work."""
        if self.platform.down:
            if self.platform.down_mode == "503":
                self._send_json(503, status_body(503, "the platform is unreachable (simulated)"))
            else:
                self._drop()
            return True
        fault = self.platform.faults.take(method, self.path)
        if fault is None:
            return False
        if fault.latency:
            time.sleep(fault.latency)
        if fault.drop:
            self._drop()
            return True
        if fault.status:
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after else {}
            self._send_json(fault.status, status_body(fault.status, fault.message), headers)
            return True
        return False

    def _drop(self) -> None:
        """Hang up without a response (logged first, with status 0, so tests can see it)."""
        self._log(self.command)
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _send_json(self, code: int, body: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        # Logged before the body goes out: a client that has its answer finds it in the log.
        self._status_sent = code
        self._log(self.command)
        self.wfile.write(data)

    # --- routing -------------------------------------------------------------------------------

    def _dispatch(self, method: str, raw: bytes) -> None:
        discovery = self._discovery()
        if discovery is not None:
            if method != "GET":
                raise ApiError(405, f"{method} is not allowed on {self._path}", "MethodNotAllowed")
            self._send_json(200, discovery)
            return
        route = self._route()
        if route.rtype.key == OPTIONS.key:
            self._options(method, route)
        elif route.name is None:
            self._collection(method, route, raw)
        else:
            self._member(method, route, route.name, raw)

    def _options(self, method: str, route: Route) -> None:
        """The Option API: computed on every read, get and list only (as cozystack-api)."""
        if method != "GET" or route.watch:
            verb = "watch" if route.watch else method
            raise ApiError(405, f"{verb} is not supported on options", "MethodNotAllowed")
        namespace = route.namespace or ""
        if route.name is not None:
            self._send_json(200, self.platform.option(namespace, route.name))
            return
        items = [self.platform.option(namespace, name) for name in OPTION_SOURCES]
        self._send_json(
            200,
            {
                "apiVersion": OPTIONS.api_version,
                "kind": "OptionList",
                "metadata": {"resourceVersion": "0"},
                "items": items,
            },
        )

    def _discovery(self) -> Obj | None:
        path = self._path
        registry = self.platform.registry
        if path in ("/version",):
            return K8S_VERSION
        if path in ("/healthz", "/livez", "/readyz"):
            return {"status": "ok"}
        if path == "/api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        if path == "/apis":
            groups = [_group_doc(g, v) for g, v in registry.groups().items() if g]
            return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
            # Every namespace exists here (tenant namespaces are made by the Tenant app).
            return {
                "apiVersion": "v1",
                "kind": "Namespace",
                "metadata": {"name": parts[3]},
                "status": {"phase": "Active"},
            }
        if parts[0] == "apis" and len(parts) == 2 and parts[1] in registry.groups():
            return {
                "kind": "APIGroup",
                "apiVersion": "v1",
                **_group_doc(parts[1], registry.groups()[parts[1]]),
            }
        group_version = ("", parts[1]) if parts[0] == "api" and len(parts) == 2 else None
        if parts[0] == "apis" and len(parts) == 3:
            group_version = (parts[1], parts[2])
        if group_version and registry.in_group_version(*group_version):
            types = registry.in_group_version(*group_version)
            gv = "/".join(p for p in group_version if p)
            resources = [t.discovery() for t in types]
            for rtype in types:
                if rtype.status_subresource:
                    resources.append(
                        {
                            "name": f"{rtype.plural}/status",
                            "singularName": "",
                            "namespaced": rtype.namespaced,
                            "kind": rtype.kind,
                            "verbs": ["get", "patch", "update"],
                        }
                    )
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": gv,
                "resources": resources,
            }
        return None

    def _route(self) -> Route:
        parts = self._path.strip("/").split("/")
        if parts[0] == "api" and len(parts) >= 3:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise _no_route()
        watch = _truthy(self._query.get("watch"))
        if rest and rest[0] == "watch":
            watch, rest = True, rest[1:]
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise _no_route()
        rtype = self.platform.registry.find(group, version, rest[0])
        if rtype is None or (namespace is not None and not rtype.namespaced):
            raise _no_route()
        name = rest[1] if len(rest) > 1 else None
        subresource = rest[2] if len(rest) > 2 else None
        if subresource is not None and (subresource != "status" or not rtype.status_subresource):
            raise _no_route()
        if name is not None and rtype.namespaced and namespace is None:
            raise _no_route()
        return Route(rtype, namespace, name, subresource, watch)

    def _selection(self, route: Route) -> Selection:
        labels = parse_label_selector(self._query.get("labelSelector"))
        fields = parse_field_selector(self._query.get("fieldSelector"), route.rtype.fields)
        return Selection(route.namespace, tuple(labels), tuple(fields))

    # --- verbs ---------------------------------------------------------------------------------

    def _collection(self, method: str, route: Route, raw: bytes) -> None:
        store = self.platform.store
        if method == "GET" and route.watch:
            self._watch(route)
        elif method == "GET" and _number(self._query.get("limit"), "limit") > 0:
            self._send_json(200, self._page_body(route))
        elif method == "GET":
            items, rv = store.list(route.rtype, self._selection(route))
            self._send_json(200, self._list_body(route.rtype, items, rv))
        elif method == "POST" and (route.namespace is not None or not route.rtype.namespaced):
            body = self._json(raw)
            dry_run = self._query.get("dryRun") == "All"
            created = store.create(route.rtype, route.namespace, body, dry_run=dry_run)
            self.platform.after_write()
            self._send_json(201, created)
        elif method == "DELETE":
            items, _ = store.list(route.rtype, self._selection(route))
            for item in items:
                meta = item["metadata"]
                store.delete(route.rtype, meta.get("namespace"), meta["name"], self._json(raw))
            self.platform.after_write()
            self._send_json(200, self._list_body(route.rtype, items, store.resource_version))
        else:
            raise ApiError(405, f"{method} is not allowed on a collection", "MethodNotAllowed")

    def _member(self, method: str, route: Route, name: str, raw: bytes) -> None:
        store, rtype = self.platform.store, route.rtype
        dry_run = self._query.get("dryRun") == "All"
        if method == "GET":
            self._send_json(200, store.get(rtype, route.namespace, name))
            return
        if method == "PUT":
            body = self._json(raw)
            if not isinstance(body, dict):
                raise ApiError(400, "the body must be a JSON object", "BadRequest")
            if (body.get("metadata") or {}).get("name") not in (None, name):
                raise ApiError(
                    400,
                    f"the name of the object ({body['metadata']['name']}) does not match the "
                    f"name on the URL ({name})",
                    "BadRequest",
                )
            result = store.replace(
                rtype, route.namespace, name, body, route.subresource, dry_run
            )
        elif method == "PATCH":
            apply = self._patch_function(rtype, self._json(raw))
            result = store.patch(
                rtype, route.namespace, name, apply, route.subresource, dry_run
            )
        elif method == "DELETE":
            options = self._json(raw)
            result, gone = store.delete(rtype, route.namespace, name, options, dry_run)
            if gone and not rtype.group:
                meta = result["metadata"]
                result = success_body(
                    {"name": meta["name"], "kind": rtype.plural, "uid": meta["uid"]}
                )
        else:
            raise ApiError(405, f"{method} is not allowed here", "MethodNotAllowed")
        self.platform.after_write()
        self._send_json(200, result)

    def _patch_function(self, rtype: ResourceType, patch: Any) -> Callable[[Obj], object]:
        """Pick RFC 7386 or RFC 6902 from Content-Type (a list body is always a JSON patch)."""
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        if content_type == "application/strategic-merge-patch+json" and rtype.group:
            raise ApiError(
                415,
                "strategic merge patch is not supported for custom resources",
                "UnsupportedMediaType",
            )
        if isinstance(patch, list) or content_type == "application/json-patch+json":
            if not isinstance(patch, list):
                raise ApiError(400, "a JSON patch must be a list of operations", "BadRequest")
            return _guarded(lambda current: json_patch(current, patch))
        if content_type in (
            "application/merge-patch+json",
            "application/strategic-merge-patch+json",
        ):
            if not isinstance(patch, dict):
                raise ApiError(400, "a merge patch must be a JSON object", "BadRequest")
            return _guarded(lambda current: merge_patch(current, patch))
        raise ApiError(415, f"unsupported patch type {content_type!r}", "UnsupportedMediaType")

    def _page_body(self, route: Route) -> Obj:
        """`limit`/`continue` rendering only the page (large lists stay linear to page through;
        `remainingItemCount` ignores selectors, which Kubernetes allows)."""
        token = self._query.get("continue")
        after = None
        if token:
            try:
                after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
            except ValueError:
                raise ApiError(400, "invalid continue token", "BadRequest")
        size = _number(self._query.get("limit"), "limit")
        items, rv, remaining = self.platform.store.list_page(
            route.rtype, self._selection(route), after, size)
        metadata: Obj = {"resourceVersion": str(rv)}
        if remaining and items:
            metadata["continue"] = base64.urlsafe_b64encode(
                json.dumps(list(_sort_key(items[-1]))).encode()).decode()
            metadata["remainingItemCount"] = remaining
        return {"apiVersion": route.rtype.api_version, "kind": f"{route.rtype.kind}List",
                "metadata": metadata, "items": items}

    def _list_body(self, rtype: ResourceType, items: list[Obj], rv: int) -> Obj:
        items, token, remaining = _paginate(
            items, self._query.get("limit"), self._query.get("continue")
        )
        metadata: Obj = {"resourceVersion": str(rv)}
        if token:
            metadata["continue"] = token
            metadata["remainingItemCount"] = remaining
        return {
            "apiVersion": rtype.api_version,
            "kind": f"{rtype.kind}List",
            "metadata": metadata,
            "items": items,
        }

    # --- watch ---------------------------------------------------------------------------------

    def _watch(self, route: Route) -> None:
        """Chunked stream of one JSON event per line until timeoutSeconds or shutdown."""
        store = self.platform.store
        selection = self._selection(route)
        timeout = _number(self._query.get("timeoutSeconds"), "timeoutSeconds") or (
            self.platform.watch_timeout
        )
        deadline = time.monotonic() + timeout
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status_sent = 200
        self._log(self.command)
        try:
            events, cursor = store.watch_open(
                route.rtype, selection, self._query.get("resourceVersion")
            )
            self._chunks(events)
            while not self.platform.stopping and (remaining := deadline - time.monotonic()) > 0:
                events, cursor = store.watch_poll(
                    route.rtype, selection, cursor, min(remaining, 0.25)
                )
                self._chunks(events)
                if not events and self._client_gone():
                    self.close_connection = True
                    return
            if _truthy(self._query.get("allowWatchBookmarks")) and not self.platform.stopping:
                bookmark = {
                    "kind": route.rtype.kind,
                    "apiVersion": route.rtype.api_version,
                    "metadata": {"resourceVersion": str(cursor)},
                }
                self._chunks([{"type": "BOOKMARK", "object": bookmark}])
        except ApiError as error:
            self._chunks([{"type": "ERROR", "object": error.body()}])
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        if self.platform.stopping:
            self.close_connection = True

    def _client_gone(self) -> bool:
        """A watcher that hung up shows as a readable socket at EOF; stop streaming to it."""
        # poll(), not select(): select() refuses descriptors above FD_SETSIZE (1024), which a
        # long-lived process (a test session, say) reaches, and would end healthy streams.
        poller = select.poll()
        poller.register(self.connection, select.POLLIN)
        try:
            if not poller.poll(0):
                return False
            peeked: bytes = self.connection.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            return peeked == b""
        except BlockingIOError:
            return False
        except (OSError, ValueError):
            return True

    def _chunks(self, events: list[Obj]) -> None:
        for event in events:
            line = json.dumps(event).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
        if events:
            self.wfile.flush()


def _number(value: str | None, name: str) -> int:
    """Integer query parameters; junk is the client's error (400), not a simulator bug."""
    if not value:
        return 0
    try:
        return int(value)
    except ValueError:
        raise ApiError(400, f"invalid {name}: {value!r}", "BadRequest")


def _guarded(function: Callable[[Obj], object]) -> Callable[[Obj], object]:
    """The patch, with a patch that does not apply as the client's error (422). The store
    checks that the result is an object."""

    def apply(current: Obj) -> object:
        try:
            return function(current)
        except PatchError as error:
            raise ApiError(422, f"the patch could not be applied: {error}", "Invalid")

    return apply


def _no_route() -> ApiError:
    return ApiError(
        404,
        "the server could not find the requested resource",
        "NotFound",
        {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]},
    )


def _group_doc(group: str, versions: list[str]) -> Obj:
    listed = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": listed, "preferredVersion": listed[0]}


def _paginate(items: list[Obj], limit: str | None, token: str | None) -> tuple[list[Obj], str, int]:
    """`limit`/`continue` over the sorted list; the token names the last item returned."""
    if token:
        try:
            after = tuple(json.loads(base64.urlsafe_b64decode(token.encode())))
        except ValueError:
            raise ApiError(400, "invalid continue token", "BadRequest")
        items = [i for i in items if _sort_key(i) > after]
    size = _number(limit, "limit")
    if size <= 0 or len(items) <= size:
        return items, "", 0
    page = items[:size]
    next_token = base64.urlsafe_b64encode(json.dumps(list(_sort_key(page[-1]))).encode()).decode()
    return page, next_token, len(items) - len(page)


def _sort_key(item: Obj) -> tuple[str, str]:
    meta = item.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")
