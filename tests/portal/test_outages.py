"""Outages of Redis and PostgreSQL, seen from a request: never a 500.

Redis refusing (the cache, the session store, the channel layer): reads keep working, the
session is read from its database row, API limits fall back to a count per process, pushes
are skipped. PostgreSQL refusing: a 503, as a page that reloads itself or as a problem, with
``Retry-After``; ``/healthz`` keeps answering. The servers refuse for real: the settings point
at a port nothing listens on, or at a Redis server of the test's own that it stops.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.models import Session
from django.core.cache import caches
from django.db import connections
from django.test import Client

from clusters import schema
from clusters.web import broadcast
from cozystack.gateway import reset_gateway
from portal.api import throttling
from portal.permissions import Role
from portal.pushes import group_send
from portal.sessions import SessionStore
from staff.views import notify_staff
from tests.api.factories import make_cluster, make_operation, make_token
from tests.factories import MembershipFactory, TenantFactory
from tests.fixtures.processes import eventually, free_port


def _refusing_cache(**extra) -> dict:
    """The configured cache (its backend and options), on a port where nothing listens."""
    return {"default": {**django_settings.CACHES["default"],
                        "LOCATION": f"redis://127.0.0.1:{free_port()}/2", **extra}}


def _refusing_layer() -> dict:
    layer = django_settings.CHANNEL_LAYERS["default"]
    host = {**layer["CONFIG"]["hosts"][0], "address": f"redis://127.0.0.1:{free_port()}/1"}
    return {"default": {**layer, "CONFIG": {**layer["CONFIG"], "hosts": [host]}}}


@pytest.fixture
def no_platform(settings, tmp_path):
    """No management cluster: the pages use the bundled schema, as when it is unreachable."""
    settings.PLATFORM_KUBECONFIG = str(tmp_path / "no-platform.kubeconfig")
    reset_gateway()
    yield
    reset_gateway()


@pytest.fixture
def point_caches(settings):
    """``point_caches(config)``: use ``config`` as CACHES for the test; the test's own cache
    namespace comes back before it is cleaned up (``isolated_cache``)."""
    original = settings.CACHES

    def point(config: dict) -> None:
        settings.CACHES = config

    yield point
    settings.CACHES = original


@pytest.fixture
def redis_refusing(settings, point_caches, no_platform):
    point_caches(_refusing_cache())
    settings.CHANNEL_LAYERS = _refusing_layer()
    throttling.FALLBACK_CACHE.clear()
    schema.forget()
    yield
    throttling.FALLBACK_CACHE.clear()


@pytest.fixture
def world(db):
    tenant = TenantFactory(slug="acme")
    owner = MembershipFactory(tenant=tenant, role=Role.OWNER).user
    cluster = make_cluster(tenant, "prod-eu")
    make_operation(cluster)
    return {"tenant": tenant, "owner": owner, "cluster": cluster}


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


# --------------------------------------------------------------------------- Redis refusing


def test_signed_in_pages_are_read_while_the_cache_and_session_store_refuse(world,
                                                                           redis_refusing):
    client = _signed_in(world["owner"])  # the session is written to its row only

    for path in ("/", "/t/acme/", "/t/acme/clusters/", "/t/acme/clusters/prod-eu/"):
        response = client.get(path)
        assert response.status_code == 200, path
    assert b"prod-eu" in client.get("/t/acme/clusters/").content


def test_signing_out_while_the_session_store_refuses_ends_the_session(world, redis_refusing):
    client = _signed_in(world["owner"])
    key = client.cookies["sessionid"].value
    assert client.get("/t/acme/").status_code == 200

    client.post("/accounts/logout/")

    assert not Session.objects.filter(session_key=key).exists()
    assert client.get("/t/acme/").status_code == 302  # to the sign-in page


def test_the_api_lists_while_the_cache_refuses(world, redis_refusing, api_token):
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token}")

    response = client.get("/api/v1/tenants/acme/clusters/")

    assert response.status_code == 200
    assert [item["name"] for item in response.json()["results"]] == ["prod-eu"]


@pytest.fixture
def api_token(world):
    return make_token(world["owner"])


def test_api_limits_fall_back_to_a_count_per_process_while_the_cache_refuses(
        world, redis_refusing, api_token, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api_token": "3/min"}}
    client = Client(HTTP_AUTHORIZATION=f"Bearer {api_token}")

    statuses = [client.get("/api/v1/tenants/acme/clusters/").status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    refused = client.get("/api/v1/tenants/acme/clusters/")
    assert refused["Content-Type"] == "application/problem+json"
    assert int(refused["Retry-After"]) > 0


def test_pushes_are_skipped_and_never_raise_while_the_channel_layer_refuses(world,
                                                                             redis_refusing):
    assert group_send("tenant.0", {"type": "cluster.row"}) is False
    broadcast.cluster_changed(world["cluster"].pk)  # what a committed change calls
    notify_staff()
    assert group_send("tenant.0", {"type": "cluster.row"}) is False  # skipped at once


def test_the_session_engine_reads_its_row_with_a_cache_that_raises(db, point_caches):
    point_caches(_refusing_cache(BACKEND="portal.cache.RedisCache"))  # no fallback
    session = SessionStore()
    session["seen"] = 1
    session.save()

    again = SessionStore(session.session_key)

    assert again["seen"] == 1
    assert again.exists(session.session_key)
    again.delete()
    assert not Session.objects.filter(session_key=session.session_key).exists()


# --------------------------------------------------------------------------- a Redis that restarts


def test_what_was_deleted_while_redis_was_out_of_reach_is_deleted_when_it_answers(
        own_redis, point_caches):
    point_caches({"default": {**django_settings.CACHES["default"],
                              "LOCATION": f"redis://127.0.0.1:{own_redis.port}/0"}})
    backend = caches["default"]
    backend.set("announcement", "old news")
    stored = next(iter(own_redis.client().keys("*announcement")))

    own_redis.stop()
    assert backend.delete("announcement") is False  # refused: not deleted, and no error
    assert backend.get("announcement") is None  # a miss
    assert not backend.reachable
    own_redis.start()
    assert own_redis.client().get(stored) is not None  # the restart brought the entry back

    eventually(lambda: backend.get("announcement", "missing") == "missing"
               and backend.reachable, timeout=15)
    assert own_redis.client().get(stored) is None


# --------------------------------------------------------------------------- PostgreSQL refusing


@contextmanager
def database_refusing() -> Iterator[None]:
    """Every new connection of the test's database alias goes to a port nothing listens on."""
    connection = connections["default"]
    saved = {key: connection.settings_dict[key] for key in ("HOST", "PORT")}
    connection.close()
    connection.settings_dict.update({"HOST": "127.0.0.1", "PORT": str(free_port())})
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.update(saved)


