"""What reaches an open cluster page when the cluster changes, through the process's hub: in
order (each push carries the cluster's revision and a page never goes back to an older one),
coalesced per page, derived from committed rows, nothing rendered for a cluster nobody looks
at, and caught up at once after a reconnect, a restart of the web process or a lost notice."""

from __future__ import annotations

import re
import time

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.db import transaction
from django.test.signals import template_rendered

from clusters import events
from clusters.models import Cluster, ClusterRevision
from clusters.web import broadcast, hub, live
from clusters.web.groups import LIVE_GROUP
from portal.permissions import Role
from tests.clusters.test_consumers import DETAIL, LIST, _setup, change, connect
from tests.clusters.ui import make_cluster, offline_platform
from tests.factories import TenantFactory

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("offline_platform", "web_process")]
__all__ = ["offline_platform"]

STAMP = re.compile(r'data-stamp="(\d+)"')


@pytest_asyncio.fixture
async def web_process():
    yield
    await hub.stop()


def stamps(frame: str) -> list[int]:
    return [int(value) for value in STAMP.findall(frame)]


def revision(cluster_id: int) -> int:
    found = ClusterRevision.objects.filter(cluster_id=cluster_id).first()
    return found.revision if found else 0


async def frames_until_quiet(communicator, quiet: float = 1.0) -> list[str]:
    received = []
    while not await communicator.receive_nothing(timeout=quiet):
        received.append(await communicator.receive_from())
    return received


# --------------------------------------------------------------------------- order


async def test_every_push_carries_the_clusters_revision_and_it_only_grows():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    detail, _ = await connect(DETAIL, world["users"][Role.OWNER])
    shown = [stamps(await listing.receive_from(timeout=5))[0],
             stamps(await detail.receive_from(timeout=5))[0]]
    assert shown == [0, 0]

    for n in (1, 2):
        await database_sync_to_async(change)(cluster.pk, status_message=f"Running: step {n}.")
        row = await listing.receive_from(timeout=5)
        regions = await detail.receive_from(timeout=5)
        assert f"Running: step {n}." in row and f"Running: step {n}." in regions
        # Every region of the push is labelled with the revision it was read at.
        assert set(stamps(row)) == set(stamps(regions)) == {
            await database_sync_to_async(revision)(cluster.pk)}
    await listing.disconnect()
    await detail.disconnect()


async def test_a_page_never_takes_an_older_state_than_the_one_it_shows(monkeypatch):
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    await listing.receive_from(timeout=5)
    await database_sync_to_async(change)(cluster.pk, status_message="Running: newest.")
    assert "Running: newest." in await listing.receive_from(timeout=5)
    newest = await database_sync_to_async(revision)(cluster.pk)
    the_hub = hub.hub()

    # A notice that arrives late (sent by another process before the newest one).
    the_hub.notice(cluster.tenant_id, cluster.pk, newest - 1)
    assert await listing.receive_nothing(timeout=0.5)

    # Two reads of the cluster racing: the one that finishes last began first and is older.
    older = await database_sync_to_async(live.row_pushes)(
        {cluster.pk: {"en"}}, {cluster.tenant_id: "acme"})
    stale = older[cluster.pk]
    stale = live.RowPush(stale.cluster_id, stale.tenant_id, newest - 1, stale.phase,
                         stale.version, stale.deleted,
                         {"en": stale.html["en"].replace("Running: newest.", "Running: old.")})
    monkeypatch.setattr(live, "row_pushes", lambda wanted, slugs: {cluster.pk: stale})
    the_hub.notice(cluster.tenant_id, cluster.pk, newest + 1)
    assert await listing.receive_nothing(timeout=0.5)
    await listing.disconnect()


# --------------------------------------------------------------------------- coalescing


