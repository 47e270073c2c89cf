"""Reading rendered pages the way a person does: field errors, messages, visible text."""

from __future__ import annotations

import re
from html import unescape
from html.parser import HTMLParser

from django.http import HttpResponse

_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
         "track", "wbr"}


class _Collector(HTMLParser):
    """Collects the text of every element matching ``match(tag, attrs)``."""

    def __init__(self, match) -> None:
        super().__init__(convert_charrefs=True)
        self.match = match
        self.depth: list[bool] = []
        self.found: list[list[str]] = []
        self.open = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            return
        hit = bool(self.match(tag, dict(attrs)))
        self.depth.append(hit)
        if hit:
            self.found.append([])
            self.open += 1

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not self.depth:
            return
        if self.depth.pop():
            self.open -= 1

    def handle_data(self, data: str) -> None:
        if self.open:
            self.found[-1].append(data)


def _collapse(text: str) -> str:
    # Only ASCII whitespace: French text keeps its no-break spaces (U+00A0, U+202F).
    return re.sub(r"[ \t\n\r\f\v]+", " ", text).strip()


def _texts(html: str, match) -> list[str]:
    parser = _Collector(match)
    parser.feed(html)
    return [_collapse("".join(parts)) for parts in parser.found]


def _html(response: HttpResponse | str) -> str:
    return response if isinstance(response, str) else response.content.decode()


def field_errors(response: HttpResponse | str, field: str) -> list[str]:
    """The errors shown beside ``field`` (the portal's field component)."""
    return _texts(_html(response), lambda tag, attrs: "field-error" in (attrs.get("class") or "")
                  and attrs.get("data-field") == field)


def form_errors(response: HttpResponse | str) -> list[str]:
    """Errors shown above a form (not tied to one field)."""
    return _texts(_html(response), lambda tag, attrs: "alert-danger" in (attrs.get("class") or "")
                  and attrs.get("role") == "alert")


def alerts(response: HttpResponse | str) -> list[str]:
    """Flash messages shown at the top of the page."""
    return _texts(_html(response), lambda tag, attrs: attrs.get("role") == "alert")


def by_testid(response: HttpResponse | str, testid: str) -> list[str]:
    return _texts(_html(response), lambda tag, attrs: attrs.get("data-testid") == testid)


def visible_text(response: HttpResponse | str) -> str:
    """The page's text without tags, scripts or styles, whitespace collapsed."""
    html = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", _html(response))
    return _collapse(unescape(re.sub(r"<[^>]+>", " ", html)))


def table_rows(response: HttpResponse | str, testid: str) -> list[list[str]]:
    """The body rows of the table marked ``data-testid=testid``, as lists of cell texts."""
    html = _html(response)
    start = html.index(f'data-testid="{testid}"')
    table = html[start:html.index("</table>", start)]
    body = table.split("<tbody>", 1)[-1]
    rows = re.findall(r"(?s)<tr\b.*?</tr>", body)
    return [_texts(row, lambda tag, attrs: tag == "td") for row in rows]
