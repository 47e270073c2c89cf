"""WebSocket consumers: authorized at connect (outsiders and anonymous sockets are closed), the
current state sent at once, and a change reaching the page in its reader's variant."""

from __future__ import annotations

import asyncio
import threading

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import transaction
from django.test import Client

from clusters import events
from clusters.models import Cluster
from clusters.web import hub
from clusters.web.groups import LIVE_GROUP
from portal.asgi import application
from portal.consumers import CLOSE_TRY_AGAIN_LATER
from portal.permissions import Role
from portal.settings import CHANNEL_LAYERS as CONFIGURED_LAYERS
from tests.clusters.ui import make_cluster, offline_platform
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import free_port

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("offline_platform", "web_process")]
__all__ = ["offline_platform"]


@pytest_asyncio.fixture
async def web_process():
    """The test's event loop plays a web process: its hub stops (and leaves its groups) at
    the end, as a process that stops would."""
    yield
    await hub.stop()


def change(cluster_id: int, **fields) -> None:
    """A committed change of the cluster, published as every writer does."""
    with transaction.atomic():
        if fields:
            Cluster.objects.filter(pk=cluster_id).update(**fields)
        events.cluster_changed(cluster_id)


def _setup(roles: tuple[str, ...] = (Role.OWNER,)) -> dict:
    tenant = TenantFactory(slug="acme")
    users = {role: MembershipFactory(tenant=tenant, role=role).user for role in roles}
    outsider = MembershipFactory(tenant=TenantFactory(slug="globex"), role=Role.OWNER).user
    cluster = make_cluster(tenant, "demo")
    return {"tenant": tenant, "users": users, "outsider": outsider, "cluster": cluster}


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(path: str, user=None) -> tuple[WebsocketCommunicator, bool]:
    headers = [(b"origin", b"http://127.0.0.1")]
    if user is not None:
        headers.append((b"cookie", await database_sync_to_async(_cookie)(user)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, _code = await communicator.connect(timeout=5)
    return communicator, connected


DETAIL = "/ws/t/acme/clusters/demo/?lang=en"
LIST = "/ws/t/acme/clusters/?lang=en&phase=&version=&page=1"


@pytest.mark.parametrize("path", [DETAIL, LIST], ids=["detail", "list"])
async def test_an_outsiders_socket_is_closed(path):
    world = await database_sync_to_async(_setup)()
    communicator, connected = await connect(path, world["outsider"])
    assert not connected
    await communicator.disconnect()


@pytest.mark.parametrize("path", [DETAIL, LIST], ids=["detail", "list"])
async def test_an_anonymous_socket_is_closed(path):
    await database_sync_to_async(_setup)()
    communicator, connected = await connect(path)
    assert not connected
    await communicator.disconnect()


async def test_a_billing_users_socket_is_closed():
    world = await database_sync_to_async(_setup)((Role.OWNER, Role.BILLING))
    communicator, connected = await connect(DETAIL, world["users"][Role.BILLING])
    assert not connected
    await communicator.disconnect()


async def test_a_socket_for_a_cluster_of_another_tenant_is_closed():
    world = await database_sync_to_async(_setup)()
    await database_sync_to_async(make_cluster)(
        await database_sync_to_async(lambda: world["outsider"].memberships.get().tenant)(),
        "theirs")
    communicator, connected = await connect("/ws/t/acme/clusters/theirs/",
                                            world["users"][Role.OWNER])
    assert not connected
    await communicator.disconnect()


async def test_the_detail_socket_sends_the_current_state_at_once():
    world = await database_sync_to_async(_setup)((Role.OWNER, Role.VIEWER))
    communicator, connected = await connect(DETAIL, world["users"][Role.VIEWER])
    assert connected

    snapshot = await communicator.receive_from(timeout=5)

    assert 'id="cluster-status"' in snapshot and 'hx-swap-oob="true"' in snapshot
    assert "Running." in snapshot
    assert 'id="cluster-actions"' in snapshot and 'data-testid="actions"' not in snapshot
    await communicator.disconnect()


async def test_a_broadcast_after_a_change_reaches_the_page_in_the_readers_role_variant():
    world = await database_sync_to_async(_setup)((Role.OWNER, Role.VIEWER))
    viewer, _ = await connect(DETAIL, world["users"][Role.VIEWER])
    owner, _ = await connect(DETAIL, world["users"][Role.OWNER])
    await viewer.receive_from(timeout=5)
    await owner.receive_from(timeout=5)
    cluster = world["cluster"]

    await database_sync_to_async(change)(cluster.pk, phase=Cluster.Phase.DEGRADED,
                                         status_message="Degraded: 1 of 3 workers ready.")

    to_viewer = await viewer.receive_from(timeout=5)
    to_owner = await owner.receive_from(timeout=5)
    assert "Degraded: 1 of 3 workers ready." in to_viewer
    assert "Degraded: 1 of 3 workers ready." in to_owner
    assert 'data-testid="actions"' not in to_viewer
    assert 'data-testid="actions"' in to_owner and 'data-testid="delete"' in to_owner
    await viewer.disconnect()
    await owner.disconnect()


async def test_the_list_socket_sends_rows_and_follows_changes_new_clusters_and_deletions():
    world = await database_sync_to_async(_setup)((Role.MEMBER,))
    communicator, connected = await connect(LIST, world["users"][Role.MEMBER])
    assert connected
    snapshot = await communicator.receive_from(timeout=5)
    cluster = world["cluster"]
    assert snapshot.lstrip().startswith('<div id="cluster-list" class="card" hx-swap-oob="true">')
    assert f'id="cluster-{cluster.pk}"' in snapshot
    # The tenant's month-to-date cost above the rows, each row's own in its last cell.
    assert 'data-testid="tenant-mtd"' in snapshot and "CHF 0.00" in snapshot
    assert 'data-testid="cost">CHF 0.00</td>' in snapshot

    await database_sync_to_async(change)(cluster.pk, phase=Cluster.Phase.FAILED,
                                         last_error="Helm install failed: boom")
    update = await communicator.receive_from(timeout=5)
    assert update.lstrip().startswith(f'<tbody id="cluster-{cluster.pk}" class="cluster-row" '
                                      f'hx-swap-oob="true"')
    assert "Helm install failed: boom" in update

    def create() -> int:
        new = make_cluster(world["tenant"], "zeta")
        change(new.pk)
        return new.pk

    new_id = await database_sync_to_async(create)()
    appended = await communicator.receive_from(timeout=5)
    assert appended.startswith('<table hx-swap-oob="beforeend:#cluster-table">')
    assert f'<tbody id="cluster-{new_id}" class="cluster-row" data-phase' in appended
    assert appended.endswith('<div id="clusters-empty" hx-swap-oob="delete"></div>')

    from django.utils import timezone

    await database_sync_to_async(change)(new_id, deleted_at=timezone.now(),
                                         phase=Cluster.Phase.DELETED)
    assert await communicator.receive_from(timeout=5) == (
        f'<tbody id="cluster-{new_id}" hx-swap-oob="delete"></tbody>')
    await communicator.disconnect()


async def test_a_filtered_list_socket_ignores_clusters_outside_its_filter():
    world = await database_sync_to_async(_setup)((Role.MEMBER,))
    communicator, _ = await connect("/ws/t/acme/clusters/?phase=failed",
                                    world["users"][Role.MEMBER])
    snapshot = await communicator.receive_from(timeout=5)
    cluster = world["cluster"]
    assert f'id="cluster-{cluster.pk}"' not in snapshot

    await database_sync_to_async(change)(cluster.pk)  # still running
    assert await communicator.receive_nothing(timeout=0.5)
    await communicator.disconnect()


# --------------------------------------------------------------------------- the hub


async def test_the_list_page_gets_its_row_while_no_detail_page_is_open():
    world = await database_sync_to_async(_setup)((Role.MEMBER,))
    communicator, _ = await connect(LIST, world["users"][Role.MEMBER])
    await communicator.receive_from(timeout=5)
    cluster = world["cluster"]

    await database_sync_to_async(change)(cluster.pk, phase=Cluster.Phase.DEGRADED,
                                         status_message="Degraded: 1 of 3 workers ready.")

    update = await communicator.receive_from(timeout=5)
    assert f'<tbody id="cluster-{cluster.pk}"' in update and "Degraded: 1 of 3" in update
    await communicator.disconnect()


async def test_pages_of_one_process_share_one_group_membership_and_leave_it_when_closed():
    world = await database_sync_to_async(_setup)((Role.OWNER, Role.VIEWER))
    pages = [await connect(path, world["users"][role]) for path, role in (
        (LIST, Role.OWNER), (LIST, Role.VIEWER), (DETAIL, Role.VIEWER))]
    for communicator, _ in pages:
        await communicator.receive_from(timeout=5)
    the_hub = hub.hub()
    tenant_id = world["tenant"].pk
    assert the_hub.joined == {LIVE_GROUP} and len(the_hub.pages[tenant_id]) == 3

    for communicator, _ in pages[:2]:
        await communicator.disconnect()
    assert the_hub.joined == {LIVE_GROUP} and len(the_hub.pages[tenant_id]) == 1
    await pages[2][0].disconnect()
    assert the_hub.joined == set() and tenant_id not in the_hub.pages


async def test_pushes_reach_the_page_without_a_hop_to_the_database_thread(monkeypatch):
    import channels.consumer

    world = await database_sync_to_async(_setup)((Role.MEMBER,))
    communicator, _ = await connect(LIST, world["users"][Role.MEMBER])
    await communicator.receive_from(timeout=5)
    cluster = world["cluster"]
    hops = []
    original = channels.consumer.aclose_old_connections

    async def counted() -> None:
        hops.append(1)
        await original()

    monkeypatch.setattr(channels.consumer, "aclose_old_connections", counted)

    await database_sync_to_async(change)(cluster.pk, status_message="Running: rebooted.")

    assert "Running: rebooted." in await communicator.receive_from(timeout=5)
    assert hops == []
    await communicator.disconnect()
    assert hops  # the socket's own events keep channels' path


async def test_the_coalescer_pushes_the_oldest_change_first_in_bounded_batches():
    release = threading.Event()
    sent: list[int] = []
    coalescer = events.Coalescer(interval=0.05, send=lambda cluster_id: push(cluster_id),
                                    batch=2)

    def push(cluster_id: int) -> None:
        if not sent:
            release.wait(5)  # the first push is slow: a backlog builds up behind it
        if cluster_id == 30:
            coalescer.submit(1)  # changes again while its turn has not come: no second push
        sent.append(cluster_id)

    coalescer.start()
    try:
        coalescer.submit(50)
        await asyncio.sleep(0.1)
        for cluster_id in (30, 9, 40, 9, 30, 1):  # 9 and 30 change again: they keep their place
            coalescer.submit(cluster_id)
        release.set()
        for _ in range(100):
            if len(sent) >= 5:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
    finally:
        coalescer.stop()

    assert sent == [50, 30, 9, 40, 1]


# --------------------------------------------------------------------------- Redis out of reach


def _redis_layer(port: int) -> dict:
    """The configured Redis channel layer (the suite runs with REDIS_URL), on ``port``."""
    layer = CONFIGURED_LAYERS["default"]
    host = {**layer["CONFIG"]["hosts"][0], "address": f"redis://127.0.0.1:{port}/1"}
    return {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [host]}}}


