"""The web role, as ``run_portal`` starts it (uvicorn, Redis channel layer), with signed-in
WebSockets open: an idle page keeps waiting for pushes past the channel layer's own BZPOPMIN
timeout and gets a change committed then; on SIGTERM every client is closed with 1012 (service
restart) and the process exits, whatever point of its wait each consumer was at.

bench/bench_sigterm.py measures the same over 20 trials with 50 sockets each.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
from collections.abc import Iterator

import pytest
from channels_redis.core import RedisChannelLayer
from django.db import transaction
from django.test import Client
from websockets.asyncio.client import connect

from clusters.events import cluster_changed
from clusters.management.commands.run_portal import web_command
from clusters.models import Cluster
from portal.permissions import Role
from tests.api.factories import make_cluster
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import ROOT, _stop, free_port, wait_for_port

SOCKETS = 20
# Long enough to notice a hang (a process that never exits), far from a normal exit.
EXIT_DEADLINE_SECONDS = 30


@pytest.fixture
def world(transactional_db):
    tenant = TenantFactory(slug=f"restart{random.randrange(10**6)}")  # noqa: S311
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    clusters = [make_cluster(tenant, f"c{i}") for i in range(3)]
    client = Client()
    client.force_login(owner)
    return {"slug": tenant.slug, "tenant_id": tenant.pk,
            "clusters": [cluster.name for cluster in clusters], "first": clusters[0].pk,
            "cookie": f"sessionid={client.cookies['sessionid'].value}"}


@pytest.fixture
def web(process_env, tmp_path) -> Iterator[tuple[subprocess.Popen, int]]:
    port = free_port()
    with (tmp_path / "web.log").open("w") as log:
        proc = subprocess.Popen(web_command("127.0.0.1", port), cwd=ROOT, env=process_env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(port, timeout=60)
        yield proc, port
    finally:
        _stop(proc)


async def _open(port: int, world: dict, count: int) -> list:
    async def one(i: int):
        path = (f"/ws/t/{world['slug']}/clusters/?lang=en" if i % 2 == 0 else
                f"/ws/t/{world['slug']}/clusters/{world['clusters'][i % 3]}/?lang=en")
        socket = await connect(f"ws://127.0.0.1:{port}{path}", origin=f"http://127.0.0.1:{port}",
                               additional_headers=[("Cookie", world["cookie"])],
                               open_timeout=30, ping_interval=None, max_size=None)
        await socket.recv()  # the snapshot: the consumer now waits for pushes
        return socket

    return list(await asyncio.gather(*(one(i) for i in range(count))))


def _degrade(cluster_id: int) -> None:
    """A change committed as the watcher commits one: the row, its revision, the notice."""
    with transaction.atomic():
        Cluster.objects.filter(pk=cluster_id).update(phase=Cluster.Phase.DEGRADED)
        cluster_changed(cluster_id)


async def _close_code(socket) -> int | None:
    try:
        async for _frame in socket:
            pass
    except Exception:  # noqa: BLE001, S110 - what is asked is how it was closed
        pass
    return socket.close_code


async def _exited(proc: subprocess.Popen, seconds: float) -> bool:
    for _ in range(int(seconds * 10)):
        if proc.poll() is not None:
            return True
        await asyncio.sleep(0.1)
    return proc.poll() is not None


@pytest.mark.asyncio
async def test_idle_sockets_get_pushes_and_every_socket_is_closed_1012_when_web_stops(web,
                                                                                     world):
    proc, port = web
    sockets = await _open(port, world, SOCKETS)

    # Idle for longer than the channel layer's blocking read: the hub keeps waiting.
    await asyncio.sleep(RedisChannelLayer.brpop_timeout + 1)
    await asyncio.to_thread(_degrade, world["first"])
    list_sockets = sockets[::2]
    pushed = await asyncio.gather(*(asyncio.wait_for(s.recv(), 10) for s in list_sockets))
    assert all(f'id="cluster-{world["first"]}"' in frame and "Degraded" in frame
               for frame in pushed)

    codes = asyncio.gather(*(_close_code(s) for s in sockets))
    os.killpg(proc.pid, signal.SIGTERM)

    assert await _exited(proc, EXIT_DEADLINE_SECONDS), "web did not exit after SIGTERM"
    assert set(await asyncio.wait_for(codes, 10)) == {1012}


@pytest.mark.asyncio
@pytest.mark.parametrize("trial", [1, 2, 3])
async def test_web_exits_on_sigterm_at_any_point_of_the_consumers_wait(web, world, trial):
    proc, port = web
    sockets = await _open(port, world, SOCKETS)
    codes = asyncio.gather(*(_close_code(s) for s in sockets))
    # Anywhere in the channel layer's 5 s read cycle (the hang depended on where).
    await asyncio.sleep(random.uniform(0, RedisChannelLayer.brpop_timeout))  # noqa: S311

    os.killpg(proc.pid, signal.SIGTERM)

    assert await _exited(proc, EXIT_DEADLINE_SECONDS), "web did not exit after SIGTERM"
    assert set(await asyncio.wait_for(codes, 10)) == {1012}