pg_down = pytest.mark.django_db(transaction=True)


def _assert_unavailable_page(response, language: str = "en") -> None:
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert int(response["Retry-After"]) > 0
    html = response.content.decode()
    assert f'<meta http-equiv="refresh" content="{response["Retry-After"]}">' in html
    assert "<script" not in html
    assert ("Briefly unavailable" if language == "en" else "Brièvement indisponible") in html


def _assert_unavailable_problem(response) -> None:
    assert response.status_code == 503
    assert response["Content-Type"] == "application/problem+json"
    assert int(response["Retry-After"]) > 0
    body = response.json()
    assert body["type"] == "urn:kube-portal:problem:service-unavailable"
    assert body["status"] == 503
    assert body["detail"]


@pg_down
def test_a_signed_in_page_is_a_503_that_retries_by_itself_while_the_database_refuses(world):
    client = _signed_in(world["owner"])
    french = _signed_in(world["owner"])
    french.cookies["django_language"] = "fr"

    with database_refusing():
        response = client.get("/t/acme/clusters/")
        in_french = french.get("/t/acme/clusters/")

    _assert_unavailable_page(response)
    _assert_unavailable_page(in_french, "fr")


@pg_down
def test_a_page_whose_view_needs_the_database_is_a_503_while_it_refuses(world):
    with database_refusing():
        response = Client().post("/accounts/login/", {"login": world["owner"].email,
                                                      "password": "whatever-it-is"})
    _assert_unavailable_page(response)


@pg_down
def test_the_api_answers_a_problem_with_retry_after_while_the_database_refuses(world):
    token = make_token(world["owner"])
    session = _signed_in(world["owner"])

    with database_refusing():
        with_token = Client(HTTP_AUTHORIZATION=f"Bearer {token}").get(
            "/api/v1/tenants/acme/clusters/")
        with_session = session.get("/api/v1/tenants/acme/clusters/")

    _assert_unavailable_problem(with_token)
    _assert_unavailable_problem(with_session)


@pg_down
def test_healthz_answers_and_readyz_names_the_database_while_it_refuses(world):
    session = _signed_in(world["owner"])
    with database_refusing():
        health = Client().get("/healthz")
        health_with_session = session.get("/healthz")
        ready = Client().get("/readyz")

    assert health.status_code == 200
    assert health_with_session.status_code == 200
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"]["ok"] is False

