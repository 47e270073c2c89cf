"""The watcher against the simulated platform: streams, resume, relist, the leader lock.

The watcher runs its real threads here, each with its own database connection, so these tests
use a transactional database (rows must be committed to be seen).
"""

from __future__ import annotations

import copy
import functools
import threading
import time
from collections.abc import Iterator

import pytest
from django.db import connection

from clusters import actions, schema
from clusters.events import Coalescer
from clusters.models import Cluster, ClusterEvent, Operation
from clusters.watcher import LeaderLock, Watcher, lead
from cozystack.gateway import get_gateway
from cozystack.simulator import Fault
from tests.clusters.conftest import NS, Engine
from tests.fixtures.processes import eventually

pytestmark = pytest.mark.django_db(transaction=True)
CLUSTERS_WATCH = r"kuberneteses\?(.*&)?watch=true"


@pytest.fixture
def watcher(engine: Engine) -> Iterator[Watcher]:
    running = Watcher(get_gateway(), watch_timeout=30, min_backoff=0.05, max_backoff=0.2,
                      broadcast_interval=0.05, push=engine.pushed.append).start()
    assert running.synced.wait(10)
    yield running
    running.stop()
    assert not any(t.is_alive() for t in running.threads)


def submitted(engine: Engine) -> Cluster:
    """A cluster created through the action, sent to the platform, no poll following it."""
    cluster = engine.create()
    engine.outbox.run("clusters.apply_operation")
    engine.outbox.clear()
    return cluster


def reload(cluster: Cluster) -> Cluster:
    return Cluster.objects.get(pk=cluster.pk)


def test_the_watcher_alone_brings_a_new_cluster_to_running(engine, watcher):
    cluster = submitted(engine)
    engine.platform.advance(3.0)
    eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=10)
    cluster = reload(cluster)
    assert cluster.kubeconfig_ready
    assert cluster.node_groups.get().ready_nodes == 1
    operation = cluster.operations.get()
    assert operation.state == Operation.State.SUCCEEDED
    eventually(lambda: cluster.pk in engine.pushed, timeout=5)  # live pages were told


def test_a_dropped_watch_resumes_without_missing_a_transition(engine, watcher):
    cluster = submitted(engine)
    health = watcher.health.streams["clusters"]
    eventually(lambda: reload(cluster).platform_resource_version, timeout=10)
    # The connection drops and every reconnect fails for a while...
    outage = engine.platform.faults.add(Fault(path=CLUSTERS_WATCH, drop=True))
    watcher.drop_connections()
    eventually(lambda: health.reconnects >= 2, timeout=10)
    # ...while the control plane comes up on the platform.
    engine.platform.advance(1.0)
    assert not reload(cluster).platform_ready
    engine.platform.faults.remove(outage)
    eventually(lambda: reload(cluster).platform_ready, timeout=10)
    assert health.relists == 1  # resumed from the last resourceVersion, no relist
    reasons = set(cluster.events.values_list("reason", flat=True))
    assert {"Progressing", "InstallSucceeded"} <= reasons


def test_an_expired_resource_version_relists_and_repairs(engine, watcher):
    cluster = submitted(engine)
    other = submitted_named(engine, "other")
    health = watcher.health.streams["clusters"]
    eventually(lambda: reload(other).platform_resource_version, timeout=10)
    outage = engine.platform.faults.add(Fault(path=CLUSTERS_WATCH, drop=True))
    watcher.drop_connections()
    eventually(lambda: health.reconnects >= 1, timeout=10)
    engine.platform.advance(3.0)
    # "other" is deleted behind the portal's back while nobody watches.
    get_gateway().delete_cluster(NS, "other")
    engine.platform.advance(1.0)
    engine.platform.compact()
    engine.platform.faults.remove(outage)
    eventually(lambda: health.relists == 2, timeout=10)
    eventually(lambda: reload(cluster).platform_ready, timeout=10)
    other = reload(other)
    assert other.deleted_at is not None and other.phase == Cluster.Phase.DELETED
    assert other.events.filter(reason="Vanished", severity="error").exists()


def submitted_named(engine: Engine, name: str) -> Cluster:
    from tests.clusters.conftest import cluster_spec

    cluster = engine.create(cluster_spec(name))
    engine.outbox.run("clusters.apply_operation")
    engine.outbox.clear()
    return cluster


