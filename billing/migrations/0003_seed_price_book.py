"""Seed the EXAMPLE price book and the Swiss VAT rates (only what is missing)."""

from django.db import migrations


def forward(apps, schema_editor):
    from billing.seed import seed

    seed(apps.get_model("billing", "Sku"), apps.get_model("billing", "Price"),
         apps.get_model("billing", "VatRate"))


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0002_postgres_guards"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
