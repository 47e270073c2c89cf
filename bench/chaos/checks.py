"""The invariants a fault must not break, checked from the outside: the suite's database (plain
SQL, a fresh connection each time, so a restarted PostgreSQL is no problem) and the simulated
platform over HTTP (its Kubernetes API and its ``/_sim/`` request log).

Each check returns a list of violations, one sentence each; empty means the invariant holds.
They take the tenant a fault ran in, so each fault is judged on its own rows.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

import psycopg

TERMINAL = ("succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")
# The audit verb each workload operation leaves (clusters.actions, clusters.plans).
AUDIT_VERBS = {"create": "cluster.create", "scale": "cluster.scale", "delete": "cluster.delete"}
APPS = "/apis/apps.cozystack.io/v1alpha1"
MACHINE_DEPLOYMENTS = "/apis/cluster.x-k8s.io/v1beta1"
RELEASE_PREFIX = "kubernetes-"
CLUSTER_LABEL = "cluster.x-k8s.io/cluster-name"
ADVISORY_LOCK_ID = 0x6B756265  # clusters.watcher.ADVISORY_LOCK_ID


class Database:
    """Short-lived connections to the suite's database; ``None`` answers while it is down."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn

    def rows(self, sql: str, params: Any = None, *, timeout: float = 3.0
             ) -> list[tuple] | None:
        try:
            with psycopg.connect(self.dsn, connect_timeout=max(1, int(timeout)),
                                 autocommit=True) as conn:
                return list(conn.execute(sql, params).fetchall())
        except psycopg.Error:
            return None

    def must(self, sql: str, params: Any = None) -> list[tuple]:
        with psycopg.connect(self.dsn, connect_timeout=5, autocommit=True) as conn:
            return list(conn.execute(sql, params).fetchall())

    def leader(self) -> str | None:
        """The application_name (the role's name) of the session holding the watcher's lock."""
        rows = self.rows(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objid = %s", [ADVISORY_LOCK_ID])
        return rows[0][0] if rows else None

    def leader_backend(self) -> int | None:
        rows = self.rows("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted "
                         "AND objid = %s", [ADVISORY_LOCK_ID])
        return rows[0][0] if rows else None

    def terminate(self, backend_pid: int) -> bool:
        rows = self.rows("SELECT pg_terminate_backend(%s)", [backend_pid])
        return bool(rows and rows[0][0])

    def operations(self, slug: str) -> list[dict[str, Any]] | None:
        rows = self.rows(
            "SELECT o.id, o.kind, o.state, c.name, o.attempts, o.submitted_at IS NOT NULL, "
            "o.lease_token, o.steps, o.idempotency_key, o.started_at IS NOT NULL, o.error_class "
            "FROM clusters_operation o JOIN clusters_cluster c ON c.id = o.cluster_id "
            "JOIN portal_tenant t ON t.id = o.tenant_id WHERE t.slug = %s ORDER BY o.id", [slug])
        if rows is None:
            return None
        keys = ("id", "kind", "state", "cluster", "attempts", "submitted", "lease_token",
                "steps", "idempotency_key", "started", "error_class")
        return [dict(zip(keys, row, strict=True)) for row in rows]


class Platform:
    """The simulated management cluster, read over HTTP with its bearer token."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None, timeout: float = 10) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method,
            headers={"Authorization": f"Bearer {self.token}",
                     "Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"null")

    def items(self, path: str) -> list[dict[str, Any]]:
        return self.call("GET", path).get("items") or []

    def clusters(self, namespace: str) -> list[dict[str, Any]]:
        return self.items(f"{APPS}/namespaces/{namespace}/kuberneteses")

    def machine_deployments(self, namespace: str) -> list[dict[str, Any]]:
        return self.items(f"{MACHINE_DEPLOYMENTS}/namespaces/{namespace}/machinedeployments")

    def requests(self) -> list[dict[str, Any]]:
        return self.call("GET", "/_sim/requests", timeout=30)

    def set_down(self, down: bool) -> None:
        self.call("POST", "/_sim/down", {"down": down, "mode": "drop"})

    def add_fault(self, **fault: Any) -> None:
        self.call("POST", "/_sim/faults", fault)

    def clear_faults(self) -> None:
        self.call("DELETE", "/_sim/faults")


@dataclass
class Intent:
    """One write the portal accepted (a 2xx answer) in the workload."""

    kind: str
    cluster: str
    key: str
    operation_id: int | None


# --------------------------------------------------------------------------- the invariants


def lost_intent(db: Database, slug: str, intents: list[Intent]) -> list[str]:
    """Every accepted write has its operation (of its kind, on its cluster) and only one."""
    rows = db.must(
        "SELECT o.id, o.kind, c.name, o.idempotency_key FROM clusters_operation o "
        "JOIN clusters_cluster c ON c.id = o.cluster_id JOIN portal_tenant t ON t.id = o.tenant_id "
        "WHERE t.slug = %s", [slug])
    ops = {row[0]: {"id": row[0], "kind": row[1], "cluster": row[2], "key": row[3]}
           for row in rows}
    by_key = Counter(op["key"] for op in ops.values() if op["key"])
    problems = []
    for intent in intents:
        op = ops.get(intent.operation_id or -1)
        if op is None:
            problems.append(f"lost intent: {intent.kind} {intent.cluster} was accepted "
                            f"(operation {intent.operation_id}) but the operation is not there")
        elif (op["kind"], op["cluster"]) != (intent.kind, intent.cluster):
            problems.append(f"lost intent: operation {op['id']} is {op['kind']} "
                            f"{op['cluster']}, accepted as {intent.kind} {intent.cluster}")
        if by_key.get(intent.key, 0) > 1:
            problems.append(f"duplicate: {by_key[intent.key]} operations for one request "
                            f"(Idempotency-Key {intent.key})")
    return problems


def duplicates(db: Database, platform: Platform, slug: str,
               requests: list[dict[str, Any]]) -> list[str]:
    """No cluster recorded twice, no object created twice on the platform."""
    problems = []
    for name, count in db.must(
            "SELECT c.name, count(*) FROM clusters_cluster c JOIN portal_tenant t "
            "ON t.id = c.tenant_id WHERE t.slug = %s GROUP BY c.name HAVING count(*) > 1",
            [slug]):
        problems.append(f"duplicate: cluster {name} recorded {count} times")
    namespace = f"tenant-{slug}"
    names = Counter(o["metadata"]["name"] for o in platform.clusters(namespace))
    problems += [f"duplicate: {n} platform objects named {name}"
                 for name, n in names.items() if n > 1]
    created = sum(1 for r in requests if r["method"] == "POST" and r["status"] == 201
                  and r["path"].rstrip("/") == f"{APPS}/namespaces/{namespace}/kuberneteses")
    rows = db.must("SELECT count(*) FROM clusters_cluster c JOIN portal_tenant t "
                   "ON t.id = c.tenant_id WHERE t.slug = %s", [slug])[0][0]
    if created > rows:
        problems.append(f"duplicate: the platform created {created} objects for {rows} "
                        f"clusters (one created twice, or again after its deletion)")
    return problems


def stuck(db: Database, slug: str, why: str) -> list[str]:
    """Operations still queued or running when the suite stopped waiting (``why``)."""
    return [f"stuck: operation {op['id']} ({op['kind']} {op['cluster']}) still {op['state']} "
            f"({why})" for op in db.operations(slug) or [] if op["state"] in ACTIVE]


def _ready(obj: dict[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def rows_match_platform(db: Database, platform: Platform, slug: str) -> list[str]:
    """The rows say what the platform has: each live cluster's object with the desired limits,
    node counts as its MachineDeployments report them, no object for a deleted cluster and no
    object the portal does not know."""
    namespace = f"tenant-{slug}"
    objects = {o["metadata"]["name"]: o for o in platform.clusters(namespace)}
    mds: dict[tuple[str, str], dict[str, Any]] = {}
    for md in platform.machine_deployments(namespace):
        meta = md.get("metadata") or {}
        release = (meta.get("labels") or {}).get(CLUSTER_LABEL, "")
        if release.startswith(RELEASE_PREFIX) and meta.get("name", "").startswith(release + "-"):
            mds[(release[len(RELEASE_PREFIX):], meta["name"][len(release) + 1:])] = md
    clusters = db.must(
        "SELECT c.id, c.name, c.deleted_at IS NOT NULL, c.phase, c.platform_ready, "
        "EXISTS (SELECT 1 FROM clusters_operation o WHERE o.cluster_id = c.id "
        "AND o.state IN ('queued', 'running')), "
        "EXISTS (SELECT 1 FROM clusters_operation o WHERE o.cluster_id = c.id "
        "AND o.kind = 'create' AND o.submitted_at IS NOT NULL) "
        "FROM clusters_cluster c JOIN portal_tenant t ON t.id = c.tenant_id WHERE t.slug = %s",
        [slug])
    groups = defaultdict(list)
    for row in db.must(
            "SELECT g.cluster_id, g.name, g.min_replicas, g.max_replicas, g.observed_nodes, "
            "g.ready_nodes FROM clusters_nodegroup g JOIN clusters_cluster c "
            "ON c.id = g.cluster_id JOIN portal_tenant t ON t.id = c.tenant_id "
            "WHERE t.slug = %s AND g.removed_at IS NULL", [slug]):
        groups[row[0]].append(row[1:])
    problems = []
    known = set()
    for cid, name, deleted, phase, platform_ready, active, sent in clusters:
        obj = objects.get(name)
        known.add(name)
        if active:
            continue  # in flight: "stuck" judges it
        if deleted:
            if obj is not None:
                problems.append(f"rows ≠ platform: {name} is deleted in the portal but still "
                                f"on the platform")
            continue
        if not sent:
            if obj is not None:
                problems.append(f"rows ≠ platform: {name} was never created ({phase}) but "
                                f"is on the platform")
            continue
        if obj is None:
            problems.append(f"rows ≠ platform: {name} ({phase}) is not on the platform")
            continue
        if bool(platform_ready) != _ready(obj):
            problems.append(f"rows ≠ platform: {name} ready={platform_ready} in the portal, "
                            f"{_ready(obj)} on the platform")
        spec_groups = (obj.get("spec") or {}).get("nodeGroups") or {}
        for group, lo, hi, observed, ready in groups[cid]:
            spec = spec_groups.get(group) or {}
            if (spec.get("minReplicas"), spec.get("maxReplicas")) != (lo, hi):
                problems.append(f"rows ≠ platform: {name}/{group} limits {lo}–{hi} in the "
                                f"portal, {spec.get('minReplicas')}–{spec.get('maxReplicas')} "
                                f"on the platform")
            status = (mds.get((name, group)) or {}).get("status") or {}
            seen = (int(status.get("replicas") or 0), int(status.get("readyReplicas") or 0))
            if (observed, ready) != seen:
                problems.append(f"rows ≠ platform: {name}/{group} {observed} nodes ({ready} "
                                f"ready) in the portal, {seen[0]} ({seen[1]}) on the platform")
    for name in objects.keys() - known:
        problems.append(f"rows ≠ platform: {name} is on the platform, unknown to the portal")
    return problems


def usage(db: Database, slug: str) -> list[str]:
    """Metering: no two segments of one key overlap, no open segment of a deleted cluster or a
    removed group, and the open node segments count the nodes the rows observe."""
    problems = []
    for a, b, name, sku in db.must(
            "SELECT a.id, b.id, c.name, a.sku FROM billing_usagesegment a "
            "JOIN billing_usagesegment b ON a.cluster_id = b.cluster_id AND a.sku = b.sku "
            "AND coalesce(a.node_group_id, 0) = coalesce(b.node_group_id, 0) AND a.id < b.id "
            "AND tstzrange(a.start, a.\"end\") && tstzrange(b.start, b.\"end\") "
            "JOIN clusters_cluster c ON c.id = a.cluster_id JOIN portal_tenant t "
            "ON t.id = a.tenant_id WHERE t.slug = %s", [slug]):
        problems.append(f"usage: segments {a} and {b} of {name} {sku} overlap")
    for sid, name, sku in db.must(
            "SELECT s.id, c.name, s.sku FROM billing_usagesegment s JOIN clusters_cluster c "
            "ON c.id = s.cluster_id LEFT JOIN clusters_nodegroup g ON g.id = s.node_group_id "
            "JOIN portal_tenant t ON t.id = s.tenant_id WHERE t.slug = %s AND s.\"end\" IS NULL "
            "AND (c.deleted_at IS NOT NULL OR c.platform_deleted_at IS NOT NULL "
            "OR g.removed_at IS NOT NULL)", [slug]):
        problems.append(f"usage: segment {sid} of {name} {sku} is still open after the "
                        f"cluster or group went away (dangling)")
    for name, group, observed, metered in db.must(
            "SELECT c.name, g.name, g.observed_nodes, coalesce(sum(s.quantity), 0) "
            "FROM clusters_nodegroup g JOIN clusters_cluster c ON c.id = g.cluster_id "
            "JOIN portal_tenant t ON t.id = c.tenant_id LEFT JOIN billing_usagesegment s "
            "ON s.node_group_id = g.id AND s.\"end\" IS NULL AND s.sku LIKE 'node.%%' "
            "WHERE t.slug = %s AND c.deleted_at IS NULL AND c.platform_deleted_at IS NULL "
            "AND g.removed_at IS NULL GROUP BY c.name, g.name, g.observed_nodes", [slug]):
        if int(metered) != int(observed):
            problems.append(f"usage: {name}/{group} has {observed} nodes, open node segments "
                            f"count {metered}")
    return problems


def audit(db: Database, slug: str) -> list[str]:
    """One audit entry per change: as many entries of each verb on a cluster as it has
    operations of that kind."""
    problems = []
    ops = Counter()
    for cid, name, kind in db.must(
            "SELECT c.id, c.name, o.kind FROM clusters_operation o JOIN clusters_cluster c "
            "ON c.id = o.cluster_id JOIN portal_tenant t ON t.id = o.tenant_id "
            "WHERE t.slug = %s AND o.kind IN ('create', 'scale', 'delete')", [slug]):
        ops[(str(cid), name, AUDIT_VERBS[kind])] += 1
    names = {cid: name for cid, name, _verb in ops}
    entries = Counter()
    for object_id, verb, count in db.must(
            "SELECT object_id, verb, count(*) FROM portal_auditentry a JOIN portal_tenant t "
            "ON t.id = a.tenant_id WHERE t.slug = %s AND a.verb = ANY(%s) "
            "GROUP BY object_id, verb", [slug, list(AUDIT_VERBS.values())]):
        entries[(object_id, verb)] = count
    for (cid, name, verb), expected in ops.items():
        found = entries.pop((cid, verb), 0)
        if found > expected:
            problems.append(f"audit: {found} × {verb} for {name}, {expected} operation(s)")
        elif found < expected:
            problems.append(f"audit: {verb} of {name} missing ({found} for {expected} "
                            f"operation(s))")
    for (cid, verb), found in entries.items():
        problems.append(f"audit: {found} × {verb} for cluster {names.get(cid, cid)} without "
                        f"an operation")
    return problems


def settled(db: Database, platform: Platform, slug: str) -> list[str]:
    """What converges after the fault (rows from the platform, usage from the rows); empty
    when it has. A database or platform that does not answer is a finding too."""
    try:
        return rows_match_platform(db, platform, slug) + usage(db, slug)
    except (psycopg.Error, urllib.error.URLError, OSError) as error:
        return [f"could not check: {error}"]
