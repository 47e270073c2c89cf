"""PostgreSQL-only guards: no overlapping usage segments, and rows that must never change.

* ``usage_segment_no_overlap``: an exclusion constraint (btree_gist) over
  ``tstzrange(start, end)`` per (cluster, node group, SKU); an open segment runs to infinity.
* Triggers refuse: any change to a closed usage segment (an open one may only get its end),
  deleting a closed one; updating or deleting a price in force; updating or deleting a
  finalized invoice or credit note, and inserting, updating or deleting its lines.

SQLite (the embedded default) has none of this: the models enforce the same rules in Python,
and metering never writes an overlap (the partial unique index on open segments holds on both).
"""

from django.db import migrations

FORWARD = r"""
CREATE EXTENSION IF NOT EXISTS btree_gist;

ALTER TABLE billing_usagesegment ADD CONSTRAINT usage_segment_no_overlap
    EXCLUDE USING gist (cluster_id WITH =, (COALESCE(node_group_id, 0)) WITH =, sku WITH =,
                        tstzrange(start, "end", '[)') WITH &&);

CREATE OR REPLACE FUNCTION billing_guard_usage_segment() RETURNS trigger AS $$
BEGIN
    IF OLD."end" IS NOT NULL THEN
        RAISE EXCEPTION 'usage segment % is closed and cannot change', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND (NEW.tenant_id <> OLD.tenant_id OR NEW.cluster_id <> OLD.cluster_id
            OR NEW.node_group_id IS DISTINCT FROM OLD.node_group_id OR NEW.sku <> OLD.sku
            OR NEW.quantity <> OLD.quantity OR NEW.start <> OLD.start) THEN
        RAISE EXCEPTION 'an open usage segment may only be closed'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_usage_segment_guard BEFORE UPDATE OR DELETE ON billing_usagesegment
    FOR EACH ROW EXECUTE FUNCTION billing_guard_usage_segment();

CREATE OR REPLACE FUNCTION billing_guard_price() RETURNS trigger AS $$
BEGIN
    IF OLD.effective_from <= now() THEN
        RAISE EXCEPTION 'price % is in force and cannot change; add a new price', OLD.id
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'UPDATE' AND NEW.effective_from <= now() THEN
        RAISE EXCEPTION 'a price cannot be moved into the past'
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_price_guard BEFORE UPDATE OR DELETE ON billing_price
    FOR EACH ROW EXECUTE FUNCTION billing_guard_price();

CREATE OR REPLACE FUNCTION billing_guard_invoice() RETURNS trigger AS $$
BEGIN
    IF OLD.status <> 'draft' THEN
        RAISE EXCEPTION 'invoice % is final and cannot change; issue a credit note', OLD.number
            USING ERRCODE = 'restrict_violation';
    END IF;
    IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
    RETURN NEW;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_guard BEFORE UPDATE OR DELETE ON billing_invoice
    FOR EACH ROW EXECUTE FUNCTION billing_guard_invoice();

CREATE OR REPLACE FUNCTION billing_guard_invoice_line() RETURNS trigger AS $$
DECLARE
    frozen boolean;
BEGIN
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        SELECT status <> 'draft' INTO frozen FROM billing_invoice WHERE id = OLD.invoice_id;
        IF frozen THEN
            RAISE EXCEPTION 'lines of final invoice % cannot change', OLD.invoice_id
                USING ERRCODE = 'restrict_violation';
        END IF;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        SELECT status <> 'draft' INTO frozen FROM billing_invoice WHERE id = NEW.invoice_id;
        IF frozen THEN
            RAISE EXCEPTION 'lines of final invoice % cannot change', NEW.invoice_id
                USING ERRCODE = 'restrict_violation';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END $$ LANGUAGE plpgsql;

CREATE TRIGGER billing_invoice_line_guard BEFORE INSERT OR UPDATE OR DELETE
    ON billing_invoiceline FOR EACH ROW EXECUTE FUNCTION billing_guard_invoice_line();
"""

BACKWARD = r"""
DROP TRIGGER IF EXISTS billing_invoice_line_guard ON billing_invoiceline;
DROP FUNCTION IF EXISTS billing_guard_invoice_line();
DROP TRIGGER IF EXISTS billing_invoice_guard ON billing_invoice;
DROP FUNCTION IF EXISTS billing_guard_invoice();
DROP TRIGGER IF EXISTS billing_price_guard ON billing_price;
DROP FUNCTION IF EXISTS billing_guard_price();
DROP TRIGGER IF EXISTS billing_usage_segment_guard ON billing_usagesegment;
DROP FUNCTION IF EXISTS billing_guard_usage_segment();
ALTER TABLE billing_usagesegment DROP CONSTRAINT IF EXISTS usage_segment_no_overlap;
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(forward, backward, elidable=False),
    ]
