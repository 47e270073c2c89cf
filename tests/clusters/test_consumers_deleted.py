"""A deleted cluster's page opens no socket: the cluster's live socket refuses it (the deleted
cluster's read-only page has nothing live to follow)."""

from __future__ import annotations

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from clusters.models import Cluster
from portal.permissions import Role
from tests.clusters.test_consumers import _setup, connect, web_process
from tests.clusters.ui import offline_platform

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True),
              pytest.mark.usefixtures("offline_platform", "web_process")]
__all__ = ["offline_platform", "web_process"]


def _delete(cluster_id: int) -> None:
    Cluster.objects.filter(pk=cluster_id).update(deleted_at=timezone.now(),
                                                 phase=Cluster.Phase.DELETED)


async def test_the_socket_of_a_deleted_cluster_is_closed():
    world = await database_sync_to_async(_setup)()
    await database_sync_to_async(_delete)(world["cluster"].pk)
    communicator, connected = await connect("/ws/t/acme/clusters/demo/?lang=en",
                                            world["users"][Role.OWNER])
    assert not connected
    await communicator.disconnect()
