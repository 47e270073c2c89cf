from __future__ import annotations

from django import template

from portal.permissions import Role

register = template.Library()


@register.filter
def can(ctx, perm: str) -> bool:
    """``{% if tenant_ctx|can:"clusters.change" %}``: the permission table, in templates."""
    return bool(ctx) and ctx.can(perm)


@register.filter
def has_role(roles, role: str) -> bool:
    return role in roles


@register.filter
def role_label(role: str) -> str:
    """A role's name in the reader's language (``owner`` → "Owner" / "Propriétaire")."""
    try:
        return str(Role(role).label)
    except ValueError:
        return role
