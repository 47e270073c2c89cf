"""PostgreSQL only: a cheaper metering write path, same rules.

1. ``billing_observe`` as one statement with a cached generic plan.

The function of 0005 ran five statements, each planned again on every call (PostgreSQL kept
choosing custom plans for them). It now runs one statement whose data-modifying parts run in
a fixed order: the segments to close are found first, closed (or removed when they would be
empty), and only then are the new ones inserted; the insert reads the close's row count, which
makes PostgreSQL finish the close before it inserts, so the new open segment never meets the
one it replaces in the partial unique index or the exclusion constraint. ``plan_cache_mode``
is forced to a generic plan for the function alone.

What it does is unchanged (``billing.metering._observe_portable`` stays the reference, and the
tests compare the ledgers both write): an observation older than what the ledger holds for
the cluster is ignored; an open segment whose key and quantity the target lacks is closed at
``p_at``; a target key without such an open segment gets one opened at ``p_at``; add-on keys
count only if ``billing_sku`` prices them.

2. The usage-segment guard of 0006 evaluated a seven-term ``WHEN`` condition for every row
metering closes (and PostgreSQL prepares that condition again for each statement). It is
now two triggers that never fire for a close: one on ``UPDATE OF`` the columns a segment may
never change (the function still compares old and new values), one ``WHEN (OLD."end" IS NOT
NULL)`` for any change to a closed segment. What is refused does not change.
"""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION billing_observe(
    p_cluster bigint, p_tenant bigint, p_at timestamptz, p_groups bigint[], p_skus varchar[],
    p_quantities numeric[], p_needs_sku boolean[],
    OUT stale boolean, OUT closed integer, OUT opened integer)
SET plan_cache_mode = force_generic_plan AS $$
BEGIN
    WITH current AS MATERIALIZED (
        SELECT u.id, u.node_group_id AS g, u.sku, u.quantity AS q, u.start, u."end"
          FROM billing_usagesegment u
         WHERE u.cluster_id = p_cluster AND (u."end" IS NULL OR u."end" > p_at)
    ), late AS MATERIALIZED (
        SELECT EXISTS (SELECT 1 FROM current c
                        WHERE c."end" IS NOT NULL OR c.start > p_at) AS yes
    ), target AS MATERIALIZED (
        SELECT t.g, t.sku, t.q
          FROM unnest(p_groups, p_skus, p_quantities, p_needs_sku) AS t(g, sku, q, needs)
         WHERE CASE WHEN t.needs
                    THEN EXISTS (SELECT 1 FROM billing_sku s WHERE s.code = t.sku)
                    ELSE true END
    ), ending AS MATERIALIZED (
        SELECT c.id, c.start FROM current c
         WHERE NOT (SELECT yes FROM late)
           AND NOT EXISTS (SELECT 1 FROM target t
                            WHERE t.g IS NOT DISTINCT FROM c.g AND t.sku = c.sku
                              AND t.q = c.q)
    ), ended AS (
        UPDATE billing_usagesegment u SET "end" = p_at FROM ending e
         WHERE u.id = e.id AND e.start < p_at
        RETURNING u.id
    ), emptied AS (
        DELETE FROM billing_usagesegment u USING ending e
         WHERE u.id = e.id AND e.start >= p_at
        RETURNING u.id
    ), done AS MATERIALIZED (
        SELECT (SELECT count(*) FROM ended) + (SELECT count(*) FROM emptied) AS n
    ), started AS (
        INSERT INTO billing_usagesegment (tenant_id, cluster_id, node_group_id, sku, quantity,
                                          start)
        SELECT p_tenant, p_cluster, t.g, t.sku, t.q, p_at
          FROM done, target t
         WHERE NOT (SELECT yes FROM late)
           AND NOT EXISTS (SELECT 1 FROM current c
                            WHERE c.g IS NOT DISTINCT FROM t.g AND c.sku = t.sku
                              AND c.q = t.q)
        RETURNING 1
    )
    SELECT l.yes, d.n, (SELECT count(*) FROM started) INTO stale, closed, opened
      FROM late l, done d;
END $$ LANGUAGE plpgsql;

DROP TRIGGER IF EXISTS billing_usage_segment_guard ON billing_usagesegment;
CREATE TRIGGER billing_usage_segment_guard
    BEFORE UPDATE OF tenant_id, cluster_id, node_group_id, sku, quantity, start
    ON billing_usagesegment FOR EACH ROW EXECUTE FUNCTION billing_guard_usage_segment();
CREATE TRIGGER billing_usage_segment_closed_guard BEFORE UPDATE ON billing_usagesegment
    FOR EACH ROW WHEN (OLD."end" IS NOT NULL) EXECUTE FUNCTION billing_guard_usage_segment();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        from importlib import import_module

        for trigger in ("billing_usage_segment_closed_guard",
                        "billing_usage_segment_delete_guard"):  # 0006 creates it again
            schema_editor.execute(f"DROP TRIGGER IF EXISTS {trigger} ON billing_usagesegment",
                                  params=None)
        for name in ("0005_postgres_observe_function", "0006_segment_guard_when"):
            previous = import_module(f"billing.migrations.{name}")
            schema_editor.execute(previous.FORWARD, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0006_segment_guard_when"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
