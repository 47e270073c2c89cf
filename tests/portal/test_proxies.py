"""The client's address comes from TRUSTED_PROXIES alone: X-Forwarded-For counts only as far as
a trusted proxy wrote it, for the API throttle, allauth's rate limits, the audit trail and the
ASGI application alike."""

from __future__ import annotations

import asyncio

import pytest
from django.test import Client
from django.urls import reverse

from portal.proxies import TrustedProxyMiddleware, address_for_limits, client_address
from tests.factories import PASSWORD

PROXY = "10.0.0.2"
CLIENT = "203.0.113.9"


@pytest.fixture
def no_proxy(settings):
    settings.TRUSTED_PROXIES = []


@pytest.fixture
def one_proxy(settings):
    settings.TRUSTED_PROXIES = ["10.0.0.0/8"]


# -- the function --------------------------------------------------------------------------------

@pytest.mark.parametrize("forwarded", [None, "", CLIENT, f"1.1.1.1, {CLIENT}", "garbage"])
def test_without_a_trusted_proxy_the_socket_peer_is_the_client(no_proxy, forwarded):
    assert client_address(PROXY, forwarded) == PROXY


@pytest.mark.parametrize(("forwarded", "client"), [
    (CLIENT, CLIENT),
    (f"1.1.1.1, {CLIENT}", CLIENT),                      # the client's own entry is ignored
    (f"1.1.1.1, 198.51.100.4, {CLIENT}", CLIENT),
    (f"1.1.1.1, {CLIENT}, 10.0.0.7", CLIENT),            # through two trusted proxies
    (f"{CLIENT}:51234", CLIENT),                         # a proxy recording the port
    ("[2001:db8::5]:443", "2001:db8::5"),
    ("10.0.0.9", "10.0.0.9"),                            # only proxies: the farthest one
    ("", PROXY),
    (f"{CLIENT}, garbage", PROXY),                       # no address: stop at the proxy
    (f"{CLIENT},, ", CLIENT),
])
def test_behind_a_trusted_proxy_the_right_most_untrusted_address_is_the_client(
        one_proxy, forwarded, client):
    assert client_address(PROXY, forwarded) == client


def test_an_untrusted_peer_is_the_client_whatever_it_forwards(one_proxy):
    assert client_address(CLIENT, "10.0.0.5, 198.51.100.4") == CLIENT


def test_an_ipv4_peer_on_a_dual_stack_socket_is_matched_as_ipv4(one_proxy):
    assert client_address("::ffff:10.0.0.2", CLIENT) == CLIENT


@pytest.mark.parametrize(("peer", "forwarded"), [
    (PROXY, CLIENT), (PROXY, f"1.1.1.1, {CLIENT}, 10.0.0.7"), (PROXY, "10.0.0.9"),
    (PROXY, f"{CLIENT}, garbage"), (CLIENT, "10.0.0.5"), ("unix:/run/portal.sock", CLIENT),
])
def test_deriving_the_client_twice_changes_nothing(one_proxy, peer, forwarded):
    once = client_address(peer, forwarded)
    assert client_address(once, forwarded) == once


def test_limits_count_an_ipv6_client_by_its_64_block():
    assert address_for_limits("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::"
    assert address_for_limits(CLIENT) == CLIENT


# -- the API's anonymous throttle ----------------------------------------------------------------

@pytest.fixture
def anon_limit(settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api_anon": "2/min"}}


def _docs(client: Client, forwarded: str) -> int:
    return client.get("/api/docs/", HTTP_X_FORWARDED_FOR=forwarded).status_code


def test_a_rotating_forwarded_for_does_not_reset_the_anonymous_throttle(db, no_proxy,
                                                                        anon_limit):
    client = Client()
    statuses = [_docs(client, f"198.51.100.{n}") for n in range(4)]
    assert statuses == [200, 200, 429, 429]


def test_behind_a_trusted_proxy_the_throttle_counts_each_client(db, settings, anon_limit):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]  # the test client's address
    client = Client()
    spoofed = [_docs(client, f"192.0.2.{n}, {CLIENT}") for n in range(3)]
    assert spoofed == [200, 200, 429]
    assert _docs(client, "198.51.100.4") == 200


# -- allauth's rate limits -----------------------------------------------------------------------

def _log_in(client: Client, email: str, password: str, forwarded: str):
    return client.post(reverse("account_login"), {"login": email, "password": password},
                       HTTP_X_FORWARDED_FOR=forwarded)


def test_a_rotating_forwarded_for_does_not_reset_the_login_limit(db, no_proxy):
    client = Client()
    statuses = [_log_in(client, f"guess{n}@example.org", "wrong", f"198.51.100.{n}").status_code
                for n in range(11)]
    assert statuses == [200] * 10 + [429]


def test_behind_a_trusted_proxy_one_clients_failures_do_not_limit_another(db, settings, user):
    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    client = Client()
    statuses = [_log_in(client, f"guess{n}@example.org", "wrong",
                        f"192.0.2.{n}, {CLIENT}").status_code for n in range(11)]
    assert statuses == [200] * 10 + [429]

    assert _log_in(Client(), user.email, PASSWORD, "198.51.100.4").status_code == 302


# -- the audit trail -----------------------------------------------------------------------------

def test_the_audit_trail_records_the_client_behind_a_trusted_proxy(client_for, settings, user):
    from portal.models import AuditEntry

    settings.TRUSTED_PROXIES = ["127.0.0.1"]
    response = client_for(user).post(reverse("profile"), {"first_name": "Ada",
                                                          "last_name": "Lovelace"},
                                     HTTP_X_FORWARDED_FOR=f"192.0.2.1, {CLIENT}")
    assert response.status_code in (200, 302)
    assert AuditEntry.objects.filter(actor=user).latest("pk").ip == CLIENT


# -- the ASGI application ------------------------------------------------------------------------

def _scope_seen_by_the_app(peer: str, forwarded: bytes | None, kind: str = "http") -> dict:
    seen: dict = {}

    async def app(scope, receive, send):
        seen.update(scope)

    headers = [(b"host", b"portal.example.ch")]
    if forwarded is not None:
        headers.append((b"x-forwarded-for", forwarded))
    scope = {"type": kind, "client": (peer, 40000), "headers": headers, "path": "/"}
    asyncio.run(TrustedProxyMiddleware(app)(scope, None, None))
    return seen


@pytest.mark.parametrize("kind", ["http", "websocket"])
def test_the_asgi_application_sees_the_client_behind_a_trusted_proxy(one_proxy, kind):
    seen = _scope_seen_by_the_app(PROXY, f"1.1.1.1, {CLIENT}".encode(), kind)
    assert seen["client"] == (CLIENT, 0)


def test_the_asgi_application_sees_the_peer_without_a_trusted_proxy(no_proxy):
    seen = _scope_seen_by_the_app(PROXY, CLIENT.encode())
    assert seen["client"] == (PROXY, 40000)


def test_a_forwarded_for_split_over_several_headers_is_read_as_one(one_proxy):
    seen: dict = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": "http", "client": (PROXY, 1), "headers": [
        (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", CLIENT.encode())]}
    asyncio.run(TrustedProxyMiddleware(app)(scope, None, None))
    assert seen["client"] == (CLIENT, 0)
