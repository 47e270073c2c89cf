"""PostgreSQL only: ``billing_observe``, the metering diff of ``billing.metering`` as a
function, so that applying an observation is one short call whose plans stay cached.

It does, in order, what ``billing.metering._observe_portable`` does in Python (the tests run
both on PostgreSQL and compare the ledgers): ignore the observation if the ledger already
holds something later for the cluster; close at ``p_at`` every open segment whose key and
quantity the target does not have (removing it instead if it would be empty); open a segment
for every target key without an open one. Add-on keys count only if ``billing_sku`` has them.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION billing_observe(
    p_cluster bigint, p_tenant bigint, p_at timestamptz, p_groups bigint[], p_skus varchar[],
    p_quantities numeric[], p_needs_sku boolean[],
    OUT stale boolean, OUT closed integer, OUT opened integer) AS $$
DECLARE
    t_groups bigint[];
    t_skus varchar[];
    t_quantities numeric[];
    n integer;
BEGIN
    closed := 0;
    opened := 0;
    SELECT EXISTS (SELECT 1 FROM billing_usagesegment
                   WHERE cluster_id = p_cluster
                     AND ("end" > p_at OR ("end" IS NULL AND start > p_at)))
      INTO stale;
    IF stale THEN
        RETURN;
    END IF;

    SELECT coalesce(array_agg(t.g), '{}'), coalesce(array_agg(t.sku), '{}'),
           coalesce(array_agg(t.q), '{}')
      INTO t_groups, t_skus, t_quantities
      FROM unnest(p_groups, p_skus, p_quantities, p_needs_sku) AS t(g, sku, q, needs)
     WHERE NOT t.needs OR EXISTS (SELECT 1 FROM billing_sku s WHERE s.code = t.sku);

    UPDATE billing_usagesegment u SET "end" = p_at
     WHERE u.cluster_id = p_cluster AND u."end" IS NULL AND u.start < p_at
       AND NOT EXISTS (SELECT 1 FROM unnest(t_groups, t_skus, t_quantities) AS t(g, sku, q)
                       WHERE t.g IS NOT DISTINCT FROM u.node_group_id AND t.sku = u.sku
                         AND t.q = u.quantity);
    GET DIAGNOSTICS n = ROW_COUNT;
    closed := n;

    DELETE FROM billing_usagesegment u
     WHERE u.cluster_id = p_cluster AND u."end" IS NULL AND u.start >= p_at
       AND NOT EXISTS (SELECT 1 FROM unnest(t_groups, t_skus, t_quantities) AS t(g, sku, q)
                       WHERE t.g IS NOT DISTINCT FROM u.node_group_id AND t.sku = u.sku
                         AND t.q = u.quantity);
    GET DIAGNOSTICS n = ROW_COUNT;
    closed := closed + n;

    INSERT INTO billing_usagesegment (tenant_id, cluster_id, node_group_id, sku, quantity, start)
    SELECT p_tenant, p_cluster, t.g, t.sku, t.q, p_at
      FROM unnest(t_groups, t_skus, t_quantities) AS t(g, sku, q)
     WHERE NOT EXISTS (SELECT 1 FROM billing_usagesegment u
                       WHERE u.cluster_id = p_cluster AND u."end" IS NULL
                         AND u.node_group_id IS NOT DISTINCT FROM t.g AND u.sku = t.sku);
    GET DIAGNOSTICS opened = ROW_COUNT;
END $$ LANGUAGE plpgsql;
"""

BACKWARD = r"""
DROP FUNCTION IF EXISTS billing_observe(bigint, bigint, timestamptz, bigint[], varchar[],
                                        numeric[], boolean[]);
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0004_segment_indexes"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
