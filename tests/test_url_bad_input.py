"""Walks every URL pattern with hostile input, as an owner (who may do everything) would send
it: the answer is a page, a form error or a clear 4xx, never a server error, and never larger
than ``MAX_ANSWER_BYTES``.

Three walks share one corpus of hostile values (``CORPUS``: huge and negative numbers, 10**30,
NaN and Infinity, deep nesting, an alias bomb, 1 MB strings, NUL bytes, bidi overrides,
markup):

* every URL pattern gets nonsense in the query string and in the body;
* every HTML form field: the forms are found on the pages themselves (where each form sends
  to, by ``action``, ``hx-post`` or ``hx-get``, with the fields, selects, text areas and submit
  buttons it carries, and the confirmation fields the first answer adds), filters sent by GET
  as well as forms sent by POST, so a new form or field is walked without editing this file;
* every field an API write accepts, found in the OpenAPI document.

Each form and each API write gets every corpus value in every field at once, then each field
alone gets a few corpus values (a different few per field, so every value meets many fields)
with the rest of the form valid, which lets the value reach the actions.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from rest_framework.test import APIClient

from billing.models import Budget
from clusters import maintenance
from clusters.models import Hibernation, MaintenanceWindow, NodeGroup, Operation, UpgradePolicy
from portal.models import Membership
from tests.api.factories import make_token
from tests.clusters.ui import offline_platform
from tests.platform.test_values import bomb
from tests.test_url_isolation import PARAM_SAMPLES, PATTERNS, _ids, _url, world

__all__ = ["offline_platform", "world"]
pytestmark = pytest.mark.usefixtures("offline_platform")

JUNK = {"page": "-1x", "phase": "<script>", "version": "v9" * 20, "period": "2026-13",
        "since": "yesterday", "until": "31/02/2026", "verb": "' OR 1=1", "actor": "0x",
        "format": "exe", "limit": "-5", "offset": "abc", "ordering": "password",
        "cursor": "%%%", "lang": "xx", "tenant": "../../etc"}

# A 503 here is the answer itself: the probe says the platform is unreachable (it is, offline).
PROBES = {"readyz"}
MAX_ANSWER_BYTES = 1024 * 1024
MARKUP = '<script>alert("x")</script><img src=x onerror=alert(1)>'

# One corpus: the text a form field receives, and the JSON an API field receives.
CORPUS: dict[str, tuple[str, str]] = {
    "huge": (str(2**64), str(2**64)),
    "negative": ("-1", "-1"),
    "negative-huge": ("-" + "9" * 30, "-" + "9" * 30),
    "ten-to-the-30": ("1" + "0" * 30, "1" + "0" * 30),
    "5000-digits": ("1" * 5000, "1" * 5000),
    "nan": ("NaN", "NaN"),
    "infinity": ("Infinity", "-Infinity"),
    "float-overflow": ("1e400", "1e400"),
    "unicode-digits": ("²٣", json.dumps("²٣")),
    "deep-nesting": ("x: " + "[" * 600 + "]" * 600, "[" * 2000 + "]" * 2000),
    "deep-mapping": ("{a: " * 600 + "1" + "}" * 600, '{"a": ' * 40 + "1" + "}" * 40),
    "alias-bomb": (bomb(7, "cert-manager"), json.dumps(bomb(7, "cert-manager"))),
    "yaml-inf": ("cert-manager:\n  x: .inf\n  y: .nan\n", '{"cert-manager": {"x": 1e400}}'),
    "yaml-big-int": ("cert-manager:\n  x: " + "9" * 5000, '{"cert-manager": {"x": 1' + "0" * 30
                     + "}}"),
    "one-megabyte": ("a" * 2**20, json.dumps("a" * 2**20)),
    "sixty-five-kilobytes": ("b" * 65 * 1024, json.dumps("b" * 65 * 1024)),
    "nul": ("a\x00b", json.dumps("a\x00b")),
    "bidi": ("\u202egnp.exe\u202c", json.dumps("\u202egnp.exe\u202c")),
    "markup": (MARKUP, json.dumps(MARKUP)),
    "wrong-type": ("[]", "{}"),
    "null": ("null", "null"),
}
NAMES = list(CORPUS)
PER_FIELD = 2  # corpus values each field gets alone, on top of all of them at once


def field_samples(index: int, count: int = PER_FIELD) -> list[str]:
    """The corpus values field number ``index`` gets alone: a different few for each field,
    stepping through the corpus so every value meets many fields."""
    return [NAMES[(index * count + k) % len(NAMES)] for k in range(count)]


def _assert_answer(response: Any, what: str, *, allow: frozenset[int] = frozenset()) -> None:
    status = response.status_code
    assert status < 500 or status in allow, f"{what}: {status}"
    body = response.content
    assert len(body) < MAX_ANSWER_BYTES, f"{what}: answer of {len(body)} bytes"
    if "html" in response.get("Content-Type", ""):
        assert MARKUP.encode() not in body, f"{what}: markup sent back unescaped"


@pytest.mark.parametrize("pattern", [p for p in PATTERNS if p[0] not in PROBES], ids=_ids)
def test_nonsense_never_ends_in_a_server_error(pattern, world, client_for):
    name, params, _entry, _route = pattern
    path = _url(name, params, world)
    client = client_for(world.owner)
    client.raise_request_exception = False
    assert client.get(path, JUNK).status_code < 500, f"GET {path}"
    assert client.post(path, JUNK).status_code < 500, f"POST {path}"
    assert client.post(path, b"{not json", content_type="application/json").status_code < 500, \
        f"POST {path} (broken JSON)"


# --------------------------------------------------------------------------- HTML forms


@dataclass
class Form:
    """A form as a browser would send it: ``fields`` are every name it can send, in order;
    ``baseline`` what it sends untouched; ``htmx`` whether it goes through htmx."""

    target: str
    method: str = "post"
    fields: list[str] = field(default_factory=list)
    baseline: dict[str, list[str]] = field(default_factory=dict)
    htmx: bool = False

    def add(self, name: str, value: str | None, *, sent: bool) -> None:
        if name == "csrfmiddlewaretoken":
            return
        if name not in self.fields:
            self.fields.append(name)
        if sent:
            self.baseline.setdefault(name, []).append(value or "")


class _FormReader(HTMLParser):
    """Every form of ``page``, by the path it sends to (``action``, ``hx-post``, ``hx-get``,
    else the page itself)."""

    def __init__(self, page: str) -> None:
        super().__init__(convert_charrefs=True)
        self.page = page
        self.forms: list[Form] = []
        self.open: list[Form] = []
        self.select: tuple[str, list[str], list[str]] | None = None  # name, options, chosen
        self.textarea: str | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            method = "post" if a.get("method", "get").lower() == "post" or "hx-post" in a \
                else "get"
            hx = a.get(f"hx-{method}", "")
            targets = {urlsplit(u).path for u in (a.get("action"), hx) if u} or {self.page}
            self.open = [Form(t, method, htmx=t == urlsplit(hx).path) for t in sorted(targets)]
            self.forms += self.open
        elif tag == "input" and a.get("name"):
            kind = a.get("type", "text").lower()
            sent = kind not in ("checkbox", "radio", "submit", "button", "image") or \
                "checked" in a
            self._add(a["name"], a.get("value", "on" if kind == "checkbox" else ""), sent=sent)
        elif tag == "button" and a.get("name"):
            self._add(a["name"], a.get("value", ""), sent=False)
        elif tag == "select" and a.get("name"):
            self.select = (a["name"], [], [])
        elif tag == "option" and self.select is not None:
            self.select[1].append(a.get("value", ""))
            if "selected" in a:
                self.select[2].append(a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self.textarea, self.text = a["name"], []

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self.open = []
        elif tag == "select" and self.select is not None:
            name, options, chosen = self.select
            self._add(name, (chosen or options or [""])[0], sent=True)
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self._add(self.textarea, "".join(self.text).removeprefix("\n"), sent=True)
            self.textarea = None

    def handle_data(self, data: str) -> None:
        if self.textarea is not None:
            self.text.append(data)

    def _add(self, name: str, value: str, *, sent: bool) -> None:
        for form in self.open:
            form.add(name, value, sent=sent)


def forms_on(html: str, page: str) -> list[Form]:
    reader = _FormReader(page)
    reader.feed(html)
    return reader.forms


def _url_name(path: str) -> str | None:
    try:
        match = resolve(path)
    except Resolver404:
        return None
    return ":".join((*match.namespaces, match.url_name)) if match.url_name else None


def _host_pages(path: str) -> Iterator[str]:
    """Where a form posting to ``path`` is shown: the page itself, then its parents."""
    parts = path.rstrip("/").split("/")
    for end in range(len(parts), 1, -1):
        yield "/".join(parts[:end]) + "/"


# Pages to look on when no parent of the target shows its form.
MORE_HOSTS = ("tenant_settings", "members", "profile")


def find_form(client: Client, world: Any, path: str, method: str = "post") -> Form | None:
    """The form that sends to ``path`` with ``method``, as the page showing it renders it."""
    hosts = [*_host_pages(path), *(reverse(h, kwargs={"tenant_slug": world.tenant.slug})
                                    if h != "profile" else reverse(h) for h in MORE_HOSTS)]
    for host in dict.fromkeys(hosts):
        response = client.get(host)
        if response.status_code != 200 or "html" not in response.get("Content-Type", ""):
            continue
        found = [f for f in forms_on(response.content.decode(), host)
                 if f.target == path and f.method == method]
        if found:
            form = found[0]
            form.htmx = any(f.htmx for f in found)
            return form
    return None


# What a page needs to show the form of a URL (the world's sample objects are otherwise idle),
# and the URL parameters to use instead of the samples.
def _failed_operation(w: Any) -> dict[str, Any]:
    PARAM_SAMPLES["operation_id"](w)
    Operation.objects.filter(pk=w.extra["operation"].pk).update(
        state=Operation.State.FAILED, finished_at=timezone.now(),
        error_class=Operation.ErrorClass.PLATFORM_ERROR, error_message="Failed.")
    return {}


def _queued_operation(w: Any) -> dict[str, Any]:
    PARAM_SAMPLES["operation_id"](w)
    Operation.objects.filter(pk=w.extra["operation"].pk).update(
        state=Operation.State.QUEUED, finished_at=None, submitted_at=None)
    return {}


def _other_member(w: Any) -> dict[str, Any]:
    """Nobody changes or removes their own membership from the members page."""
    return {"membership_id": Membership.objects.filter(tenant=w.tenant)
            .exclude(user=w.owner).values_list("pk", flat=True).first()}


def _second_group(w: Any) -> dict[str, Any]:
    """The last node group cannot be removed, so its form is not shown."""
    PARAM_SAMPLES["cluster_name"](w)
    first = w.extra["cluster"].node_groups.get()
    NodeGroup.objects.create(cluster=first.cluster, name="md1", position=1,
                             instance_type=first.instance_type, min_replicas=1, max_replicas=2,
                             disk_gib=50)
    return {}


def _budget(w: Any) -> dict[str, Any]:
    Budget.objects.create(tenant=w.tenant, amount=Decimal("100"), thresholds=[50, 100])
    return {}


def _scheduled_upgrade(w: Any) -> dict[str, Any]:
    """The announcement (with "upgrade now" and "postpone") shows while an upgrade waits."""
    PARAM_SAMPLES["cluster_name"](w)
    cluster = w.extra["cluster"]
    MaintenanceWindow.objects.get_or_create(
        cluster=cluster, defaults={"tenant": w.tenant, "weekdays": [2], "start_time": "03:00",
                                   "duration_minutes": 120, "time_zone": "UTC",
                                   "upgrade_policy": UpgradePolicy.KEEP_CURRENT})
    maintenance.PLANNER.plan(timezone.now())
    return {}


def _hibernating(w: Any) -> dict[str, Any]:
    """The wake form shows only while the cluster hibernates."""
    PARAM_SAMPLES["cluster_name"](w)
    cluster = w.extra["cluster"]
    Hibernation.objects.create(tenant=cluster.tenant, cluster=cluster, restore=[
        {"name": g.name, "instance_type": g.instance_type, "min_replicas": g.min_replicas,
         "max_replicas": g.max_replicas, "disk_gib": g.disk_gib}
        for g in cluster.node_groups.all()])
    return {}


def _expiring(w: Any) -> dict[str, Any]:
    """Only a cluster with an expiry shows the forms that extend or remove it."""
    from datetime import timedelta

    from clusters.models import ClusterExpiry

    PARAM_SAMPLES["cluster_name"](w)
    ClusterExpiry.objects.create(cluster=w.extra["cluster"],
                                 expires_at=timezone.now() + timedelta(days=2))
    return {}


SETUP = {"clusters:maintenance_postpone": _scheduled_upgrade,
         "clusters:maintenance_upgrade_now": _scheduled_upgrade,
         "clusters:operation_retry": _failed_operation,
         "clusters:operation_cancel": _queued_operation,
         "member_role": _other_member, "member_remove": _other_member,
         "clusters:group_remove": _second_group, "billing:budget_remove": _budget,
         "clusters:wake": _hibernating,
         "clusters:expiry_extend": _expiring, "clusters:expiry_remove": _expiring}


# URLs that take a POST but whose form no page shows the owner, with the reason.
NO_FORM: dict[str, str] = {
    "home": "a page that only reads (answers any method)",
    "healthz": "the liveness probe (answers any method)",
    "set_language": "Django's language switch: a redirect whatever it is sent",
    "staff_console": "staff only: the owner is turned away",
    "staff_impersonate": "staff only: the owner is turned away",
    "staff_impersonate_stop": "only shown while impersonating",
    "staff_automation": "staff only: the owner is turned away",
    "staff_automation_pause": "staff only: the owner is turned away",
    "mfa_enrolment_request": "shown to staff without an authenticator app only, and it takes no "
                             "field (its refusals are in tests/portal/test_mfa_enrolment.py)",
}
FORM_TARGETS = [(name, params) for name, params, _entry, route in PATTERNS
                if not route.startswith("api/") and name not in PROBES]


def _takes_post(client: Client, path: str) -> bool:
    answer = client.options(path)
    return answer.status_code != 405 or "POST" in answer.get("Allow", "")


def _settle() -> None:
    """Finish whatever a request queued, so the next one reaches the rules and the actions
    instead of hearing that another change is still in progress."""
    Operation.objects.filter(state__in=Operation.ACTIVE_STATES).update(
        state=Operation.State.SUCCEEDED, finished_at=timezone.now())


QUERY_MAX = 8 * 1024  # a web server refuses longer request lines before the portal sees them


def _send(client: Client, form: Form, data: dict[str, list[str]], *, htmx: bool) -> Any:
    headers = {"HX-Request": "true"} if htmx else {}
    if form.method == "get":
        data = {k: [v[:QUERY_MAX] for v in values] for k, values in data.items()}
        return client.get(form.target, data, headers=headers)
    response = client.post(form.target, data, headers=headers)
    _settle()
    return response


def walk_form(client: Client, form: Form) -> None:
    """Every corpus value in every field at once, then each field alone with a few of them
    and the rest of the form as the page filled it in."""
    what = f"{form.method.upper()} {form.target}"
    # The first answer may add fields (the confirmation of the detail page's actions).
    first = _send(client, form, form.baseline, htmx=form.htmx)
    _assert_answer(first, f"{what} untouched")
    for extra in forms_on(first.content.decode(errors="replace"), form.target):
        if extra.target == form.target and extra.method == form.method:
            for field_name in extra.fields:
                form.add(field_name, None, sent=False)
    for index, value_name in enumerate(NAMES):
        value = CORPUS[value_name][0]
        data = {f: [value] for f in form.fields}
        response = _send(client, form, data, htmx=form.htmx and index % 2 == 0)
        _assert_answer(response, f"{what} every field = {value_name}")
    for index, field_name in enumerate(form.fields):
        for k, value_name in enumerate(field_samples(index)):
            data = {**form.baseline, field_name: [CORPUS[value_name][0]]}
            response = _send(client, form, data, htmx=form.htmx and k % 2 == 1)
            _assert_answer(response, f"{what} {field_name} = {value_name}")


@pytest.mark.parametrize(("name", "params"), FORM_TARGETS, ids=[n for n, _p in FORM_TARGETS])
def test_every_form_field_answers_the_hostile_corpus(name, params, world, client_for):
    overrides = SETUP[name](world) if name in SETUP else {}
    path = reverse(name, kwargs={p: overrides[p] if p in overrides else PARAM_SAMPLES[p](world)
                                 for p in params})
    client = client_for(world.owner)
    client.raise_request_exception = False
    filters = find_form(client, world, path, "get")
    if filters is not None:
        walk_form(client, filters)
    if not _takes_post(client, path):
        assert client.post(path, {"confirm": "True"}).status_code == 405, path
        return
    form = find_form(client, world, path)
    if form is None:
        assert name in NO_FORM, f"{name}: no page shows a form posting to {path}"
        form = Form(path, fields=["confirm", "name", "value"])
    walk_form(client, form)


def test_the_walk_finds_every_form_on_every_page(world, client_for):
    """Guards the walk above: each form any page shows sends to a URL it walks, and the walk
    finds that form by itself."""
    client = client_for(world.owner)
    walked = {n for n, _p in FORM_TARGETS}
    seen: dict[tuple[str, str], str] = {}
    for name, params, _entry, route in PATTERNS:
        if route.startswith("api/") or name in PROBES:
            continue
        page = _url(name, params, world)
        response = client.get(page)
        if response.status_code == 200 and "html" in response.get("Content-Type", ""):
            for form in forms_on(response.content.decode(), page):
                seen.setdefault((form.target, form.method), name)
    assert {method for _target, method in seen} == {"get", "post"}
    for (target, method), page in seen.items():
        target_name = _url_name(target)
        if target_name is None or target_name.split(":")[0] == "admin" or \
                target.startswith("/accounts/"):
            continue
        assert target_name in walked, f"{page} shows a form for {target_name}, not walked"
        assert find_form(client, world, target, method) is not None, (target, method)


# --------------------------------------------------------------------------- API writes


@pytest.fixture(scope="module")
def document(django_db_blocker):
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def _api_writes() -> list[tuple[str, str, tuple[str, ...], str]]:
    """(url name, method, url parameters, OpenAPI path) of every API write."""
    writes = []
    for name, params, entry, route in PATTERNS:
        view = getattr(entry.callback, "cls", None)
        if not route.startswith("api/") or view is None:
            continue
        schema_path = "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for method in ("post", "put", "patch", "delete"):
            if hasattr(view, method):
                writes.append((name, method, params, schema_path))
    return writes


GROUP = {"name": "walk", "instance_type": "u1.medium", "min_replicas": 1, "max_replicas": 3}
# A valid body per API write, so one hostile field reaches the action behind it.
BASELINES: dict[tuple[str, str], Any] = {
    ("api:clusters", "post"): {"name": "walk", "version": "v1.34", "node_groups": [GROUP]},
    ("api:cluster", "put"): {"version": "v1.34", "node_groups": [{**GROUP, "name": "md0"}]},
    ("api:cluster", "patch"): {"node_groups": [{**GROUP, "name": "md0", "max_replicas": 4}]},
    ("api:node_groups", "post"): GROUP,
    ("api:node_group", "put"): {**GROUP, "name": "md0", "max_replicas": 4},
    ("api:node_group", "patch"): {"max_replicas": 4},
    ("api:cluster_upgrade", "post"): {"version": "v1.35"},
    ("api:cluster_hibernation", "put"): {"time_zone": "Europe/Zurich", "ranges": [
        {"day": 0, "start": "20:00", "end": "08:00"}]},
    ("api:cluster_kubeconfig", "post"): {"kind": "admin"},
    ("api:estimate", "post"): {"node_groups": [GROUP]},
    ("api:webhooks", "post"): {"target_url": "https://hooks.example.com/walk",
                               "event_types": ["cluster.ready"]},
    ("api:webhook", "patch"): {"description": "walk"},
    ("api:webhook_rotate_secret", "post"): {"overlap_hours": 24},
    ("api:cluster_maintenance", "put"): {"weekdays": [2], "start_time": "03:00",
                                         "duration_minutes": 120, "time_zone": "UTC",
                                         "upgrade_policy": "manual"},
    ("api:cluster_maintenance_postpone", "post"): {},
    ("api:cluster_maintenance_upgrade_now", "post"): {},
    ("api:tenant_maintenance_default", "put"): {"weekdays": [2], "start_time": "03:00",
                                                "duration_minutes": 120, "time_zone": "UTC",
                                                "upgrade_policy": "manual"},
    ("api:cluster_expiry", "put"): {"after_hours": 48},
    ("api:cluster_expiry_extend", "post"): {"hours": 24},
    ("api:expiry_policy", "put"): {"max_hours": 720},
    ("api:cluster_templates", "post"): {"cluster": "prod-eu", "name": "walk",
                                        "description": "walk"},
    ("api:cluster_template", "patch"): {"name": "walk", "description": "walk"},
    ("api:cluster_template_use", "post"): {"name": "walk", "after_hours": 48},
}
# Writes whose valid answer needs the platform, which is offline here (503 is that answer).
NEEDS_PLATFORM = {("api:cluster_kubeconfig", "post")}


def _resolve(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = document["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    return schema


def write_fields(schema: dict[str, Any], document: dict[str, Any],
                 prefix: tuple[str | int, ...] = ()) -> Iterator[tuple[str | int, ...]]:
    """The path of every field a request body may carry (list items at index 0)."""
    schema = _resolve(schema, document)
    for option in schema.get("allOf", []) + schema.get("oneOf", []) + schema.get("anyOf", []):
        yield from write_fields(option, document, prefix)
    if "items" in schema:
        yield (*prefix, 0)
        yield from write_fields(schema["items"], document, (*prefix, 0))
    for key, child in schema.get("properties", {}).items():
        yield (*prefix, key)
        yield from write_fields(child, document, (*prefix, key))


_SLOT = "\u2063slot\u2063"


def _with(body: Any, path: tuple[str | int, ...]) -> Any:
    """``body`` with a placeholder at ``path`` (parents created as needed)."""
    body = json.loads(json.dumps(body))
    if not path:
        return _SLOT
    target = body
    for key, after in zip(path, path[1:], strict=False):
        empty: Any = [] if isinstance(after, int) else {}
        if isinstance(key, int):
            while len(target) <= key:
                target.append(json.loads(json.dumps(GROUP)) if after in GROUP else empty)
            if not isinstance(target[key], (dict, list)):
                target[key] = empty
        elif not isinstance(target.get(key), (dict, list)):
            target[key] = empty
        target = target[key]
    last = path[-1]
    if isinstance(last, int):
        while len(target) <= last:
            target.append(None)
    target[last] = _SLOT
    return body


def _json(body: Any, slots: dict[str, str]) -> str:
    text = json.dumps(body)
    for slot, raw in slots.items():
        text = text.replace(json.dumps(slot), raw)
    return text


def _every_leaf(body: Any, paths: list[tuple[str | int, ...]]) -> Any:
    """``body`` with the placeholder in every leaf field at once."""
    for path in paths:
        if not any(len(other) > len(path) and other[:len(path)] == path for other in paths):
            body = _with(body, path)
    return body


def _write_ids() -> list[str]:
    return [f"{name}-{method}" for name, method, _p, _s in _api_writes()]


@pytest.mark.parametrize(("name", "method", "params", "schema_path"), _api_writes(),
                         ids=_write_ids())
def test_every_api_write_field_answers_the_hostile_corpus(name, method, params, schema_path,
                                                          world, document, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        "api_token": None, "api_user": None, "api_anon": None}}
    path = _url(name, params, world)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_token(world.owner)}")
    allow = frozenset({503}) if (name, method) in NEEDS_PLATFORM else frozenset()

    def send(path: str, body: str, **kwargs: Any) -> Any:
        response = getattr(client, method)(path, body, **kwargs)
        _settle()
        return response

    operation = document["paths"][schema_path][method]
    body_schema = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body_schema is None:
        # No body is read: whatever is sent must still be answered, not crash.
        for value_name in NAMES:
            response = send(path, CORPUS[value_name][1], content_type="application/json")
            _assert_answer(response, f"{method} {path} body = {value_name}", allow=allow)
        return
    assert (name, method) in BASELINES, f"add a valid body for {method} {name} to BASELINES"
    baseline = BASELINES[(name, method)]
    paths = list(dict.fromkeys(write_fields(body_schema["schema"], document)))
    assert paths, f"{method} {name}: no write field found in the OpenAPI document"

    everywhere = _every_leaf(baseline, paths)
    for value_name in NAMES:
        body = _json(everywhere, {_SLOT: CORPUS[value_name][1]})
        response = send(path, body, content_type="application/json")
        _assert_answer(response, f"{method} {path} every field = {value_name}", allow=allow)
    for index, field_path in enumerate(paths):
        for value_name in field_samples(index):
            body = _json(_with(baseline, field_path), {_SLOT: CORPUS[value_name][1]})
            response = send(path, body, content_type="application/json")
            _assert_answer(response, f"{method} {path} {field_path} = {value_name}", allow=allow)
