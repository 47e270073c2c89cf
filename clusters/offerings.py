"""What tenants are offered: the platform catalogue minus what staff hid (``Offering`` rows),
narrowed to what the platform offers the tenant (its Option API, ``clusters.options``).

The picker of a tenant shows the intersection that makes sense:

* instance types: the release's catalogue (the portal knows their size, so quotas and prices
  hold) that the platform offers the tenant, minus what staff hid;
* GPU models: what the platform offers the tenant (it owns the passthrough list, v1.6 row 26),
  described by the catalogue where it knows them, with the platform's word on how many are
  available, minus what staff hid;
* storage classes: what the platform offers the tenant (staff do not hide storage classes).

Where the platform has no Option API, or it cannot be read, the bundled catalogue stands in,
as before. What a group already uses stays selectable for that group (``keep``), and stays
allowed: hiding, or the platform no longer listing it, only stops new uses.

Staff change the ``Offering`` rows only through the actions below (``do_save_offering``,
``do_delete_offerings``, ``do_add_catalogue``): each publishes ``OfferingsChanged``, whose
subscribers drop the cached views once the change commits. Saving a row by itself has no such
effect.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import options
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


def offered_instance_types(*, namespace: str | None = None,
                           keep: set[str] | frozenset[str] = frozenset()
                           ) -> list[catalog.InstanceType]:
    """Instance types a tenant may pick: the release's catalogue that the platform offers the
    tenant's ``namespace`` (all of it without a namespace, or where the platform has no Option
    API), minus what staff hid; ``keep`` names stay (already in use)."""
    hidden = _hidden(Offering.Kind.INSTANCE_TYPE) - set(keep)
    platform = options.source_options(namespace, options.INSTANCE_TYPES).names
    catalogue = shown_dialect().catalogue.instance_types
    if platform is not None:
        unsized = platform - {t.name for t in catalogue}
        if unsized:
            # No size, so no quota or price: not offered until the catalogue describes it.
            logger.info("cluster.offerings.unsized_instance_types",
                        extra={"namespace": namespace, "names": sorted(unsized)})
    offered = [t for t in catalogue if t.name not in hidden
               and (platform is None or t.name in platform)]
    return offered + _still_used(keep, {t.name for t in offered},
                                 catalog.describe_instance_type)


def offered_gpu_models(*, namespace: str | None = None,
                       keep: set[str] | frozenset[str] = frozenset()
                       ) -> list[catalog.GpuModel]:
    """GPU models a tenant may pick: what the platform offers the tenant's ``namespace``, each
    with the platform's word on its stock (``availability``), else the release's catalogue;
    minus what staff hid; ``keep`` names stay."""
    hidden = _hidden(Offering.Kind.GPU_MODEL) - set(keep)
    source = options.source_options(namespace, options.GPUS)
    if source.from_platform:
        offered = [dataclasses.replace(catalog.gpu_from_platform(item.value),
                                       availability=item.description)
                   for item in source.items if item.value not in hidden]
    else:
        offered = [g for g in shown_dialect().catalogue.gpu_models if g.name not in hidden]
    return offered + _still_used(keep, {g.name for g in offered}, catalog.describe_gpu)


def offered_storage_classes(*, namespace: str | None = None,
                            keep: set[str] | frozenset[str] = frozenset()
                            ) -> list[catalog.StorageClass]:
    """Storage classes a tenant may pick: what the platform offers the tenant's ``namespace``
    (described by the catalogue where it knows them, else in the platform's words), else the
    bundled list. ``is_default`` marks the one a new cluster gets (``default_storage_class``);
    ``keep`` names stay."""
    source = options.source_options(namespace, options.STORAGE_CLASSES)
    if not source.from_platform:
        offered = list(catalog.storage_classes())
    else:
        offered = [catalog.get_storage_class(item.value) or catalog.StorageClass(
            item.value, item.label or item.value, item.description) for item in source.items]
    names = {s.name for s in offered}
    offered += [catalog.get_storage_class(name) or catalog.StorageClass(name, name, "")
                for name in sorted(set(keep) - names) if name]
    default = _default_class(source, names)
    return [dataclasses.replace(s, is_default=s.name == default) for s in offered]


def default_storage_class(namespace: str | None = None) -> str:
    """The storage class a new cluster gets when none is named: the chart's default
    (``replicated``) while the platform offers it, else the platform's own default, else the
    first it offers."""
    source = options.source_options(namespace, options.STORAGE_CLASSES)
    names = source.names
    return _default_class(source, names if names is not None else {
        s.name for s in catalog.storage_classes()})


def _default_class(source: options.SourceOptions, names: set[str] | frozenset[str]) -> str:
    if catalog.DEFAULT_STORAGE_CLASS in names or not source.from_platform:
        return catalog.DEFAULT_STORAGE_CLASS
    flagged = [item.value for item in source.items if item.default]
    first = [item.value for item in source.items]
    return (flagged or first or [catalog.DEFAULT_STORAGE_CLASS])[0]


_GPU_STOCK = re.compile(r"^(\d+) available on (.+)$")
_NO_GPU_STOCK = re.compile(r"^(?:not currently available|none available)", re.IGNORECASE)


def availability_words(text: str) -> str:
    """The platform's word on a GPU's stock in the page's language ("8 available on gpu-1,
    gpu-2"); a sentence the portal does not recognise is shown as the platform wrote it."""
    text = (text or "").strip()
    match = _GPU_STOCK.match(text)
    if match:
        return _("%(count)s available on %(nodes)s") % {"count": match.group(1),
                                                       "nodes": match.group(2)}
    if _NO_GPU_STOCK.match(text):
        return _("none available right now")
    return text


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


# --------------------------------------------------------------------------- the platform's offer


@dataclass(frozen=True)
class PlatformOffer:
    """What the platform offers a tenant, for the rules: the names of each kind, None where
    the bundled catalogues apply (no Option API, or it could not be read)."""

    instance_types: frozenset[str] | None = None
    gpu_models: frozenset[str] | None = None
    storage_classes: frozenset[str] | None = None

    def validation_names(self, spec: ClusterSpec) -> dict[str, Any]:
        """Keyword arguments for ``cozystack.validation.validate_manifest``: the GPU models and
        storage classes the platform owns (they may not be in any bundled list), plus what
        ``spec`` names (``check_platform_offer`` judges those, in words)."""
        names: dict[str, Any] = {}
        if self.gpu_models is not None:
            names["gpu_models"] = self.gpu_models | _used_gpus(spec)
        if self.storage_classes is not None:
            names["storage_classes"] = self.storage_classes | _used_classes(spec)
        return names


def platform_offer(namespace: str) -> PlatformOffer:
    tenant = options.tenant_options(namespace)
    return PlatformOffer(instance_types=tenant.of(options.INSTANCE_TYPES).names,
                         gpu_models=tenant.of(options.GPUS).names,
                         storage_classes=tenant.of(options.STORAGE_CLASSES).names)


def _used_gpus(spec: ClusterSpec) -> frozenset[str]:
    return frozenset(name for group in spec.node_groups for name in group.gpus)


def _used_classes(spec: ClusterSpec) -> frozenset[str]:
    return frozenset({spec.storage_class, *(g.storage_class for g in spec.node_groups)}
                     - {""})


def as_requested(spec: ClusterSpec) -> dict[str, Any]:
    """``validate_manifest`` arguments that accept the GPU models and storage classes ``spec``
    names, on top of the bundled lists: the worker re-checks the schema before it sends, while
    what the platform offers was judged when the change was asked for (as staff offerings)."""
    dialect = shown_dialect()
    return {"gpu_models": {g.name for g in dialect.catalogue.gpu_models} | _used_gpus(spec),
            "storage_classes": {s.name for s in catalog.storage_classes()}
            | _used_classes(spec)}


def check_platform_offer(offer: PlatformOffer, spec: ClusterSpec,
                         previous: ClusterSpec | None = None) -> list[FieldError]:
    """An error beside its field for each value ``spec`` newly uses that the platform does not
    offer the tenant (its Option API). What the cluster already uses is not judged again,
    and nothing is judged where the bundled catalogues stand in."""
    errors: list[FieldError] = []
    if offer.storage_classes is not None and previous is None and \
            spec.storage_class not in offer.storage_classes:
        errors.append(_not_offered_class("storage_class", spec.storage_class,
                                         offer.storage_classes))
    before = {g.name: g for g in previous.node_groups} if previous else {}
    for index, group in enumerate(spec.node_groups):
        old = before.get(group.name)
        prefix = f"node_groups[{index}]"
        if offer.instance_types is not None and group.instance_type and \
                group.instance_type not in offer.instance_types and \
                (old is None or old.instance_type != group.instance_type):
            errors.append(FieldError(f"{prefix}.instance_type", _(
                "The platform does not offer the instance type %(t)s to this tenant; choose "
                "one from the list.") % {"t": group.instance_type}, "not_offered_by_platform"))
        if offer.gpu_models is not None:
            new = sorted(set(group.gpus) - set(old.gpus if old else ()) - offer.gpu_models)
            if new:
                errors.append(FieldError(f"{prefix}.gpus", _(
                    "The platform does not offer the GPU model %(m)s to this tenant; choose "
                    "one of: %(offered)s.") % {"m": ", ".join(new), "offered": _listed(
                        offer.gpu_models)}, "not_offered_by_platform"))
        if offer.storage_classes is not None and group.storage_class and \
                group.storage_class not in offer.storage_classes and \
                (old is None or old.storage_class != group.storage_class):
            errors.append(_not_offered_class(f"{prefix}.storage_class", group.storage_class,
                                             offer.storage_classes))
    return errors


def _listed(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or _("none")


def _not_offered_class(field: str, name: str, offered: frozenset[str]) -> FieldError:
    return FieldError(field, _(
        "The platform does not offer the storage class %(s)s to this tenant; choose one of: "
        "%(offered)s.") % {"s": name, "offered": _listed(offered)}, "not_offered_by_platform")


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
