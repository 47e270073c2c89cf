"""The release-neutral spec's migration keeps every row: stored presets take the portal's own
names (upstream migration 39's mapping, same sizes), and going back restores the old ones."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("clusters", "0005_cluster_host_unique_live")]
AFTER = [("clusters", "0006_release_neutral_spec")]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_stored_presets_are_renamed_and_nothing_is_lost_either_way():
    apps = migrate(BEFORE)
    Tenant = apps.get_model("portal", "Tenant")
    Cluster = apps.get_model("clusters", "Cluster")
    NodeGroup = apps.get_model("clusters", "NodeGroup")
    tenant = Tenant.objects.create(slug="acme", name="ACME")
    for name, preset in (("a", "large"), ("b", "2xlarge"), ("c", "micro"), ("d", "medium")):
        cluster = Cluster.objects.create(tenant=tenant, name=name, version="v1.34",
                                         control_plane_preset=preset)
        NodeGroup.objects.create(cluster=cluster, name="md0", instance_type="u1.large",
                                 min_replicas=1, max_replicas=3, disk_gib=70)
    try:
        apps = migrate(AFTER)
        Cluster = apps.get_model("clusters", "Cluster")
        assert dict(Cluster.objects.values_list("name", "control_plane_preset")) == {
            "a": "c1.medium", "b": "c1.xlarge", "c": "t1.micro", "d": "c1.small"}
        group = apps.get_model("clusters", "NodeGroup").objects.get(cluster__name="a")
        assert (group.disk_gib, group.storage_class, group.kubelet) == (70, "", {})
        assert Cluster.objects.get(name="a").auto_repair is None

        apps = migrate(BEFORE)
        Cluster = apps.get_model("clusters", "Cluster")
        assert dict(Cluster.objects.values_list("name", "control_plane_preset")) == {
            "a": "large", "b": "2xlarge", "c": "micro", "d": "medium"}
    finally:
        migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
