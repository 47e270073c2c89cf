"""Tenant quota, counted at every group's maximum size (the autoscaler may grow to it)."""

from __future__ import annotations

import dataclasses

import pytest
from django.core.exceptions import ValidationError

from clusters import actions
from clusters.models import Cluster, Operation
from clusters.quotas import check_quota, tenant_footprint
from cozystack.specs import AddonSpec
from tests.clusters.conftest import cluster_spec, group, replace_group

pytestmark = pytest.mark.django_db


def quota_errors(error: pytest.ExceptionInfo[ValidationError]) -> list[str]:
    return error.value.message_dict["quota"]


def test_a_create_exactly_at_the_vcpu_limit_passes_and_one_more_is_refused(engine, tenant):
    tenant.quota_vcpu = 6  # u1.large = 2 vCPU, max 3 nodes
    tenant.save()
    engine.create(cluster_spec("first", groups=(group(max_replicas=3),)))
    assert tenant_footprint(tenant).vcpu == 6
    with pytest.raises(ValidationError) as error:
        engine.create(cluster_spec("second", groups=(group(min_replicas=1, max_replicas=1),)))
    assert quota_errors(error) == [
        "vCPU quota exceeded: 6 in use + 2 requested = 8, above the limit of 6. Lower the "
        "maximum nodes, choose a smaller instance type, or ask for a higher quota."]
    assert Cluster.objects.filter(name="second").count() == 0


def test_the_cluster_count_is_a_quota_too(engine, tenant):
    tenant.quota_clusters = 1
    tenant.save()
    engine.create(cluster_spec("first"))
    with pytest.raises(ValidationError) as error:
        engine.create(cluster_spec("second"))
    assert quota_errors(error)[0].startswith(
        "Clusters quota exceeded: 1 in use + 1 requested = 2, above the limit of 1.")


def test_scaling_counts_only_the_growth_up_to_the_exact_boundary(engine, tenant):
    tenant.quota_memory_gib = 32  # u1.large = 8 GiB
    tenant.save()
    cluster = engine.create(cluster_spec(groups=(group(max_replicas=3),)))
    spec = cluster.to_spec()
    assert check_quota(tenant, replace_group(spec, "md0", max_replicas=4),
                       cluster_id=cluster.pk) == []
    errors = check_quota(tenant, replace_group(spec, "md0", max_replicas=5),
                         cluster_id=cluster.pk)
    assert [e.message for e in errors] == [
        "Memory (GiB) quota exceeded: 24 in use + 16 requested = 40, above the limit of 32. "
        "Lower the maximum nodes, choose a smaller instance type, or ask for a higher quota."]


def test_a_change_that_lowers_usage_passes_even_over_a_lowered_limit(engine, tenant):
    cluster = engine.create(cluster_spec(groups=(group(max_replicas=3),)))
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    tenant.quota_vcpu = 2  # staff lowered it below what the tenant already uses
    tenant.save()
    engine.act(actions.do_scale_node_group, "demo", "md0", min_replicas=1, max_replicas=2)
    assert engine.settle(cluster).state == Operation.State.SUCCEEDED
    with pytest.raises(ValidationError) as error:
        engine.act(actions.do_add_node_group, "demo", group("more", max_replicas=1, roles=()))
    assert "vCPU quota exceeded" in quota_errors(error)[0]


def test_gpus_count_at_max_replicas_times_gpus_per_node(engine, tenant):
    tenant.quota_gpus = 4
    tenant.save()
    l40s = "nvidia.com/AD102GL_L40S"
    gpu = group("gpu", instance_type="u1.2xlarge", min_replicas=1, max_replicas=2, roles=(),
                gpus=(l40s, l40s))
    operator = (AddonSpec(key="gpuOperator", enabled=True),)
    engine.create(cluster_spec(groups=(group(), gpu), addons=operator))
    assert tenant_footprint(tenant).gpus == 4
    one_more = dataclasses.replace(gpu, max_replicas=1, gpus=(l40s,))
    with pytest.raises(ValidationError) as error:
        engine.create(cluster_spec("other", groups=(group(), one_more), addons=operator))
    assert quota_errors(error)[0].startswith(
        "GPUs quota exceeded: 4 in use + 1 requested = 5, above the limit of 4.")


def test_deleted_clusters_no_longer_count(engine, tenant):
    from django.utils import timezone

    tenant.quota_clusters = 1
    tenant.save()
    engine.create(cluster_spec("first"))
    Cluster.objects.filter(name="first").update(deleted_at=timezone.now())
    engine.create(cluster_spec("second"))
    assert tenant_footprint(tenant).clusters == 1
