"""The default price book (an EXAMPLE, with plausible figures) and the Swiss VAT rates.

Used by the data migration and by ``manage.py seed_pricebook``. Both only add what is missing:
an existing SKU, price or rate is never touched, so staff changes survive a re-seed.

The example figures: a vCPU-hour at CHF 0.025 and a GiB of RAM-hour at CHF 0.0035 make the
node prices; GPUs, disk (CHF 0.10 per GiB-month), control-plane replicas and three add-ons
are priced on their own. Replace them with real prices (new rows from a future instant)
before billing anyone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from cozystack import catalog, dialects

EXAMPLE_BOOK = "Example price book"
EXAMPLE_NOTE = f"{EXAMPLE_BOOK}: plausible figures, replace before billing customers"
EXAMPLE_FROM = datetime(2024, 1, 1, tzinfo=UTC)

VCPU_HOUR = Decimal("0.025")
GIB_RAM_HOUR = Decimal("0.0035")

GPU_HOUR = {
    "nvidia.com/AD102GL_L40S": Decimal("1.60"),
    "nvidia.com/GA100_A100_PCIE_80GB": Decimal("2.90"),
    "nvidia.com/H100_94GB": Decimal("4.20"),
    "nvidia.com/GH100_H100L_94GB": Decimal("4.20"),
}
DISK_GIB_HOUR = Decimal("0.000137")  # CHF 0.10 per GiB-month of 730 h
# Control-plane presets under the portal's names (the v1.6 families); the seven with a v1.3 name
# keep the price that name had. The others follow their CPU and memory.
CONTROL_PLANE_REPLICA_HOUR = {
    "t1.nano": Decimal("0.005"),
    "t1.micro": Decimal("0.008"),
    "t1.small": Decimal("0.012"),
    "c1.small": Decimal("0.016"),
    "c1.medium": Decimal("0.025"),
    "c1.large": Decimal("0.045"),
    "c1.xlarge": Decimal("0.085"),
}
CONTROL_PLANE_BASE_HOUR = Decimal("0.003")
CONTROL_PLANE_CPU_HOUR = Decimal("0.009")
CONTROL_PLANE_GIB_HOUR = Decimal("0.003")
ADDON_HOUR = {
    "velero": (Decimal("0.010"), "Velero backups"),
    "monitoringAgents": (Decimal("0.015"), "Monitoring agents"),
    "ingressNginx": (Decimal("0.005"), "Ingress NGINX"),
}

# Swiss standard VAT rate: 7.7 % from 2018, 8.1 % from 2024 (federal vote of 25 Sept. 2022).
VAT_RATES = [
    (date(2018, 1, 1), Decimal("0.0770"), "Swiss standard rate 7.7 %"),
    (date(2024, 1, 1), Decimal("0.0810"), "Swiss standard rate 8.1 %"),
]


def example_book() -> list[dict[str, Any]]:
    """``[{code, kind, unit, description, per_hour}]`` for every SKU of the example book:
    what any release the portal speaks offers."""
    rows: list[dict[str, Any]] = []
    offers = [dialect.catalogue for dialect in dialects.dialects()]
    types = {it.name: it for offer in offers for it in offer.instance_types}
    for it in types.values():
        price = (VCPU_HOUR * it.vcpu + GIB_RAM_HOUR * it.memory_gib).quantize(
            Decimal("0.0001"), rounding=ROUND_HALF_UP)
        rows.append({"code": f"node.{it.name}", "kind": "node", "unit": "node-hour",
                     "description": f"Worker node {it.label}", "per_hour": price})
    gpus = {gpu.name: gpu for offer in offers for gpu in offer.gpu_models}
    for name, price in GPU_HOUR.items():
        gpu = gpus.get(name) or catalog.describe_gpu(name)
        rows.append({"code": f"gpu.{name}", "kind": "gpu", "unit": "gpu-hour",
                     "description": f"GPU {gpu.label if gpu else name}", "per_hour": price})
    rows.append({"code": "disk.gib", "kind": "disk", "unit": "gib-hour",
                 "description": "Node disk (GiB)", "per_hour": DISK_GIB_HOUR})
    for preset in catalog.control_plane_presets():
        rows.append({"code": f"cp.{preset.name}", "kind": "cp", "unit": "replica-hour",
                     "description": f"Control-plane replica {preset.label}",
                     "per_hour": control_plane_price(preset)})
    for key, (price, label) in ADDON_HOUR.items():
        rows.append({"code": f"addon.{key}", "kind": "addon", "unit": "cluster-hour",
                     "description": f"Add-on: {label}", "per_hour": price})
    return rows


def control_plane_price(preset: Any) -> Decimal:
    """The example price of one replica-hour of a control-plane preset."""
    if preset.name in CONTROL_PLANE_REPLICA_HOUR:
        return CONTROL_PLANE_REPLICA_HOUR[preset.name]
    cpu = Decimal(preset.cpu_millicores) / 1000
    gib = Decimal(preset.memory_mib) / 1024
    return (CONTROL_PLANE_BASE_HOUR + CONTROL_PLANE_CPU_HOUR * cpu
            + CONTROL_PLANE_GIB_HOUR * gib).quantize(Decimal("0.001"), rounding=ROUND_HALF_UP)


def seed(sku_model: Any, price_model: Any, vat_model: Any) -> dict[str, int]:
    """Add the missing SKUs, example prices and VAT rates. Never changes an existing row."""
    counts = {"skus": 0, "prices": 0, "vat_rates": 0}
    for row in example_book():
        sku, created = sku_model.objects.get_or_create(
            code=row["code"],
            defaults={"kind": row["kind"], "unit": row["unit"],
                      "description": f"{row['description']} ({EXAMPLE_BOOK})"})
        counts["skus"] += int(created)
        if not price_model.objects.filter(sku=sku).exists():
            price_model.objects.create(sku=sku, per_hour=row["per_hour"],
                                       effective_from=EXAMPLE_FROM, note=EXAMPLE_NOTE)
            counts["prices"] += 1
    for day, rate, note in VAT_RATES:
        _obj, created = vat_model.objects.get_or_create(effective_from=day,
                                                        defaults={"rate": rate, "note": note})
        counts["vat_rates"] += int(created)
    return counts
