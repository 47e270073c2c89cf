"""``{% maintenance_panel as maintenance %}``: the cluster page's maintenance panel context
(``clusters.web.maintenance.panel_context``), for the page's first render."""

from __future__ import annotations

from typing import Any

from django import template

from clusters.web.maintenance import panel_context

register = template.Library()


@register.simple_tag(takes_context=True)
def maintenance_panel(context: template.Context) -> dict[str, Any]:
    return panel_context(context["ctx"], context["cluster"])
