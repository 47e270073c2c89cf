"""Cluster templates: a cluster's configuration saved for reuse by its tenant, and clones.

A template is the spec of a cluster without its name, its API host and who has access through
single sign-on (those belong to one cluster), with a name and a description, visible to every
member of the tenant. Using one (or cloning a cluster) only *prefills* a new cluster: the spec
is judged again against the live platform schema and offerings like any other, and a version
that reached its end of life (or is no longer offered) is replaced by the next one, said in
words. A tenant keeps at most ``TEMPLATES_PER_TENANT_MAX`` templates.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.http import Http404
from django.utils import timezone
from django.utils.translation import gettext as _

from clusters import actions, expiry, offerings, platform_release
from clusters.events import cluster_changed
from clusters.models import (
    TEMPLATE_DESCRIPTION_MAX,
    TEMPLATE_NAME_MAX,
    TEMPLATES_PER_TENANT_MAX,
    Cluster,
    ClusterEvent,
    ClusterTemplate,
    Offering,
)
from cozystack.specjson import spec_from_json, spec_to_json
from cozystack.specs import ClusterSpec
from cozystack.validation import allowed_versions_from_schema
from portal.audit import Actor, record
from portal.models import Tenant
from portal.permissions import Perm
from portal.tenancy import TenantContext
from portal.validators import validate_visible_text


def templates_of(ctx: TenantContext) -> QuerySet[ClusterTemplate]:
    return ClusterTemplate.objects.filter(tenant=ctx.tenant).order_by("name", "id")


def access_template(ctx: TenantContext, template_id: int, *, for_update: bool = False
                    ) -> ClusterTemplate:
    """The tenant's template ``template_id``; 404 for anything else (others' look missing)."""
    qs = templates_of(ctx).filter(pk=template_id)
    if for_update:
        qs = qs.select_for_update()
    found = qs.first()
    if found is None:
        raise Http404
    return found


def reusable(spec: ClusterSpec) -> ClusterSpec:
    """What of ``spec`` another cluster may reuse: everything but its name, API host and
    single sign-on access."""
    return dataclasses.replace(spec, name="", host="", namespace="", oidc_users=())


def _require(actor: Actor, ctx: TenantContext) -> None:
    if actor.read_only:
        raise PermissionDenied(_("This is a read-only view."))
    ctx.require(Perm.CLUSTERS_CHANGE)


def _check_text(name: str, description: str) -> tuple[str, str]:
    name, description = name.strip(), description.strip()
    errors: dict[str, list[ValidationError]] = {}
    if not name:
        errors["name"] = [ValidationError(_("Give the template a name."), code="required")]
    elif len(name) > TEMPLATE_NAME_MAX:
        errors["name"] = [ValidationError(_("At most %(n)s characters.")
                                          % {"n": TEMPLATE_NAME_MAX}, code="max_length")]
    if len(description) > TEMPLATE_DESCRIPTION_MAX:
        errors["description"] = [ValidationError(_("At most %(n)s characters.")
                                                 % {"n": TEMPLATE_DESCRIPTION_MAX},
                                                 code="max_length")]
    for field, value in (("name", name), ("description", description)):
        try:
            validate_visible_text(value)
        except ValidationError as exc:
            errors.setdefault(field, []).append(exc)
    if errors:
        raise ValidationError(errors)
    return name, description


def _name_taken() -> ValidationError:
    return ValidationError({"name": ValidationError(
        _("A template with this name already exists."), code="already_exists")})


def do_save_template(actor: Actor, ctx: TenantContext, cluster_name: str, *, name: str,
                     description: str = "") -> ClusterTemplate:
    """Save the cluster's configuration as a template of the tenant: the row, the audit entry
    and the cluster's timeline. A name the tenant already uses, or a tenant at its maximum
    number of templates, is refused in words."""
    _require(actor, ctx)
    name, description = _check_text(name, description)
    try:
        with transaction.atomic():
            Tenant.objects.select_for_update(no_key=True).filter(pk=ctx.tenant.pk).first()
            cluster = actions.access_cluster(ctx, cluster_name)
            if templates_of(ctx).count() >= TEMPLATES_PER_TENANT_MAX:
                raise ValidationError(_("This tenant has %(n)s templates, the most it may "
                                        "keep: delete one first.")
                                      % {"n": TEMPLATES_PER_TENANT_MAX}, code="too_many")
            if templates_of(ctx).filter(name=name).exists():
                raise _name_taken()
            template = ClusterTemplate.objects.create(
                tenant=ctx.tenant, name=name, description=description,
                spec=spec_to_json(reusable(cluster.to_spec())), source_cluster=cluster.name,
                created_by=actor.label)
            record(actor, "cluster_template.create", template, tenant=ctx.tenant,
                   changes={"name": [None, name], "cluster": [None, cluster.name]})
            ClusterEvent.objects.create(
                tenant=ctx.tenant, cluster=cluster, source=ClusterEvent.Source.PORTAL,
                reason="cluster.template.saved", actor_label=actor.label,
                message=_("Saved as the template “%(name)s”.") % {"name": name})
            cluster_changed(cluster.pk)
    except IntegrityError:
        raise _name_taken() from None
    return template


def do_update_template(actor: Actor, ctx: TenantContext, template_id: int, *, name: str,
                       description: str) -> ClusterTemplate:
    """Rename a template or change its description (its spec stays); audited."""
    _require(actor, ctx)
    name, description = _check_text(name, description)
    try:
        with transaction.atomic():
            template = access_template(ctx, template_id, for_update=True)
            if templates_of(ctx).filter(name=name).exclude(pk=template.pk).exists():
                raise _name_taken()
            before = {"name": template.name, "description": template.description}
            template.name, template.description = name, description
            template.save()
            changes = {k: [v, getattr(template, k)] for k, v in before.items()
                       if v != getattr(template, k)}
            if changes:
                record(actor, "cluster_template.update", template, tenant=ctx.tenant,
                       changes=changes)
    except IntegrityError:
        raise _name_taken() from None
    return template


def do_delete_template(actor: Actor, ctx: TenantContext, template_id: int) -> None:
    """Delete a template (clusters made from it are not affected); audited."""
    _require(actor, ctx)
    with transaction.atomic():
        template = access_template(ctx, template_id, for_update=True)
        record(actor, "cluster_template.delete", template, tenant=ctx.tenant,
               changes={"name": [template.name, None]})
        template.delete()


# --------------------------------------------------------------------------- using one


@dataclass(frozen=True)
class Prefill:
    """A spec to start a new cluster from, and what the person must know about it."""

    spec: ClusterSpec
    notes: tuple[str, ...] = ()
    retired_version: str = ""  # the version the source had, replaced by ``spec.version``


def offered_versions() -> list[str]:
    """Versions the platform accepts for a new cluster, minus what staff stopped offering
    (the create page's list)."""
    hidden = offerings.hidden_offerings().get(Offering.Kind.VERSION, frozenset())
    release = platform_release.current()
    return [v for v in allowed_versions_from_schema(release.schema, release.shown)
            if v not in hidden]


def prefill(ctx: TenantContext, spec: ClusterSpec, *, today: datetime | None = None
            ) -> Prefill:
    """``spec`` made ready for a new cluster of the tenant: its reusable part, with a version
    that reached its end of life (or is no longer offered) replaced by the next one."""
    spec = dataclasses.replace(reusable(spec), namespace=ctx.tenant.namespace)
    offered = offered_versions()
    retired = offerings.end_of_life_versions((today or timezone.now()).date()).get(spec.version)
    if retired is None and spec.version in offered:
        return Prefill(spec)
    target = platform_release.shown_dialect().catalogue.next_minor(spec.version, offered)
    if retired is not None:
        note = _("Kubernetes %(v)s reached its end of life on %(d)s.") % {
            "v": spec.version, "d": retired.end_of_life_on.isoformat()}
    else:
        note = _("Kubernetes %(v)s is no longer offered.") % {"v": spec.version}
    if target is None:
        return Prefill(spec, (note + " " + _("Choose a version offered now."),),
                       retired_version=spec.version)
    return Prefill(dataclasses.replace(spec, version=target),
                   (note + " " + _("The form proposes %(t)s, the next version.")
                    % {"t": target},), retired_version=spec.version)


def template_prefill(ctx: TenantContext, template: ClusterTemplate) -> Prefill:
    try:
        spec = spec_from_json({**template.spec, "name": "", "host": "",
                               "namespace": ctx.tenant.namespace})
    except (KeyError, TypeError, ValueError):
        # Saved by an older portal whose spec this one no longer reads.
        raise ValidationError(_("This template can no longer be read; save a new one from a "
                                "cluster."), code="unreadable") from None
    return prefill(ctx, spec)


def clone_prefill(ctx: TenantContext, cluster: Cluster) -> Prefill:
    return prefill(ctx, cluster.to_spec())


def origin_of(ctx: TenantContext, raw: str) -> tuple[str, str] | None:
    """What a new cluster started from, as the create page sends it back (``template:<id>`` or
    ``clone:<name>``): its code and its words, or None for anything else (another tenant's,
    gone, or made up)."""
    kind, _sep, value = raw.partition(":")
    if kind == "template" and re.fullmatch(r"[1-9][0-9]{0,11}", value):
        template = templates_of(ctx).filter(pk=int(value)).first()
        if template is not None:
            return raw, _("Created from the template “%(name)s”.") % {"name": template.name}
    if kind == "clone" and re.fullmatch(r"[a-z][-a-z0-9]{0,62}", value):
        if Cluster.objects.for_tenant(ctx.tenant).live().filter(name=value).exists():
            return raw, _("Created as a clone of %(name)s.") % {"name": value}
    return None


def do_create_from_template(actor: Actor, ctx: TenantContext, template_id: int, *,
                            name: str, host: str = "", expires_at: datetime | None = None,
                            idempotency_key: str = "") -> Cluster:
    """A new cluster from a template (the API's one-step use): the template's spec, re-judged
    against the live platform like any creation; a retired version is refused in words with
    the next one named (the page proposes it instead)."""
    template = access_template(ctx, template_id)
    filled = template_prefill(ctx, template)
    if filled.retired_version:
        raise ValidationError({"version": ValidationError(" ".join(filled.notes),
                                                          code="end_of_life")})
    spec = dataclasses.replace(filled.spec, name=name, host=host)
    return expiry.do_create_cluster(actor, ctx, spec, expires_at=expires_at,
                                    idempotency_key=idempotency_key,
                                    origin=origin_of(ctx, f"template:{template.pk}"))