async def test_a_cluster_changing_fifty_times_reaches_an_open_page_a_few_times_ending_last():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    detail, _ = await connect(DETAIL, world["users"][Role.OWNER])
    await listing.receive_from(timeout=5)
    await detail.receive_from(timeout=5)

    def fifty_changes() -> float:
        started = time.monotonic()
        for n in range(1, 51):
            change(cluster.pk, status_message=f"Running: change {n:02d}.")
        return time.monotonic() - started

    took = await database_sync_to_async(fifty_changes)()
    for communicator in (listing, detail):
        frames = await frames_until_quiet(communicator)
        # At most one push per interval while it changed, one at its start and the last one.
        assert 1 <= len(frames) <= 2 + took / hub.PUSH_SECONDS
        assert len(frames) < 50
        assert "Running: change 50." in frames[-1]
        await communicator.disconnect()


# --------------------------------------------------------------------------- catch-up


async def test_a_page_that_reconnects_shows_what_changed_meanwhile_in_its_first_frame():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    for name, path in (("list", LIST), ("detail", DETAIL)):
        communicator, _ = await connect(path, world["users"][Role.OWNER])
        await communicator.receive_from(timeout=5)
        await communicator.disconnect()
        await database_sync_to_async(change)(cluster.pk, status_message=f"Running: {name}.")

        again, _ = await connect(path, world["users"][Role.OWNER])
        assert f"Running: {name}." in await again.receive_from(timeout=5)
        await again.disconnect()


async def test_after_its_web_process_restarts_a_page_catches_up_in_its_first_frame():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    communicator, _ = await connect(DETAIL, world["users"][Role.OWNER])
    await communicator.receive_from(timeout=5)
    await hub.stop()  # the process goes, with its hub and its memberships
    await database_sync_to_async(change)(cluster.pk, status_message="Running: while down.")
    await communicator.disconnect()

    again, _ = await connect(DETAIL, world["users"][Role.OWNER])  # the browser reconnects
    assert "Running: while down." in await again.receive_from(timeout=5)
    await database_sync_to_async(change)(cluster.pk, status_message="Running: back.")
    assert "Running: back." in await again.receive_from(timeout=5)
    await again.disconnect()


async def test_pages_catch_up_after_the_hub_lost_notices_on_the_channel_layer(monkeypatch):
    monkeypatch.setattr(hub, "RETRY_SECONDS", 0.05)
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    the_hub = hub.hub()
    flaky = the_hub.layer = _Flaky(the_hub.layer)
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    await listing.receive_from(timeout=5)

    flaky.failures = 1  # the next notice is lost: the layer fails while handing it over
    await database_sync_to_async(change)(cluster.pk, status_message="Running: lost notice.")

    snapshot = await listing.receive_from(timeout=5)
    assert snapshot.lstrip().startswith('<div id="cluster-list"')
    assert "Running: lost notice." in snapshot
    await listing.disconnect()


class _Flaky:
    """A channel layer that fails to hand over the next ``failures`` messages."""

    def __init__(self, layer) -> None:
        self.layer, self.failures = layer, 0

    def __getattr__(self, name):
        return getattr(self.layer, name)

    async def receive(self, channel):
        message = await self.layer.receive(channel)
        if self.failures:
            self.failures -= 1
            raise ConnectionError("the channel layer went away")
        return message


# --------------------------------------------------------------------------- rows are the truth


async def test_a_change_that_rolls_back_reaches_no_page_and_counts_nothing():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    await listing.receive_from(timeout=5)

    def rolled_back() -> None:
        with pytest.raises(RuntimeError), transaction.atomic():
            Cluster.objects.filter(pk=cluster.pk).update(status_message="Never committed.")
            events.cluster_changed(cluster.pk)
            raise RuntimeError("the change fails")

    await database_sync_to_async(rolled_back)()
    assert await listing.receive_nothing(timeout=0.5)
    assert await database_sync_to_async(revision)(cluster.pk) == 0
    await listing.disconnect()


async def test_a_push_that_never_came_is_made_good_by_the_next_one_from_the_rows():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    listing, _ = await connect(LIST, world["users"][Role.OWNER])
    await listing.receive_from(timeout=5)

    def unannounced() -> None:  # committed and counted, but its notice is lost
        with transaction.atomic():
            Cluster.objects.filter(pk=cluster.pk).update(last_error="Helm upgrade failed: x",
                                                          phase=Cluster.Phase.FAILED)
            events.count_change(cluster.pk)

    await database_sync_to_async(unannounced)()
    assert await listing.receive_nothing(timeout=0.5)
    await database_sync_to_async(change)(cluster.pk, status_message="Failed: see below.")

    row = await listing.receive_from(timeout=5)
    assert "Helm upgrade failed: x" in row and "Failed: see below." in row
    await listing.disconnect()


