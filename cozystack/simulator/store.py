"""In-memory object store with apiserver semantics: resourceVersions, generations, status
isolation, finalizers, owner cascade and a bounded watch history (so resumes and 410s are real).

Invariant: a stored dict is never mutated in place; every write stores a fresh copy. Watch history
can therefore keep references, and readers get deep copies.
"""

from __future__ import annotations

import base64
import copy
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .clock import Clock, rfc3339
from .errors import ApiError, already_exists, conflict, expired, not_found
from .resources import Registry, ResourceType, check_app_spec
from .selectors import FieldRequirement, Requirement, fields_match, labels_match

Obj = dict[str, Any]
# Inside `Store`, `list` names its list method, so its signatures spell lists with these.
Objs = list[Obj]
Paths = list[str]
Key = tuple[str, str, str]  # (resource key, namespace or "", name)
SERVER_OWNED_META = (
    "name",
    "namespace",
    "uid",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
)


@dataclass(frozen=True)
class StoredEvent:
    rv: int
    rkey: str
    type: str  # ADDED | MODIFIED | DELETED
    obj: Obj
    old: Obj | None


@dataclass(frozen=True)
class Selection:
    """Which objects a list or watch wants: namespace (None = all) plus selectors."""

    namespace: str | None = None
    labels: tuple[Requirement, ...] = ()
    fields: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Obj) -> bool:
        return labels_match(list(self.labels), obj) and fields_match(list(self.fields), obj)


def _meta(obj: Obj) -> Obj:
    return obj.get("metadata") or {}


def _namespace(obj: Obj) -> str:
    return _meta(obj).get("namespace") or ""


def _without_rv(obj: Obj) -> Obj:
    clone = dict(obj)
    clone["metadata"] = {k: v for k, v in _meta(obj).items() if k != "resourceVersion"}
    return clone


