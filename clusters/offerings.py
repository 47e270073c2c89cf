"""What tenants are offered: the platform catalogue minus what staff hid (``Offering`` rows)."""

from __future__ import annotations

from datetime import date

from django.utils import timezone

from clusters.models import Offering
from clusters.platform import catalog


def _hidden(kind: str) -> set[str]:
    return set(Offering.objects.filter(kind=kind, hidden=True).values_list("name", flat=True))


def offered_instance_types(*, keep: set[str] | frozenset[str] = frozenset()
                           ) -> list[catalog.InstanceType]:
    """Instance types a tenant may pick; ``keep`` names stay even if hidden (already in use)."""
    hidden = _hidden(Offering.Kind.INSTANCE_TYPE) - set(keep)
    return [t for t in catalog.instance_types() if t.name not in hidden]


def offered_gpu_models(*, keep: set[str] | frozenset[str] = frozenset()
                       ) -> list[catalog.GpuModel]:
    hidden = _hidden(Offering.Kind.GPU_MODEL) - set(keep)
    return [g for g in catalog.gpu_models() if g.name not in hidden]


def offered_versions(*, keep: set[str] | frozenset[str] = frozenset()
                     ) -> list[catalog.KubernetesVersion]:
    hidden = _hidden(Offering.Kind.VERSION) - set(keep)
    return [v for v in catalog.versions() if v.name not in hidden]


def end_of_life_versions(today: date | None = None) -> dict[str, Offering]:
    """Versions at or past their end of life today, with the staff note."""
    today = today or timezone.now().date()
    rows = Offering.objects.filter(kind=Offering.Kind.VERSION, end_of_life_on__isnull=False,
                                   end_of_life_on__lte=today)
    return {row.name: row for row in rows}


def version_warning(version: str, today: date | None = None) -> str:
    """A sentence for a cluster on an end-of-life version (empty when it is supported)."""
    from django.utils.translation import gettext as _

    row = end_of_life_versions(today).get(version)
    if row is None:
        return ""
    target = catalog.next_minor(version)
    message = _("Kubernetes %(v)s reached its end of life on %(d)s.") % {
        "v": version, "d": row.end_of_life_on.isoformat()}
    if target:
        message += " " + _("Upgrade to %(t)s.") % {"t": target}
    if row.note:
        message += " " + row.note
    return message
