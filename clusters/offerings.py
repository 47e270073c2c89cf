"""What tenants are offered: the platform catalogue minus what staff hid (``Offering`` rows).

Staff change those rows only through the actions below (``do_save_offering``,
``do_delete_offerings``, ``do_add_catalogue``): each publishes ``OfferingsChanged``, whose
subscribers drop the cached views once the change commits. Saving a row by itself has no such
effect.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters.events import OfferingsChanged, VersionEndOfLifeSoon, publish
from clusters.models import Cluster, ClusterEvent, Offering, VersionNotice
from clusters.platform_release import next_version, shown_dialect
from cozystack import catalog
from cozystack.rules import FieldError
from portal.audit import Actor, record
from portal.caching import get_or_load

if TYPE_CHECKING:
    from cozystack.specs import ClusterSpec


Item = TypeVar("Item")
logger = logging.getLogger("clusters.offerings")

OFFERINGS_CACHE_KEY = "clusters:hidden-offerings:v1"
OFFERINGS_CACHE_SECONDS = 30


def hidden_offerings() -> dict[str, frozenset[str]]:
    """What staff hid from tenants, per ``Offering.Kind`` (cached briefly: forms render the
    pickers many times per page and per live push)."""
    def load() -> dict[str, frozenset[str]]:
        hidden: dict[str, set[str]] = {kind: set() for kind in Offering.Kind.values}
        for kind, name in Offering.objects.filter(hidden=True).values_list("kind", "name"):
            hidden.setdefault(kind, set()).add(name)
        return {kind: frozenset(names) for kind, names in hidden.items()}

    return get_or_load(OFFERINGS_CACHE_KEY, load, OFFERINGS_CACHE_SECONDS)


def _hidden(kind: str) -> set[str]:
    return set(Offering.objects.filter(kind=kind, hidden=True).values_list("name", flat=True))


def offered_instance_types(*, keep: set[str] | frozenset[str] = frozenset()
                           ) -> list[catalog.InstanceType]:
    """Instance types a tenant may pick; ``keep`` names stay even if hidden (already in use)."""
    hidden = _hidden(Offering.Kind.INSTANCE_TYPE) - set(keep)
    offered = [t for t in shown_dialect().catalogue.instance_types if t.name not in hidden]
    return offered + _still_used(keep, {t.name for t in offered},
                                 catalog.describe_instance_type)


def offered_gpu_models(*, keep: set[str] | frozenset[str] = frozenset()
                       ) -> list[catalog.GpuModel]:
    hidden = _hidden(Offering.Kind.GPU_MODEL) - set(keep)
    offered = [g for g in shown_dialect().catalogue.gpu_models if g.name not in hidden]
    return offered + _still_used(keep, {g.name for g in offered}, catalog.describe_gpu)


def _still_used(keep: Iterable[str], offered: set[str],
                describe: Callable[[str], Item | None]) -> list[Item]:
    """What a group runs that the platform's release no longer lists (a platform upgrade
    dropped it): it stays selectable for that group, like a hidden item."""
    return [item for name in sorted(set(keep) - offered)
            if (item := describe(name)) is not None]


def offered_versions(*, keep: set[str] | frozenset[str] = frozenset()
                     ) -> list[catalog.KubernetesVersion]:
    hidden = _hidden(Offering.Kind.VERSION) - set(keep)
    return [v for v in shown_dialect().catalogue.versions if v.name not in hidden]


END_OF_LIFE_CACHE_KEY = "clusters:end-of-life:v2"
END_OF_LIFE_CACHE_SECONDS = 30


class Retirement(NamedTuple):
    """A version's end of life as staff set it."""

    end_of_life_on: date
    note: str


