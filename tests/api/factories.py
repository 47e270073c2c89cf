"""Rows for API tests, written directly (no platform involved)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.utils import timezone

from clusters import progress
from clusters.models import Cluster, ClusterEvent, NodeGroup, Operation
from cozystack.specjson import spec_to_json
from portal.models import ApiToken


def make_cluster(tenant, name: str = "prod-eu", *, version: str = "v1.34",
                 phase: str = Cluster.Phase.RUNNING, groups: int = 1,
                 **fields: Any) -> Cluster:
    cluster = Cluster.objects.create(tenant=tenant, name=name, version=version, phase=phase,
                                     platform_ready=phase == Cluster.Phase.RUNNING,
                                     kubeconfig_ready=phase == Cluster.Phase.RUNNING,
                                     **fields)
    for position in range(groups):
        NodeGroup.objects.create(
            cluster=cluster, name="md0" if position == 0 else f"md{position}",
            position=position, instance_type="s1.large", min_replicas=1, max_replicas=3,
            disk_gib=50, roles=["ingress-nginx"] if position == 0 else [],
            desired_nodes=1, observed_nodes=1, ready_nodes=1, updated_nodes=1)
    return cluster


def make_operation(cluster: Cluster, *, kind: str = Operation.Kind.CREATE,
                   state: str = Operation.State.SUCCEEDED, **fields: Any) -> Operation:
    now = timezone.now()
    spec = spec_to_json(cluster.to_spec())
    operation = Operation.objects.create(
        tenant=cluster.tenant, cluster=cluster, kind=kind, state=state,
        steps=progress.initial_steps(kind),
        params={"after": spec, "before": None if kind == Operation.Kind.CREATE else spec},
        created_at=now, finished_at=None if state in Operation.ACTIVE_STATES else now,
        **fields)
    ClusterEvent.objects.create(tenant=cluster.tenant, cluster=cluster, operation=operation,
                                source=ClusterEvent.Source.PORTAL, reason=f"operation.{kind}",
                                message="Creation requested.")
    return operation


def make_token(user, *, scope: str = ApiToken.Scope.READ_WRITE, tenant=None,
               expires_in: timedelta = timedelta(days=30), name: str = "test",
               revoked: bool = False) -> str:
    secret, token_hash = ApiToken.new_secret()
    ApiToken.objects.create(user=user, name=name, scope=scope, tenant=tenant,
                            token_hash=token_hash, prefix=secret[:10],
                            expires_at=timezone.now() + expires_in,
                            revoked_at=timezone.now() if revoked else None)
    return secret
