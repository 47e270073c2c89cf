"""Renderers for endpoints that answer with a file (kubeconfig YAML, invoice PDF and CSV).

The file itself is returned as a plain ``HttpResponse``; these renderers only make content
negotiation accept the file's media type, and render problem details (errors) as JSON under
their own ``application/problem+json`` content type.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import BaseRenderer, JSONRenderer


def file_renderer(media_type: str, format_name: str) -> type[BaseRenderer]:
    def render(self: BaseRenderer, data: Any, accepted_media_type: str | None = None,
               renderer_context: dict[str, Any] | None = None) -> bytes:
        return JSONRenderer().render(data)

    name = f"{format_name.title()}FileRenderer"
    return type(name, (BaseRenderer,), {"media_type": media_type, "format": format_name,
                                        "charset": None, "render": render})


YamlFileRenderer = file_renderer("application/yaml", "yaml")
PdfFileRenderer = file_renderer("application/pdf", "pdf")
CsvFileRenderer = file_renderer("text/csv", "csv")
