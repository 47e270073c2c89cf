"""Metering write path: observations applied per second with the exclusion constraint in
place, against plain inserts of the same rows, in the same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/bench .venv/bin/python bench/bench_metering.py
    … bench/bench_metering.py --observations 1000      # a quick run

In a throwaway database (dropped at the end): 200 clusters with two node groups (one with
GPUs), control-plane replicas and a priced add-on. A random sequence of observations, each
changing the node count of one group (so each closes and opens segments), is applied three
ways, each observation in its own transaction:

* metering: ``billing.metering.observe_cluster`` with every constraint of the ledger
  (partial unique index, btree_gist exclusion constraint, guard trigger);
* metering without the exclusion constraint (to show what the constraint itself costs);
* baseline: a plain INSERT of the rows metering opened for that observation into a table
  with no index and no constraint (an observation that only closes segments, such as a
  scale to zero, costs the baseline nothing).

Prints observations per second and the ratio metering / baseline (goal ≥ 0.5).
"""

from __future__ import annotations

import argparse
import random
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from _billing_db import throwaway_database

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def setup(clusters: int):
    from clusters.models import Cluster, NodeGroup
    from portal.models import Tenant

    tenants = Tenant.objects.bulk_create([Tenant(slug=f"t{i}", name=f"T{i}")
                                          for i in range(max(clusters // 4, 1))])
    rows = Cluster.objects.bulk_create([
        Cluster(tenant=tenants[i % len(tenants)], name=f"c{i}", version="v1.33",
                control_plane_replicas=2, control_plane_preset="large",
                addons={"velero": {"enabled": True}}) for i in range(clusters)])
    world = []
    for cluster in rows:
        groups = NodeGroup.objects.bulk_create([
            NodeGroup(cluster=cluster, name="md0", instance_type="u1.large", min_replicas=0,
                      max_replicas=10, disk_gib=50, position=0),
            NodeGroup(cluster=cluster, name="gpu", instance_type="u1.2xlarge",
                      min_replicas=0, max_replicas=4, disk_gib=100, position=1,
                      gpu_model="nvidia.com/AD102GL_L40S", gpus_per_node=1)])
        world.append((cluster, groups))
    return world


def plan(world, count: int, seed: int) -> list[tuple[int, int, int, datetime]]:
    """(cluster index, group index, node count, instant) — every one a change."""
    rng = random.Random(seed)
    nodes = defaultdict(int)
    steps, when = [], T0
    for _ in range(count):
        c = rng.randrange(len(world))
        g = rng.randrange(2)
        limit = 10 if g == 0 else 4
        new = rng.choice([n for n in range(limit + 1) if n != nodes[(c, g)]])
        nodes[(c, g)] = new
        when += timedelta(seconds=rng.randint(1, 30))
        steps.append((c, g, new, when))
    return steps


def reset(world) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE billing_usagesegment")
    for _cluster, groups in world:
        for group in groups:
            group.observed_nodes = 0


def first_observations(world) -> None:
    """Each cluster's first observation (opens everything; not timed)."""
    from django.db import transaction

    from billing import metering

    for cluster, groups in world:
        with transaction.atomic():
            metering.observe_cluster(cluster, groups, T0)


def run_metering(world, steps) -> float:
    from django.db import transaction

    from billing import metering

    started = time.perf_counter()
    for c, g, new, when in steps:
        cluster, groups = world[c]
        groups[g].observed_nodes = new
        with transaction.atomic():
            metering.observe_cluster(cluster, groups, when)
    return time.perf_counter() - started


def opened_rows(steps) -> list[list[tuple]]:
    """The rows metering opened, per observation, to insert them again as the baseline."""
    from billing.models import UsageSegment

    by_start = defaultdict(list)
    for row in UsageSegment.objects.filter(start__gte=steps[0][3], start__lte=steps[-1][3]) \
            .values_list("tenant_id", "cluster_id", "node_group_id", "sku", "quantity",
                         "start", "end"):
        by_start[row[5]].append(row)
    return [by_start.get(when, []) for _c, _g, _n, when in steps]


def create_plain_table() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_plain_segments")
        cursor.execute('CREATE TABLE bench_plain_segments (id bigserial, tenant_id bigint, '
                       'cluster_id bigint, node_group_id bigint, sku varchar(100), '
                       'quantity numeric(18,4), start timestamptz, "end" timestamptz)')


def run_plain(batches: list[list[tuple]]) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    for rows in batches:
        if not rows:
            continue
        values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(rows))
        params = [v for row in rows for v in row]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute('INSERT INTO bench_plain_segments (tenant_id, cluster_id, '
                           'node_group_id, sku, quantity, start, "end") VALUES ' + values,
                           params)
    return time.perf_counter() - started


def interleaved(world, steps, rounds: int) -> tuple[float, float, int]:
    """Metering and the plain inserts of the same rows, alternating chunk by chunk so that
    both see the same machine load. Returns (metering s, plain s, rows opened)."""
    metering_s = plain_s = 0.0
    rows = 0
    size = max(len(steps) // rounds, 1)
    for i in range(0, len(steps), size):
        chunk = steps[i:i + size]
        metering_s += run_metering(world, chunk)
        batches = opened_rows(chunk)
        rows += sum(len(b) for b in batches)
        plain_s += run_plain(batches)
    return metering_s, plain_s, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--observations", type=int, default=5_000)
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    with throwaway_database("bench_metering"):
        from django.db import connection

        world = setup(args.clusters)
        steps = plan(world, args.observations, args.seed)
        create_plain_table()

        first_observations(world)
        constrained, plain_1, rows = interleaved(world, steps, args.rounds)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM billing_usagesegment")
            segments = cursor.fetchone()[0]
            cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                           "WHERE conname = 'usage_segment_no_overlap'")
            exclusion = cursor.fetchone()[0]
            cursor.execute("ALTER TABLE billing_usagesegment "
                           "DROP CONSTRAINT usage_segment_no_overlap")
            cursor.execute("TRUNCATE bench_plain_segments")
        reset(world)
        first_observations(world)
        unconstrained, plain_2, _rows = interleaved(world, steps, args.rounds)
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE billing_usagesegment ADD CONSTRAINT "
                           "usage_segment_no_overlap " + exclusion)

        n = len(steps)
        print(f"{n:,} observations on {len(world)} clusters; {rows:,} segments opened, "
              f"{segments:,} in the ledger; {args.rounds} interleaved rounds")
        print(f"metering (with exclusion constraint):    {n / constrained:8.0f} obs/s")
        print(f"plain inserts of the same rows:          {n / plain_1:8.0f} obs/s")
        print(f"metering (without exclusion constraint): {n / unconstrained:8.0f} obs/s")
        print(f"plain inserts (second pass):             {n / plain_2:8.0f} obs/s")
        ratio = plain_1 / constrained
        print(f"ratio metering / plain inserts: {ratio:.2f} (goal >= 0.5) — "
              f"{'met' if ratio >= 0.5 else 'NOT met'}; without the exclusion constraint: "
              f"{plain_2 / unconstrained:.2f}")


if __name__ == "__main__":
    main()