async def test_a_notice_naming_another_tenants_cluster_shows_nothing_of_it():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    theirs = await database_sync_to_async(
        lambda: make_cluster(TenantFactory(slug="initech"), "zeta",
                             status_message="Their secret."))()
    listing, _ = await connect(LIST, world["users"][Role.OWNER])  # the last page: takes in new
    await listing.receive_from(timeout=5)

    await get_channel_layer().group_send(LIVE_GROUP, broadcast.notice(
        [(world["tenant"].pk, theirs.pk, 99)]))
    assert await listing.receive_nothing(timeout=0.5)
    await listing.disconnect()


# --------------------------------------------------------------------------- nobody looking


async def test_a_change_nobody_looks_at_renders_nothing_and_sends_one_small_notice(
        monkeypatch):
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    cluster = world["cluster"]
    other = await database_sync_to_async(make_cluster)(world["tenant"], "other")
    # A page is open on another cluster of the tenant: its process hears of the change, and
    # renders nothing for it.
    detail, _ = await connect(DETAIL, world["users"][Role.OWNER])
    await detail.receive_from(timeout=5)
    the_hub = hub.hub()
    rendered_before = the_hub.stats["rendered"]
    sent, templates = [], []
    layer = get_channel_layer()
    group_send = layer.group_send

    async def recorded(group, message):
        sent.append((group, message))
        await group_send(group, message)

    monkeypatch.setattr(layer, "group_send", recorded)
    template_rendered.connect(lambda sender, template, **kw: templates.append(template.name),
                              weak=False, dispatch_uid="live-test")
    try:
        await database_sync_to_async(change)(other.pk, status_message="Running: unseen.")
        assert await detail.receive_nothing(timeout=0.5)
    finally:
        template_rendered.disconnect(dispatch_uid="live-test")

    assert [group for group, _message in sent] == [LIVE_GROUP]
    assert sent[0][1] == broadcast.notice([(cluster.tenant_id, other.pk, 1)])
    assert templates == []
    assert the_hub.stats["rendered"] == rendered_before
    await detail.disconnect()


async def test_a_detail_page_in_another_language_and_role_gets_its_own_variant():
    world = await database_sync_to_async(_setup)((Role.OWNER, Role.VIEWER))
    cluster = world["cluster"]
    viewer, _ = await connect(DETAIL, world["users"][Role.VIEWER])
    owner, _ = await connect("/ws/t/acme/clusters/demo/?lang=fr", world["users"][Role.OWNER])
    await viewer.receive_from(timeout=5)
    assert 'data-testid="delete"' in await owner.receive_from(timeout=5)

    await database_sync_to_async(change)(cluster.pk, phase=Cluster.Phase.DEGRADED)
    to_viewer = await viewer.receive_from(timeout=5)
    to_owner = await owner.receive_from(timeout=5)
    assert ">Degraded<" in to_viewer and 'data-testid="actions"' not in to_viewer
    assert ">Dégradé<" in to_owner and 'data-testid="delete"' in to_owner

    # A change that leaves the forms as they are does not send them again.
    await database_sync_to_async(change)(cluster.pk, status_message="Degraded: 2 of 3.")
    assert 'data-testid="delete"' not in await owner.receive_from(timeout=5)
    await viewer.disconnect()
    await owner.disconnect()


async def test_an_outsiders_hub_hears_nothing_of_another_tenant():
    world = await database_sync_to_async(_setup)((Role.OWNER,))
    outsider_page, _ = await connect("/ws/t/globex/clusters/", world["outsider"])
    await outsider_page.receive_from(timeout=5)
    await database_sync_to_async(change)(world["cluster"].pk, status_message="Running: ours.")
    assert await outsider_page.receive_nothing(timeout=0.5)
    await outsider_page.disconnect()