async def _closed_with(communicator: WebsocketCommunicator) -> int | None:
    while True:
        output = await communicator.receive_output(timeout=10)
        if output["type"] == "websocket.close":
            return output.get("code")


@pytest.mark.parametrize("path", [DETAIL, LIST], ids=["detail", "list"])
async def test_a_socket_is_closed_try_again_later_while_the_channel_layer_refuses(path, settings):
    settings.CHANNEL_LAYERS = _redis_layer(free_port())
    world = await database_sync_to_async(_setup)()

    communicator, connected = await connect(path, world["users"][Role.OWNER])

    assert connected  # accepted, so that the page sees why it is closed
    assert await _closed_with(communicator) == CLOSE_TRY_AGAIN_LATER
    await communicator.wait()


async def test_an_open_socket_is_closed_try_again_later_when_redis_goes_away(own_redis,
                                                                            settings):
    settings.CHANNEL_LAYERS = _redis_layer(own_redis.port)
    world = await database_sync_to_async(_setup)()
    communicator, connected = await connect(DETAIL, world["users"][Role.OWNER])
    assert connected
    await communicator.receive_from(timeout=5)  # the snapshot: waiting for pushes now

    await asyncio.get_running_loop().run_in_executor(None, own_redis.stop)

    assert await _closed_with(communicator) == CLOSE_TRY_AGAIN_LATER
    await communicator.wait()
