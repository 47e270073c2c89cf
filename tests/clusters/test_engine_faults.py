"""The engine under faults, as its processes run in production: a watcher whose database
sessions are all terminated, a worker killed while it sends, a broker that refuses at commit.
Real processes, PostgreSQL, Redis and the simulated platform on the real clock. Slow.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest
from django.db import connection
from rest_framework.test import APIClient

from clusters import actions, tasks
from clusters.models import Cluster, ClusterEvent, Operation, OutboxEntry
from cozystack.simulator import Fault
from tests.api.factories import make_token
from tests.clusters.conftest import cluster_spec
from tests.clusters.test_engine_processes import operation_of, tenant_context
from tests.fixtures.processes import (
    ARTIFACTS,
    ROOT,
    _stop,
    eventually,
    free_port,
    isolated_broker_url,
    publishing_to,
    start_celery_worker,
    wait_for_port,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def on_live_platform(live_platform, settings):
    """This process validates against the live platform too."""
    from cozystack.gateway import reset_gateway

    settings.PLATFORM_KUBECONFIG = str(live_platform.kubeconfig_path)
    reset_gateway()
    yield live_platform
    reset_gateway()


def start_watcher(env: dict[str, str], log_name: str, *args: str) -> subprocess.Popen:
    ARTIFACTS.mkdir(exist_ok=True)
    with (ARTIFACTS / log_name).open("w") as out:
        return subprocess.Popen([sys.executable, "manage.py", "watch_platform", *args],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def terminate_sessions(application_name: str) -> int:
    """End every database session of one process (as a PostgreSQL restart would for it)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE application_name = %s", [application_name])
        return len(cursor.fetchall())


def test_the_watcher_process_survives_losing_every_database_session(
        process_env, on_live_platform):
    platform = on_live_platform
    app_name = f"watcher-{uuid.uuid4().hex[:8]}"
    env = {**process_env, "PGAPPNAME": app_name}
    log = ARTIFACTS / "watcher-faults.log"
    # Its own lock: the session's watcher process, if any, leads the portal's.
    watcher = start_watcher(env, log.name, "--lock-key", "0x7E5A", "--lock-check", "0.5",
                            "--lock-poll", "0.2", "--watch-timeout", "30")
    actor, ctx = tenant_context()
    name = f"pg{uuid.uuid4().hex[:6]}"
    try:
        eventually(lambda: "Watching the management cluster (term" in log.read_text(),
                   timeout=180, message="the watcher never led")
        # Sent here, polled by nobody (no worker takes this broker): the watcher alone
        # brings it to Running.
        with publishing_to(isolated_broker_url(13)):
            cluster = actions.do_create_cluster(actor, ctx, cluster_spec(name))
            tasks.apply_operation.run(operation_of(cluster).pk)
        eventually(lambda: operation_of(cluster).state == Operation.State.SUCCEEDED,
                   timeout=120, message="the watcher did not follow the creation")

        assert terminate_sessions(app_name) >= 1
        eventually(lambda: "resuming)." in log.read_text(), timeout=120,
                   message="the watcher did not lead again")

        platform.set_demand(ctx.tenant.namespace, name, "md0", 2)
        eventually(lambda: cluster.node_groups.get().ready_nodes == 2, timeout=120,
                   message="the watcher applies nothing after losing its sessions")
        assert watcher.poll() is None, log.read_text()[-2000:]
    finally:
        _stop(watcher)


def test_a_killed_workers_operation_is_taken_over_once_its_lease_runs_out(
        process_env, on_live_platform):
    platform = on_live_platform
    broker = isolated_broker_url(14)
    env = {**process_env, "REDIS_URL": broker, "OPERATION_LEASE_SECONDS": "3",
           "PLATFORM_REQUEST_TIMEOUT": "120"}
    actor, ctx = tenant_context()
    name = f"lease{uuid.uuid4().hex[:6]}"
    namespace = ctx.tenant.namespace
    workers: list[subprocess.Popen] = []
    with publishing_to(broker):
        try:
            first = start_celery_worker(env, "leased")
            workers.append(first)
            # The worker waits on the platform far longer than its lease.
            platform.faults.add(Fault(method="POST", path=f"namespaces/{namespace}/kubernetes",
                                      latency=60.0, times=1))
            cluster = actions.do_create_cluster(actor, ctx, cluster_spec(name))
            eventually(lambda: operation_of(cluster).step("submit")["state"] == "running",
                       timeout=120, message="the first worker never sent it")
            claimed_until = operation_of(cluster).lease_until
            # Its heartbeat renews the lease while it waits: nobody takes it over.
            eventually(lambda: operation_of(cluster).lease_until > claimed_until, timeout=30,
                       message="the lease was not renewed")
            assert not ClusterEvent.objects.filter(reason="operation.taken_over",
                                                   cluster=cluster).exists()

            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            # The broker would deliver the message again only after its visibility timeout
            # (600 s): the relay loop of the next worker takes the operation over instead.
            workers.append(start_celery_worker(env, "taker"))
            eventually(lambda: not operation_of(cluster).is_active, timeout=180,
                       message="the operation was never finished")
        finally:
            for worker in workers:
                _stop(worker)
    operation = operation_of(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert operation.attempts == 2
    assert ClusterEvent.objects.filter(operation=operation,
                                       reason="operation.taken_over").count() == 1
    objects = [o for o in platform.objects("Kubernetes", namespace)
               if o["metadata"]["name"] == name]
    assert len(objects) == 1


def start_redis(port: int) -> subprocess.Popen:
    redis_server = shutil.which("redis-server")
    assert redis_server, "redis-server is needed (make test checks it)"
    proc = subprocess.Popen([redis_server, "--bind", "127.0.0.1", "--port", str(port),
                             "--save", "", "--appendonly", "no"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    wait_for_port(port)
    return proc


def test_a_write_committed_while_the_broker_refuses_is_answered_and_started_once_it_is_back(
        process_env, on_live_platform, tenant, owner):
    port = free_port()
    broker = f"redis://127.0.0.1:{port}/0"
    redis_proc = start_redis(port)
    env = {**process_env, "REDIS_URL": broker}
    worker: subprocess.Popen | None = None
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(owner)}")
    body = {"name": "outage", "version": "v1.34",
            "node_groups": [{"name": "md0", "instance_type": "s1.large", "min_replicas": 1,
                             "max_replicas": 3}]}
    try:
        with publishing_to(broker):
            worker = start_celery_worker(env, "relay")
            redis_proc.kill()  # the broker goes away; the cache and channel layer stay up
            redis_proc.wait(10)

            response = client.post("/api/v1/tenants/acme/clusters/", body, format="json",
                                   HTTP_IDEMPOTENCY_KEY="during-outage")
            assert response.status_code == 201, response.content
            cluster = Cluster.objects.get(tenant=tenant, name="outage")
            operation = operation_of(cluster)
            assert operation.state == Operation.State.QUEUED
            entry = OutboxEntry.objects.get(operation=operation)
            assert entry.sent_at is None  # nobody could hand it over

            redis_proc = start_redis(port)  # the broker is back, empty
            eventually(lambda: OutboxEntry.objects.get(pk=entry.pk).sent_at, timeout=120,
                       message="the relay never handed it over")
            eventually(lambda: not operation_of(cluster).is_active, timeout=180,
                       message="the operation never ran")
    finally:
        if worker is not None:
            _stop(worker)
        redis_proc.kill()
        redis_proc.wait(10)
    operation = operation_of(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert operation.attempts == 1
    entry.refresh_from_db()
    assert entry.tries >= 2 and entry.last_error  # refused at commit, relayed after