def _null_paths(value: Any, prefix: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    paths = []
    for key, item in value.items():
        path = f"{prefix}.{key}"
        paths += [path] if item is None else _null_paths(item, path)
    return paths


def _normalize_secret(obj: Obj) -> None:
    """Like the apiserver: `stringData` is write-only and folded into base64 `data`."""
    string_data = obj.pop("stringData", None) or {}
    if string_data:
        data = obj.setdefault("data", {}) or {}
        for key, value in string_data.items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    obj.setdefault("type", "Opaque")


class Store:
    """All objects of the simulated management cluster, guarded by one condition variable."""

    def __init__(self, clock: Clock, registry: Registry, history_size: int = 1000) -> None:
        self.clock = clock
        self.registry = registry
        self.cond = threading.Condition(threading.RLock())
        self._objects: dict[Key, Obj] = {}
        self._rv = 0
        self._history: deque[StoredEvent] = deque()
        self._history_size = max(1, history_size)
        self._floor = 0  # events with rv <= floor are no longer retained
        self._held: set[Key] = set()
        self.closed = False

    # --- bookkeeping -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        with self.cond:
            return self._rv

    def _bump(self, obj: Obj) -> int:
        self._rv += 1
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        return self._rv

    def _record(self, kind: str, rtype: ResourceType, obj: Obj, old: Obj | None) -> None:
        rv = int(_meta(obj)["resourceVersion"])
        if len(self._history) >= self._history_size:
            self._floor = self._history.popleft().rv
        self._history.append(StoredEvent(rv, rtype.key, kind, obj, old))
        self.cond.notify_all()

    def compact(self) -> None:
        """Forget the whole watch history, as an etcd compaction would."""
        with self.cond:
            self._floor = self._rv
            self._history.clear()
            self.cond.notify_all()

    def reset(self, keep: tuple[str, ...] = ()) -> None:
        """Remove every object (watchers see DELETED) except those of the `keep` types."""
        with self.cond:
            for key in sorted(self._objects):
                if key[0] not in keep and key in self._objects:
                    self._remove(key, cascade=False)
            self._held.clear()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def dump(self) -> Obj:
        """Every object and the resourceVersion counter, for a restart (`load`)."""
        with self.cond:
            return {
                "resourceVersion": self._rv,
                "objects": [[list(key), obj] for key, obj in sorted(self._objects.items())],
                "held": sorted(list(key) for key in self._held),
            }

    def load(self, data: Obj) -> None:
        """Start from a dump: same objects and resourceVersions, no watch history (a watcher
        resuming from an older resourceVersion relists after a 410)."""
        with self.cond:
            self._objects = {tuple(key): obj for key, obj in data.get("objects") or []}
            self._held = {tuple(key) for key in data.get("held") or []}
            self._rv = max(self._rv, int(data.get("resourceVersion") or 0))
            self._history.clear()
            self._floor = self._rv
            self.cond.notify_all()

    def _key(self, rtype: ResourceType, namespace: str | None, name: str) -> Key:
        # Routing refuses a namespaced object without a namespace, so `or ""` never applies there.
        return (rtype.backing_key, (namespace or "") if rtype.namespaced else "", name)

    def _find(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        obj = self._objects.get(self._key(rtype, namespace, name))
        if obj is None or (rtype.view_filter and not rtype.view_filter(obj)):
            raise not_found(rtype.qualified, rtype.plural, name)
        return obj

    def _shown(self, rtype: ResourceType, obj: Obj) -> Obj:
        return copy.deepcopy(rtype.show(obj))

    # --- reads -------------------------------------------------------------------------------

    def get(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        with self.cond:
            return self._shown(rtype, self._find(rtype, namespace, name))

    def list(self, rtype: ResourceType, selection: Selection) -> tuple[Objs, int]:
        with self.cond:
            items = []
            for (rkey, namespace, _name), obj in sorted(self._objects.items()):
                if rkey != rtype.backing_key:
                    continue
                if selection.namespace is not None and namespace != selection.namespace:
                    continue
                if rtype.view_filter and not rtype.view_filter(obj):
                    continue
                shown = rtype.show(obj)
                if selection.matches(shown):
                    items.append(copy.deepcopy(shown))
            return items, self._rv

    def list_page(
        self, rtype: ResourceType, selection: Selection, after: tuple[str, str] | None, limit: int
    ) -> tuple[Objs, int, int]:
        """One page of `list`: up to `limit` objects sorted after (namespace, name) `after`,
        the resourceVersion, and how many more objects of the type follow (selectors aside).
        Only the page's objects are rendered, so paging through a large list stays linear."""
        with self.cond:
            keys = sorted(k for k in self._objects if k[0] == rtype.backing_key)
            items: list[Obj] = []
            remaining = 0
            for key in keys:
                _rkey, namespace, name = key
                if after is not None and (namespace, name) <= after:
                    continue
                if selection.namespace is not None and namespace != selection.namespace:
                    continue
                if len(items) >= limit:
                    remaining += 1
                    continue
                obj = self._objects[key]
                if rtype.view_filter and not rtype.view_filter(obj):
                    continue
                shown = rtype.show(obj)
                if selection.matches(shown):
                    items.append(copy.deepcopy(shown))
            return items, self._rv, remaining

    def raw(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj | None:
        """The stored object (spec as sent), for the controller and tests."""
        with self.cond:
            obj = self._objects.get(self._key(rtype, namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def raw_items(self, rtype: ResourceType) -> Objs:
        with self.cond:
            return [
                copy.deepcopy(obj)
                for (rkey, _ns, _name), obj in sorted(self._objects.items())
                if rkey == rtype.key
            ]

    # --- create ------------------------------------------------------------------------------

    def create(
        self, rtype: ResourceType, namespace: str | None, body: Obj, dry_run: bool = False
    ) -> Obj:
        """POST semantics: server-owned metadata is assigned, status is dropped (subresource)."""
        if rtype.read_only:
            raise ApiError(405, f"create is not supported on {rtype.qualified}", "MethodNotAllowed")
        name = self._creation_name(rtype, namespace, body)
        rtype.check_create(name, body)
        with self.cond:
            key = self._key(rtype, namespace, name)
            if key in self._objects:
                raise already_exists(rtype.qualified, rtype.plural, name)
            obj = self._fresh(rtype, namespace, name, body, keep_status=False)
            if dry_run:
                return self._shown(rtype, obj)
            return self._shown(rtype, self._insert(rtype, key, obj))

    def _creation_name(self, rtype: ResourceType, namespace: str | None, body: Obj) -> str:
        if not isinstance(body, dict) or not isinstance(body.get("metadata", {}), dict):
            raise ApiError(400, "the body must be a JSON object with object metadata", "BadRequest")
        meta = body.get("metadata") or {}
        if meta.get("resourceVersion"):
            raise ApiError(
                400, "resourceVersion should not be set on objects to be created", "BadRequest"
            )
        for field, expected in (("apiVersion", rtype.api_version), ("kind", rtype.kind)):
            if body.get(field) not in (None, expected):
                raise ApiError(
                    400,
                    f"the API version or kind in the data ({body.get(field)}) does not match "
                    f"the expected {field} {expected}",
                    "BadRequest",
                )
        if rtype.namespaced and meta.get("namespace") not in (None, "", namespace):
            raise ApiError(
                400,
                "the namespace of the provided object does not match the namespace sent on "
                "the request",
                "BadRequest",
            )
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = meta["generateName"] + secrets.token_hex(3)[:5]
        if not name:
            raise ApiError(
                422,
                f"{rtype.kind_qualified} is invalid: metadata.name: Required value: name or "
                "generateName is required",
                "Invalid",
            )
        return name

    def _fresh(
        self, rtype: ResourceType, namespace: str | None, name: str, body: Obj, keep_status: bool
    ) -> Obj:
        obj = copy.deepcopy(body)
        obj["apiVersion"] = rtype.api_version
        obj["kind"] = rtype.kind
        meta = {
            k: v
            for k, v in (obj.get("metadata") or {}).items()
            if k not in (*SERVER_OWNED_META, "resourceVersion", "selfLink", "managedFields")
        }
        meta["name"] = name
        if rtype.namespaced:
            meta["namespace"] = namespace
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = rfc3339(self.clock.time())
        if rtype.generation:
            meta["generation"] = 1
        obj["metadata"] = meta
        if rtype.status_subresource and not keep_status:
            obj.pop("status", None)
        if rtype.key == "v1/secrets":
            _normalize_secret(obj)
        return obj

    def _insert(self, rtype: ResourceType, key: Key, obj: Obj) -> Obj:
        self._bump(obj)
        self._objects[key] = obj
        self._record("ADDED", rtype, obj, None)
        return obj

    # --- update ------------------------------------------------------------------------------

    def replace(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        body: Obj,
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PUT: optimistic concurrency when the body carries a resourceVersion."""
        self._check_writable(rtype)
        with self.cond:
            old = self._find(rtype, namespace, name)
            self._check_precondition(rtype, name, old, body)
            key = self._key(rtype, namespace, name)
            return self._shown(rtype, self._update(rtype, key, old, body, subresource, dry_run))

    def patch(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        apply: Callable[[Obj], object],
        subresource: str | None = None,
        dry_run: bool = False,
    ) -> Obj:
        """PATCH: `apply` runs on what a GET would show (defaults filled), under the lock."""
        self._check_writable(rtype)
        with self.cond:
            old = self._find(rtype, namespace, name)
            patched = apply(self._shown(rtype, old))
            if not isinstance(patched, dict):
                raise ApiError(422, "the patched object must be a JSON object", "Invalid")
            self._check_precondition(rtype, name, old, patched)
            key = self._key(rtype, namespace, name)
            return self._shown(rtype, self._update(rtype, key, old, patched, subresource, dry_run))

    def _check_writable(self, rtype: ResourceType) -> None:
        if rtype.read_only:
            raise ApiError(405, f"{rtype.qualified} is read-only", "MethodNotAllowed")

    def _check_precondition(self, rtype: ResourceType, name: str, old: Obj, body: Obj) -> None:
        wanted = _meta(body).get("resourceVersion") if isinstance(body, dict) else None
        if wanted and str(wanted) != _meta(old).get("resourceVersion"):
            raise conflict(rtype.qualified, rtype.plural, name)

    def _spec_of(self, rtype: ResourceType, obj: Obj) -> tuple[Obj, Paths]:
        """What a generation bump compares: the spec as shown (so a label patch that stores the
        defaulted spec is no change) plus explicit nulls (so adding `md0: null` is one)."""
        shown = rtype.show(obj)
        spec = {
            k: v for k, v in shown.items() if k not in ("metadata", "status", "apiVersion", "kind")
        }
        return spec, sorted(_null_paths(obj.get("spec"), "spec"))

    def _update(
        self,
        rtype: ResourceType,
        key: Key,
        old: Obj,
        body: Obj,
        subresource: str | None,
        dry_run: bool = False,
    ) -> Obj:
        if subresource == "status":
            new = copy.deepcopy(old)
            if body.get("status") is not None:
                new["status"] = copy.deepcopy(body["status"])
            else:
                new.pop("status", None)
        else:
            new = self._merged_main(rtype, old, body)
        if _without_rv(new) == _without_rv(old):
            return old  # no-op writes do not bump the resourceVersion, as in Kubernetes
        if dry_run:
            return new
        self._bump(new)
        self._objects[key] = new
        self._record("MODIFIED", rtype, new, old)
        meta = _meta(new)
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and key not in self._held:
            self._remove(key)
        return new

    def _merged_main(self, rtype: ResourceType, old: Obj, body: Obj) -> Obj:
        """A main-resource write: server-owned metadata and (with a subresource) status survive."""
        new = copy.deepcopy(body)
        new["apiVersion"] = rtype.api_version
        new["kind"] = rtype.kind
        meta: Obj = new["metadata"] if isinstance(new.get("metadata"), dict) else {}
        old_meta = _meta(old)
        for field in SERVER_OWNED_META:
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        new["metadata"] = meta
        if rtype.aggregated_app:
            check_app_spec(new)
        if rtype.status_subresource:
            if "status" in old:
                new["status"] = copy.deepcopy(old["status"])
            else:
                new.pop("status", None)
        if rtype.key == "v1/secrets":
            _normalize_secret(new)
        if rtype.generation and self._spec_of(rtype, new) != self._spec_of(rtype, old):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        return new

    # --- delete ------------------------------------------------------------------------------

    def delete(
        self,
        rtype: ResourceType,
        namespace: str | None,
        name: str,
        options: Obj | None = None,
        dry_run: bool = False,
    ) -> tuple[Obj, bool]:
        """Returns (object, gone_now). Finalizers or a held type only mark deletionTimestamp."""
        self._check_writable(rtype)
        options = options or {}
        with self.cond:
            old = self._find(rtype, namespace, name)
            if dry_run:
                return self._shown(rtype, old), False
            preconditions = options.get("preconditions") or {}
            for field in ("uid", "resourceVersion"):
                wanted = preconditions.get(field)
                if wanted and wanted != _meta(old).get(field):
                    raise conflict(rtype.qualified, rtype.plural, name)
            orphan = options.get("propagationPolicy") == "Orphan"
            obj, gone = self._delete(self._key(rtype, namespace, name), cascade=not orphan)
            return self._shown(rtype, obj), gone

    def _delete(self, key: Key, cascade: bool = True) -> tuple[Obj, bool]:
        old = self._objects[key]
        rtype = self.registry.by_key(key[0])
        meta = _meta(old)
        if meta.get("deletionTimestamp"):
            return old, False
        if meta.get("finalizers") or rtype.graceful_delete:
            new = copy.deepcopy(old)
            new["metadata"]["deletionTimestamp"] = rfc3339(self.clock.time())
            new["metadata"]["deletionGracePeriodSeconds"] = 0
            if rtype.graceful_delete:
                self._held.add(key)
            self._bump(new)
            self._objects[key] = new
            self._record("MODIFIED", rtype, new, old)
            return new, False
        return self._remove(key, cascade), True

    def _remove(self, key: Key, cascade: bool = True) -> Obj:
        old = self._objects.pop(key)
        self._held.discard(key)
        rtype = self.registry.by_key(key[0])
        gone = copy.deepcopy(old)
        self._bump(gone)
        self._record("DELETED", rtype, gone, old)
        if cascade:
            self._cascade(_meta(old).get("uid"))
        return gone

    def _cascade(self, owner_uid: str | None) -> None:
        """Garbage-collect dependents (foreground-style, synchronously)."""
        if not owner_uid:
            return
        for key, obj in list(self._objects.items()):
            refs = _meta(obj).get("ownerReferences") or []
            if key in self._objects and any(ref.get("uid") == owner_uid for ref in refs):
                self._delete(key)

    def release(self, rtype: ResourceType, namespace: str | None, name: str) -> bool:
        """The controller finished its uninstall: let a held deletion complete."""
        with self.cond:
            key = self._key(rtype, namespace, name)
            self._held.discard(key)
            obj = self._objects.get(key)
            if obj is None:
                return True
            meta = _meta(obj)
            if meta.get("deletionTimestamp") and not meta.get("finalizers"):
                self._remove(key)
                return True
            return False

    # --- system writes (controller) ----------------------------------------------------------

    def apply(self, rtype: ResourceType, namespace: str | None, name: str, body: Obj) -> Obj:
        """Create-or-update by the platform itself: no name rules, status kept on create."""
        with self.cond:
            key = self._key(rtype, namespace, name)
            old = self._objects.get(key)
            if old is None:
                return copy.deepcopy(
                    self._insert(rtype, key, self._fresh(rtype, namespace, name, body, True))
                )
            return copy.deepcopy(self._update(rtype, key, old, body, None))

    def write_status(
        self, rtype: ResourceType, namespace: str | None, name: str, status: Obj
    ) -> Obj | None:
        with self.cond:
            key = self._key(rtype, namespace, name)
            old = self._objects.get(key)
            if old is None:
                return None
            return copy.deepcopy(self._update(rtype, key, old, {"status": status}, "status"))

    # --- watch -------------------------------------------------------------------------------

    def watch_open(
        self, rtype: ResourceType, selection: Selection, resource_version: str | None
    ) -> tuple[Objs, int]:
        """Initial events (synthetic ADDED, or nothing when resuming) and the starting cursor."""
        with self.cond:
            if resource_version in (None, "", "0"):
                items, rv = self.list(rtype, selection)
                return [{"type": "ADDED", "object": item} for item in items], rv
            try:
                cursor = int(resource_version)
            except ValueError:
                raise ApiError(400, f"invalid resource version: {resource_version!r}", "BadRequest")
            if cursor < self._floor:
                raise expired(cursor, self._floor + 1)
            return [], cursor

    def watch_poll(
        self, rtype: ResourceType, selection: Selection, cursor: int, timeout: float
    ) -> tuple[Objs, int]:
        """Wait up to `timeout` for events after `cursor`; 410 if they were compacted away."""
        with self.cond:
            if self._rv <= cursor and not self.closed:
                self.cond.wait(timeout)
            if cursor < self._floor:
                raise expired(cursor, self._floor + 1)
            pending = []
            for event in reversed(self._history):
                if event.rv <= cursor:
                    break
                pending.append(event)
            out = []
            for event in reversed(pending):
                translated = self._translate(rtype, selection, event)
                if translated is not None:
                    out.append(translated)
            return out, max(cursor, self._rv)

    def _visible(self, rtype: ResourceType, selection: Selection, obj: Obj | None) -> Obj | None:
        if obj is None or (rtype.view_filter and not rtype.view_filter(obj)):
            return None
        shown = rtype.show(obj)
        return shown if selection.matches(shown) else None

    def _translate(
        self, rtype: ResourceType, selection: Selection, event: StoredEvent
    ) -> Obj | None:
        """Map a stored event onto one watcher, turning selector transitions into ADDED/DELETED."""
        if event.rkey != rtype.backing_key:
            return None
        if selection.namespace is not None and _namespace(event.obj) != selection.namespace:
            return None
        now = self._visible(rtype, selection, event.obj)
        before = self._visible(rtype, selection, event.old) if event.type == "MODIFIED" else None
        if event.type in ("ADDED", "DELETED"):
            kind = event.type if now is not None else None
        elif now is not None:
            kind = "MODIFIED" if before is not None else "ADDED"
        elif before is not None:
            kind, now = "DELETED", rtype.show(event.obj)
        else:
            kind = None
        if kind is None or now is None:
            return None
        return {"type": kind, "object": copy.deepcopy(now)}