def test_node_counts_and_removed_groups_follow_the_platform(engine, watcher):
    cluster = submitted(engine)
    engine.platform.advance(3.0)
    eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=10)
    engine.platform.set_demand(NS, "demo", "md0", 3)
    engine.platform.advance(2.0)
    eventually(lambda: cluster.node_groups.get().ready_nodes == 3, timeout=10)
    assert ClusterEvent.objects.filter(cluster=cluster, reason="NodeGroup").count() >= 3


def test_a_schema_change_on_the_platform_refreshes_the_cached_schema(engine, watcher):
    assert "v1.34" in schema.platform_schema()["properties"]["version"]["enum"]
    changed = copy.deepcopy(engine.platform.schema)
    changed["properties"]["version"]["enum"] = ["v1.36", "v1.35"]
    engine.platform.publish_schema(changed)
    eventually(lambda: schema.platform_schema()["properties"]["version"]["enum"]
               == ["v1.36", "v1.35"], timeout=10)


def test_a_second_watcher_waits_for_the_leader_lock(db):
    key = 0x7E57  # not the real watcher's lock: a watcher process may run in this session
    leader = LeaderLock(key)
    assert leader.try_acquire() and leader.held()
    outcome: dict[str, bool] = {}
    stopping = threading.Event()

    def second() -> None:
        lock = LeaderLock(key)
        outcome["at_once"] = lock.try_acquire()
        outcome["after_wait"] = lock.wait(stopping, poll=0.05)
        lock.release()
        connection.close()

    thread = threading.Thread(target=second)
    thread.start()
    time.sleep(0.3)
    assert outcome == {"at_once": False}  # still waiting
    leader.release()
    thread.join(5)
    assert outcome == {"at_once": False, "after_wait": True}


def test_pushes_of_a_busy_cluster_are_coalesced():
    sent: list[int] = []
    coalescer = Coalescer(interval=0.2, send=sent.append)
    coalescer.start()
    try:
        for _ in range(100):
            coalescer.submit(7)
        coalescer.submit(8)
        eventually(lambda: set(sent) == {7, 8}, timeout=5)
        time.sleep(0.3)
        assert len(sent) <= 4
    finally:
        coalescer.stop()
    assert actions  # the module under test drives these pushes


@pytest.mark.parametrize("simulated_platform", ["1.3.6"], indirect=True)
def test_the_watcher_follows_a_live_platform_upgrade_without_a_restart(engine, watcher):
    from clusters import platform_release
    from tests.clusters.conftest import cluster_spec, group

    cluster = engine.create(cluster_spec(name="old", version="v1.30", groups=(
        group("general", roles=("ingress-nginx",)),)))
    engine.outbox.run("clusters.apply_operation")
    engine.outbox.clear()
    engine.platform.advance(3.0)
    eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=10)
    assert platform_release.current().dialect.name == "v1.3"

    engine.platform.upgrade("1.6.2")  # the watcher alone notices: no resync, no restart

    eventually(lambda: platform_release.observed_dialect().name == "v1.6", timeout=10)
    eventually(lambda: reload(cluster).version == "v1.31", timeout=10)
    eventually(lambda: sorted(reload(cluster).node_groups.filter(removed_at__isnull=True)
                              .values_list("name", flat=True)) == ["general", "md0"], timeout=10)
    assert engine.writes() == ["POST 201"]  # followed, never written


# --------------------------------------------------------------------------- leadership


