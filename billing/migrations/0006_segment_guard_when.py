"""Usage-segment guard runs only for writes it refuses.

The guard trigger of 0002 called its plpgsql function for every UPDATE and DELETE of a
segment, including the one write metering does all the time: closing an open segment. The
same rules now sit in the triggers' ``WHEN`` conditions, which PostgreSQL evaluates without
entering plpgsql; the function is reached only to raise. What is refused does not change:
any change to a closed segment, deleting a closed segment, and any change to an open one
other than setting its end.
"""

from django.db import migrations

FORWARD = r"""
DROP TRIGGER IF EXISTS billing_usage_segment_guard ON billing_usagesegment;

CREATE TRIGGER billing_usage_segment_guard BEFORE UPDATE ON billing_usagesegment
    FOR EACH ROW
    WHEN (OLD."end" IS NOT NULL OR NEW.tenant_id <> OLD.tenant_id
          OR NEW.cluster_id <> OLD.cluster_id
          OR NEW.node_group_id IS DISTINCT FROM OLD.node_group_id OR NEW.sku <> OLD.sku
          OR NEW.quantity <> OLD.quantity OR NEW.start <> OLD.start)
    EXECUTE FUNCTION billing_guard_usage_segment();

CREATE TRIGGER billing_usage_segment_delete_guard BEFORE DELETE ON billing_usagesegment
    FOR EACH ROW WHEN (OLD."end" IS NOT NULL)
    EXECUTE FUNCTION billing_guard_usage_segment();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS billing_usage_segment_delete_guard ON billing_usagesegment;
DROP TRIGGER IF EXISTS billing_usage_segment_guard ON billing_usagesegment;
CREATE TRIGGER billing_usage_segment_guard BEFORE UPDATE OR DELETE ON billing_usagesegment
    FOR EACH ROW EXECUTE FUNCTION billing_guard_usage_segment();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0005_postgres_observe_function"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
