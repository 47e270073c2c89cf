"""The desired rows and operation records hold every field of the release-neutral spec."""

from __future__ import annotations

import dataclasses

import pytest

from clusters.desired import write_desired_rows
from clusters.models import Cluster
from cozystack.specjson import spec_from_json, spec_to_json
from cozystack.specs import AutoRepairSpec, OidcUserSpec
from tests.clusters.conftest import cluster_spec, group

pytestmark = pytest.mark.django_db


def v16_spec():
    return dataclasses.replace(
        cluster_spec(groups=(
            group("md0"),
            dataclasses.replace(group("big", roles=()), storage_class="replicated-async",
                                max_unhealthy="1", node_startup_timeout="20m"),
        )),
        auto_repair=AutoRepairSpec(enabled=True, max_unhealthy="40%",
                                   node_startup_timeout="15m"),
        oidc_users=(OidcUserSpec("zoe@example.org", "view"),
                    OidcUserSpec("ada@example.org", "admin")),
    )


def test_rows_give_back_the_spec_they_were_written_from(tenant):
    spec = v16_spec()
    cluster = Cluster(tenant=tenant, name=spec.name)
    write_desired_rows(cluster, spec)
    cluster = Cluster.objects.get(pk=cluster.pk)
    assert cluster.to_spec() == dataclasses.replace(spec, namespace=tenant.namespace)
    assert [u.email for u in cluster.to_spec().oidc_users] == ["ada@example.org",
                                                               "zoe@example.org"]


def test_no_auto_repair_setting_stays_the_platform_default(tenant):
    spec = cluster_spec()
    cluster = Cluster(tenant=tenant, name=spec.name)
    write_desired_rows(cluster, spec)
    cluster.refresh_from_db()
    assert cluster.auto_repair is None and cluster.to_spec().auto_repair is None
    assert cluster.oidc_users == []


def test_operation_records_round_trip_every_field():
    spec = v16_spec()
    assert spec_from_json(spec_to_json(spec)) == spec


def test_records_written_before_the_v16_fields_still_load():
    old = spec_to_json(cluster_spec())
    del old["auto_repair"], old["oidc_users"]
    for g in old["node_groups"]:
        g["ephemeral_storage_gib"] = g.pop("disk_gib")
        for name in ("storage_class", "max_unhealthy", "node_startup_timeout"):
            del g[name]
    assert spec_from_json(old) == cluster_spec()
