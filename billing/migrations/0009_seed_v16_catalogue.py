"""Price what the v1.6 catalogue adds to the EXAMPLE book (only what is missing): the control-plane
presets under their new family names (``cp.c1.medium`` costs what ``cp.large`` did), the
dedicated-vCPU and hugepage instance types, the platform's GPU names. Existing rows are kept."""

from django.db import migrations


def forward(apps, schema_editor):
    from billing.seed import seed

    seed(apps.get_model("billing", "Sku"), apps.get_model("billing", "Price"),
         apps.get_model("billing", "VatRate"))


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0008_display_text_validators"),
    ]

    operations = [
        migrations.RunPython(forward, migrations.RunPython.noop),
    ]
