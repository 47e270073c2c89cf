"""Templates stay thin: short lines, few conditions in page templates, and the shared tags that
keep state-to-style mapping and phrasing out of them (portal_tags)."""

from __future__ import annotations

import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from django.contrib.messages import constants
from django.contrib.messages.storage.base import Message
from django.template import Context, Template

from portal.templatetags import portal_tags

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
MAX_LINE = 160
# A page template lays out its regions: the conditions left in it only choose which regions a
# reader sees (their role, the object's state). Phrasing and state-to-style mapping belong in
# template tags and presenters, and a region with conditions of its own in a partial (a named
# partialdef or an included _*.html). Six is what the busiest page needs today: allauth's email
# page, a copy of upstream's kept close to it; the portal's own pages need four at most (the
# cluster detail page had 67 before it was split into partials).
MAX_CONDITIONS_PER_PAGE = 6
CONDITION = re.compile(r"\{%-?\s*(?:if|elif)\b")


def template_files() -> list[Path]:
    return sorted(p for p in TEMPLATES.rglob("*") if p.suffix in {".html", ".txt"})


def is_page(path: Path) -> bool:
    """A template that is a screen (extends a layout) or a layout itself."""
    text = path.read_text()
    return "{% extends" in text or "<html" in text


def test_the_template_folder_is_found():
    assert len(template_files()) > 50
    assert TEMPLATES / "clusters/detail.html" in template_files()


def test_no_template_line_is_longer_than_160_characters():
    long_lines = [f"{path.relative_to(TEMPLATES)}:{number}: {len(line)} characters"
                  for path in template_files()
                  for number, line in enumerate(path.read_text().splitlines(), start=1)
                  if len(line) > MAX_LINE]

    assert long_lines == []


def test_page_templates_keep_their_conditions_few():
    pages = {str(path.relative_to(TEMPLATES)): len(CONDITION.findall(path.read_text()))
             for path in template_files() if is_page(path)}

    assert "clusters/detail.html" in pages and "base.html" in pages
    assert {name: n for name, n in pages.items() if n > MAX_CONDITIONS_PER_PAGE} == {}


def test_the_condition_count_sees_every_spelling():
    text = "{% if a %}{%if b %}{%- elif c %}{% elif d %}{% endif %}{{ iffy }}{% ifchanged %}"
    assert len(CONDITION.findall(text)) == 4


# --------------------------------------------------------------------------- portal_tags


@pytest.mark.parametrize(("oob", "expected"), [(True, ' hx-swap-oob="true"'), (False, ""),
                                               (None, "")])
def test_a_region_swaps_out_of_band_only_when_asked(oob, expected):
    template = Template('{% load portal_tags %}<div id="r"{% swap_oob %}></div>')
    assert template.render(Context({"oob": oob})) == f'<div id="r"{expected}></div>'


@pytest.mark.parametrize(("level", "style"), [
    (constants.ERROR, "danger"), (constants.SUCCESS, "success"), (constants.WARNING, "warning"),
    (constants.INFO, "info")])
def test_messages_show_in_the_alert_style_of_their_level(level, style):
    assert portal_tags.alert_style(Message(level, "text").tags) == style


@pytest.mark.parametrize(("tags", "style"), [
    (["danger", "minor"], "btn-danger"), (["minor", "secondary"], "btn-link"),
    (["link"], "btn-link"), (["prominent"], "btn-primary"), (None, "btn-primary")])
def test_allauth_buttons_take_the_style_of_their_tags(tags, style):
    assert portal_tags.button_style(tags) == style


@pytest.mark.parametrize(("state", "badge"), [
    ("revoked", ("revoked", "bg-secondary-lt")), ("expired", ("expired", "bg-yellow-lt")),
    ("active", None)])
def test_api_tokens_that_no_longer_work_say_why(state, badge):
    found = portal_tags.token_badge(SimpleNamespace(state=state))
    assert (found and (found.label, found.style)) == badge
