"""What the cluster page says of hibernation: ``{% hibernation_saved cluster %}`` is what
hibernation saved the cluster this month so far (CHF, before VAT; billing's pricing path), or
None when it did not hibernate this month."""

from __future__ import annotations

from decimal import Decimal

from django import template

from billing.queries import hibernation_savings_mtd
from clusters.models import Cluster

register = template.Library()


@register.simple_tag
def hibernation_saved(cluster: Cluster, slept: bool | None = None) -> Decimal | None:
    """``slept``: whether the cluster hibernated this month, when the page read it already
    (False saves the query)."""
    if cluster.deleted_at is not None or slept is False:
        return None
    return hibernation_savings_mtd(cluster.tenant, cluster_id=cluster.pk).get(cluster.pk)