def end_of_life_versions(today: date | None = None) -> dict[str, Retirement]:
    """Versions at or past their end of life today, with the staff note. Cached briefly and
    dropped when an offering changes (``forget_offerings``); every dated
    version is cached, so the answer stays right when the day changes."""

    def load() -> list[tuple[str, date, str]]:
        rows = (Offering.objects.filter(kind=Offering.Kind.VERSION, end_of_life_on__isnull=False)
                .values_list("name", "end_of_life_on", "note"))
        return [(name, when, note) for name, when, note in rows if when is not None]

    today = today or timezone.now().date()
    dated = get_or_load(END_OF_LIFE_CACHE_KEY, load, END_OF_LIFE_CACHE_SECONDS)
    return {name: Retirement(when, note) for name, when, note in dated if when <= today}


def end_of_life_dates(today: date | None = None) -> dict[str, date]:
    """``end_of_life_versions`` as dates only, for lists."""
    return {name: r.end_of_life_on for name, r in end_of_life_versions(today).items()}


def version_warning(version: str, today: date | None = None) -> str:
    """A sentence for a cluster on an end-of-life version (empty when it is supported)."""
    row = end_of_life_versions(today).get(version)
    if row is None:
        return ""
    target = next_version(version)
    message = _("Kubernetes %(v)s reached its end of life on %(d)s.") % {
        "v": version, "d": row.end_of_life_on.isoformat()}
    if target:
        message += " " + _("Upgrade to %(t)s.") % {"t": target}
    if row.note:
        message += " " + row.note
    return message


def check_end_of_life(*, now: datetime | None = None, lead_days: int | None = None) -> int:
    """Tell each live cluster's tenant, once per cluster and version, that the cluster runs a
    Kubernetes version whose end of life (staff's date) is at most ``lead_days`` away (or
    past): a timeline entry and ``VersionEndOfLifeSoon``, in one transaction per cluster.

    Returns how many clusters were told. Safe to repeat and to run concurrently: the unique
    (cluster, version) ``VersionNotice`` lets only one run tell; a cluster upgraded since is
    told again only if its new version nears its end of life too.
    """
    now = now or timezone.now()
    lead = settings.END_OF_LIFE_NOTICE_DAYS if lead_days is None else lead_days
    horizon = now.date() + timedelta(days=lead)
    dated = {name: end for name, end in Offering.objects.filter(
        kind=Offering.Kind.VERSION, end_of_life_on__isnull=False, end_of_life_on__lte=horizon)
        .values_list("name", "end_of_life_on") if end is not None}
    if not dated:
        return 0
    told = VersionNotice.objects.filter(cluster=OuterRef("pk"), version=OuterRef("version"))
    due = list(Cluster.objects.live().filter(version__in=list(dated)).exclude(Exists(told))
               .values_list("pk", flat=True))
    count = 0
    for cluster_id in due:
        count += _notice_end_of_life(cluster_id, dated, now)
    return count


def _notice_end_of_life(cluster_id: int, dated: dict[str, date], now: datetime) -> bool:
    with transaction.atomic():
        cluster = (Cluster.objects.select_for_update(no_key=True, of=("self",))
                   .select_related("tenant").filter(pk=cluster_id, deleted_at__isnull=True)
                   .first())
        if cluster is None or cluster.version not in dated:
            return False
        end = dated[cluster.version]
        try:
            with transaction.atomic():
                VersionNotice.objects.create(cluster=cluster, version=cluster.version,
                                             end_of_life_on=end, noticed_at=now)
        except IntegrityError:
            return False  # told already (another run got there first)
        target = next_version(cluster.version) or ""
        message = _("Kubernetes %(v)s reaches its end of life on %(d)s.") % {
            "v": cluster.version, "d": end.isoformat()}
        if target:
            message += " " + _("Upgrade to %(t)s.") % {"t": target}
        ClusterEvent.objects.create(
            tenant_id=cluster.tenant_id, cluster=cluster, at=now,
            source=ClusterEvent.Source.PORTAL, severity=ClusterEvent.Severity.WARNING,
            reason="EndOfLifeSoon", message=message)
        publish(VersionEndOfLifeSoon(cluster, cluster.version, end, target, now))
    logger.info("cluster.version.end_of_life_notice",
                extra={"cluster_id": cluster_id, "end_of_life_on": end.isoformat()})
    return True


