"""``{% load portal_tags %}``: permissions, roles, form controls, and the htmx attributes and
message styles every page shares."""

from __future__ import annotations

from dataclasses import dataclass

from django import template
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _

from portal.permissions import Role

register = template.Library()


@register.simple_tag(takes_context=True)
def swap_oob(context: template.Context) -> SafeString:
    """`` hx-swap-oob="true"`` when the region renders as an out-of-band swap (``oob`` in the
    context: htmx responses and live pushes), nothing on the first page load."""
    return mark_safe(' hx-swap-oob="true"' if context.get("oob") else "")  # noqa: S308 - a constant


@register.filter
def alert_style(level_tag: str) -> str:
    """A message's level as an alert style: Django's ``error`` is the framework's ``danger``."""
    return "danger" if level_tag == "error" else level_tag


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


@register.filter
def as_control(bound_field):
    """Render a form field's widget with the CSS framework's classes (and is-invalid)."""
    widget = bound_field.field.widget
    input_type = getattr(widget, "input_type", "")
    if input_type in ("select", "select-multiple") or widget.__class__.__name__.endswith("Select"):
        css = "form-select"
    elif input_type in ("checkbox", "radio"):
        css = "form-check-input"
    else:
        css = "form-control"
    existing = widget.attrs.get("class", "")
    classes = " ".join(c for c in (existing, css, "is-invalid" if bound_field.errors else "") if c)
    return bound_field.as_widget(attrs={"class": classes})


@register.filter
def button_style(tags: list[str] | None) -> str:
    """The button style for allauth's element tags (``tags="danger,minor"`` arrives as a
    list)."""
    present = set(tags or ())
    if "danger" in present:
        return "btn-danger"
    if present & {"secondary", "link"}:
        return "btn-link"
    return "btn-primary"


@dataclass(frozen=True)
class Badge:
    label: str
    style: str


@register.filter
def token_badge(token: object) -> Badge | None:
    """``{% with badge=token|token_badge %}``: a revoked or expired API token's badge (None
    while it works)."""
    state = getattr(token, "state", "")
    if state == "revoked":
        return Badge(_("revoked"), "bg-secondary-lt")
    if state == "expired":
        return Badge(_("expired"), "bg-yellow-lt")
    return None