def terminate_lock_session(key: int) -> int:
    """End the database session that holds advisory lock ``key`` (as an administrator, or a
    database failover, would); the process that used it lives on. Returns how many ended."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = "
                       "'advisory' AND granted AND objid = %s AND pid <> pg_backend_pid()",
                       [key])
        return len(cursor.fetchall())


def test_the_leader_survives_its_database_session_being_terminated(engine):
    key = 0x7E58  # not the real watcher's lock: a watcher process may run in this session
    said: list[str] = []
    stopping = threading.Event()
    make_watcher = functools.partial(Watcher, get_gateway(), min_backoff=0.05, max_backoff=0.2,
                                     broadcast_interval=0.05, push=engine.pushed.append)
    leader = threading.Thread(target=lead, args=(stopping,), kwargs={
        "key": key, "lock_poll": 0.05, "lock_check": 0.1, "min_backoff": 0.05,
        "say": said.append, "make_watcher": make_watcher})
    leader.start()
    try:
        eventually(lambda: any(line.startswith("Watching") for line in said), timeout=30)
        cluster = submitted(engine)
        eventually(lambda: reload(cluster).platform_resource_version, timeout=30)

        assert terminate_lock_session(key) == 1
        eventually(lambda: "Lost the leader lock; stepping down." in said, timeout=30)
        eventually(lambda: said[-1].endswith(", resuming)."), timeout=30)
        assert leader.is_alive()

        engine.platform.advance(3.0)  # what the platform does next is still applied
        eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=30)
    finally:
        stopping.set()
        leader.join(30)
    assert not leader.is_alive()
    terms = [line for line in said if line.startswith("Watching")]
    assert len(terms) == 2 and terms[0].endswith(").") and "resuming" not in terms[0]


def test_a_deposed_leader_has_its_batch_rolled_back_and_steps_down(engine):
    """The leader's session is lost while its process (and its streams) live: the standby
    takes the lock and a new term; the old leader's next batch is refused."""
    key = 0x7E59
    old_lock = LeaderLock(key)
    taken, finish = threading.Event(), threading.Event()

    def hold() -> None:  # the old leader's lock session, on a connection of its own
        try:
            assert old_lock.try_acquire()
            taken.set()
            finish.wait(60)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert taken.wait(30)
    old = Watcher(get_gateway(), watch_timeout=30, min_backoff=0.05, max_backoff=0.2,
                  broadcast_interval=0.05, push=engine.pushed.append,
                  fence=old_lock.fence()).start()
    new_lock = LeaderLock(key)
    new: Watcher | None = None
    try:
        assert old.synced.wait(30)
        cluster = submitted(engine)
        eventually(lambda: reload(cluster).platform_resource_version, timeout=30)

        assert terminate_lock_session(key) == 1
        eventually(new_lock.try_acquire, timeout=30)
        assert new_lock.epoch == old_lock.epoch + 1

        engine.platform.advance(3.0)  # the control plane comes up: events reach the old leader
        assert old.fenced.wait(30)
        assert old.stopping.is_set()
        cluster = reload(cluster)
        assert not cluster.platform_ready and cluster.phase != Cluster.Phase.RUNNING

        # The new leader goes on from where the old one was.
        new = Watcher(get_gateway(), watch_timeout=30, min_backoff=0.05, max_backoff=0.2,
                      broadcast_interval=0.05, push=engine.pushed.append,
                      fence=new_lock.fence(), resume=old.positions()).start()
        eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=30)
        assert new.health.streams["clusters"].relists == 0
        assert not new.fenced.is_set()
    finally:
        old.stop()
        if new is not None:
            new.stop()
        new_lock.release()
        finish.set()
        holder.join(30)


def test_a_pool_attached_on_the_platform_is_followed_live(engine, watcher):
    """A KubernetesNodes pool (v1.6) and its machines reach the portal through the watcher
    alone, and go when the pool goes; the cluster's own group is never confused with it."""
    from kubernetes import client as k8s

    from clusters.models import NodePool

    cluster = submitted(engine)
    engine.platform.advance(3.0)
    eventually(lambda: reload(cluster).phase == Cluster.Phase.RUNNING, timeout=10)
    custom = k8s.CustomObjectsApi(get_gateway().api_client)
    custom.create_namespaced_custom_object(
        "apps.cozystack.io", "v1alpha1", NS, "kubernetesnodes",
        {"metadata": {"name": "demo-batch"},
         "spec": {"cluster": "demo", "version": "v1.34", "instanceType": "u1.large",
                  "minReplicas": 2, "maxReplicas": 3}})
    engine.platform.advance(2.0)
    eventually(lambda: NodePool.objects.filter(cluster=cluster, name="batch", ready_nodes=2,
                                               instance_type="u1.large").exists(), timeout=10)
    assert cluster.node_groups.get().ready_nodes == 1
    custom.delete_namespaced_custom_object("apps.cozystack.io", "v1alpha1", NS,
                                           "kubernetesnodes", "demo-batch")
    engine.platform.advance(1.0)
    eventually(lambda: NodePool.objects.filter(cluster=cluster, name="batch",
                                               removed_at__isnull=False).exists(), timeout=10)
