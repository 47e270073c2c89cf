"""The engine as it runs in production: real Celery workers on Redis, the watcher process, the
simulated platform on the real clock. Slow (processes start); kept to a few.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid

import pytest

from clusters import actions
from clusters.models import Cluster, Operation
from cozystack.gateway import reset_gateway
from cozystack.simulator import Fault
from portal.audit import Actor
from portal.permissions import Role
from portal.tenancy import TenantContext
from tests.clusters.conftest import cluster_spec
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import (
    ARTIFACTS,
    ROOT,
    _stop,
    eventually,
    isolated_broker_url,
    publishing_to,
    start_celery_worker,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
# A broker of its own (another database of the suite's Redis): no other worker of the session
# may take this test's messages.
ISOLATED_BROKER = isolated_broker_url(11)


def tenant_context() -> tuple[Actor, TenantContext]:
    tenant = TenantFactory(slug=f"eng{uuid.uuid4().hex[:8]}")
    membership = MembershipFactory(tenant=tenant, role=Role.OWNER)
    return Actor(user=membership.user), TenantContext(tenant, Role.OWNER, membership)


@pytest.fixture
def on_live_platform(live_platform, settings):
    """This process validates against the live platform too."""
    settings.PLATFORM_KUBECONFIG = str(live_platform.kubeconfig_path)
    reset_gateway()
    yield live_platform
    reset_gateway()


def operation_of(cluster: Cluster) -> Operation:
    return Operation.objects.filter(cluster_id=cluster.pk).order_by("-pk").first()


def test_a_worker_killed_mid_operation_is_replaced_without_duplicate_or_lost_intent(
        process_env, on_live_platform):
    platform = on_live_platform
    env = {**process_env, "REDIS_URL": ISOLATED_BROKER, "OPERATION_LEASE_SECONDS": "2",
           "CELERY_VISIBILITY_TIMEOUT": "4"}
    actor, ctx = tenant_context()
    name = f"kill{uuid.uuid4().hex[:6]}"
    namespace = ctx.tenant.namespace
    workers: list[subprocess.Popen] = []
    with publishing_to(ISOLATED_BROKER):
        try:
            first = start_celery_worker(env, "first")
            workers.append(first)
            # The POST reaches the platform slowly: the worker dies while it waits for the
            # answer, and the platform creates the object all the same.
            platform.faults.add(Fault(method="POST", path=f"namespaces/{namespace}/kubernetes",
                                      latency=3.0, times=1))
            cluster = actions.do_create_cluster(actor, ctx, cluster_spec(name))
            def sending() -> tuple[str, str, bool] | None:
                operation = operation_of(cluster)
                seen.append((operation.state, operation.step("submit")["state"],
                             operation.submitted_at is not None))
                return operation.state == Operation.State.RUNNING and \
                    operation.step("submit")["state"] == "running"

            seen: list[tuple[str, str, bool]] = []
            try:
                eventually(sending, timeout=20, interval=0.05)
            except AssertionError:
                raise AssertionError(f"the first worker never sent it: {seen[-3:]}") from None
            claimed_at = time.monotonic()
            time.sleep(0.5)
            os.killpg(first.pid, signal.SIGKILL)
            first.wait(10)
            eventually(lambda: platform.get_object("Kubernetes", namespace, name), timeout=10)
            assert operation_of(cluster).submitted_at is None  # nobody recorded the POST

            # After the broker's visibility timeout the message is delivered again.
            time.sleep(max(0.0, 4.5 - (time.monotonic() - claimed_at)))
            workers.append(start_celery_worker(env, "second"))
            eventually(lambda: not operation_of(cluster).is_active, timeout=60,
                       message="the operation was never finished")
        finally:
            for worker in workers:
                _stop(worker)
    operation = operation_of(cluster)
    assert operation.state == Operation.State.SUCCEEDED, operation.error_message
    assert operation.attempts == 2
    objects = [o for o in platform.objects("Kubernetes", namespace)
               if o["metadata"]["name"] == name]
    assert len(objects) == 1 and objects[0]["metadata"]["generation"] == 1
    writes = [(r.method, r.status) for r in platform.requests(path_contains=namespace)
              if r.method in ("POST", "PUT")]
    assert writes[:1] == [("POST", 201)] or writes[:1] == [("POST", 0)]
    assert ("POST", 409) in writes and writes.count(("PUT", 200)) == 1
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.RUNNING


def test_end_to_end_a_worker_and_the_watcher_create_and_delete_a_cluster(
        on_live_platform, celery_worker_proc, watcher_proc, process_env):
    platform = on_live_platform
    actor, ctx = tenant_context()
    cluster = actions.do_create_cluster(actor, ctx, cluster_spec("e2e"))
    eventually(lambda: not operation_of(cluster).is_active, timeout=60)
    assert operation_of(cluster).state == Operation.State.SUCCEEDED
    cluster.refresh_from_db()
    assert cluster.phase == Cluster.Phase.RUNNING and cluster.kubeconfig_ready

    platform.set_demand(ctx.tenant.namespace, "e2e", "md0", 2)
    eventually(lambda: cluster.node_groups.get().ready_nodes == 2, timeout=20,
               message="the watcher did not follow the autoscaler")

    # A second watcher waits for the leader's lock instead of running beside it.
    log = ARTIFACTS / "watcher-second.log"
    with log.open("w") as out:
        second = subprocess.Popen([sys.executable, "manage.py", "watch_platform",
                                   "--lock-poll", "0.2"], cwd=ROOT, env=process_env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        eventually(lambda: "waiting for its lock" in log.read_text(), timeout=120)
        assert "Watching the management cluster" not in log.read_text()
    finally:
        _stop(second)

    actions.do_delete_cluster(actor, ctx, "e2e", confirm="e2e")
    eventually(lambda: not operation_of(cluster).is_active, timeout=60)
    cluster.refresh_from_db()
    assert operation_of(cluster).state == Operation.State.SUCCEEDED
    assert cluster.deleted_at is not None and cluster.phase == Cluster.Phase.DELETED
    assert platform.get_object("Kubernetes", ctx.tenant.namespace, "e2e") is None