def check_offered(spec: ClusterSpec, previous: ClusterSpec | None = None) -> list[FieldError]:
    """An error for each item ``spec`` newly uses that staff hid from tenants.

    What the cluster already runs stays allowed (a hidden instance type keeps working in the
    groups that have it, and a cluster keeps its version): hiding only stops new uses. Meant for
    ``clusters.actions.check_spec``, so forms, the API and the actions refuse alike.
    """
    hidden: dict[str, set[str]] = {kind: set() for kind in Offering.Kind.values}
    for kind, name in Offering.objects.filter(hidden=True).values_list("kind", "name"):
        hidden[kind].add(name)
    errors: list[FieldError] = []
    if spec.version in hidden[Offering.Kind.VERSION] and \
            (previous is None or previous.version != spec.version):
        errors.append(FieldError("version", _(
            "Kubernetes %(v)s is no longer offered; choose another version.")
            % {"v": spec.version}, "not_offered"))
    before = {g.name: g for g in previous.node_groups} if previous else {}
    for index, group in enumerate(spec.node_groups):
        old = before.get(group.name)
        if group.instance_type in hidden[Offering.Kind.INSTANCE_TYPE] and \
                (old is None or old.instance_type != group.instance_type):
            errors.append(FieldError(f"node_groups[{index}].instance_type", _(
                "The instance type %(t)s is no longer offered; choose another one.")
                % {"t": group.instance_type}, "not_offered"))
        new_gpus = set(group.gpus) - set(old.gpus if old else ())
        for model in sorted(new_gpus & hidden[Offering.Kind.GPU_MODEL]):
            errors.append(FieldError(f"node_groups[{index}].gpus", _(
                "The GPU model %(m)s is no longer offered; choose another one.")
                % {"m": model}, "not_offered"))
    return errors


def forget_offerings(event: OfferingsChanged | None = None) -> None:
    """Drop the cached views of what is hidden and what reached its end of life, so pickers
    follow a staff change at once (subscribed to ``OfferingsChanged``)."""
    cache.delete_many([OFFERINGS_CACHE_KEY, END_OF_LIFE_CACHE_KEY])


# --------------------------------------------------------------------------- staff's changes


def catalogue_names() -> dict[str, list[tuple[str, str]]]:
    """Every name the catalogue of the platform's release has, by offering kind, with a
    label."""
    offer = shown_dialect().catalogue
    return {
        Offering.Kind.INSTANCE_TYPE: [(t.name, t.label) for t in offer.instance_types],
        Offering.Kind.GPU_MODEL: [(g.name, g.label) for g in offer.gpu_models],
        Offering.Kind.VERSION: [(v.name, v.label) for v in offer.versions],
    }


def do_save_offering(offering: Offering) -> Offering:
    """Store staff's choice for one catalogue item (added, or edited on its page or in the
    list). Pickers, lists and warnings follow once it commits (``OfferingsChanged``). Saving
    the same values again changes nothing but the cache drop."""
    with transaction.atomic():
        offering.save()
        publish(OfferingsChanged())
    return offering


def do_delete_offerings(offerings: QuerySet[Offering]) -> int:
    """Remove staff's choices (one row or a selection): the items are offered as the catalogue
    has them again, once the change commits. Returns how many rows went; repeating removes
    nothing more."""
    with transaction.atomic():
        count, _by_model = offerings.delete()
        publish(OfferingsChanged())
    return count


def do_add_catalogue(actor: Actor) -> list[Offering]:
    """One row per catalogue item that has none yet (offered, no end of life), so that staff
    can edit them all in the list; recorded in the audit log when it adds any. Repeating it
    adds only what the catalogue gained since."""
    with transaction.atomic():
        existing = set(Offering.objects.values_list("kind", "name"))
        new = [Offering(kind=kind, name=name) for kind, items in catalogue_names().items()
               for name, _label in items if (kind, name) not in existing]
        if new:
            Offering.objects.bulk_create(new)
            record(actor, "offering.import", None, object_type="offering",
                   changes={"added": [None, [f"{o.kind}:{o.name}" for o in new]]})
            publish(OfferingsChanged())
    return new
