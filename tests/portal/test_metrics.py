"""/metrics: who may read it, and that what happens in the portal shows in it.

The endpoint is ASGI in front of Django, so these tests call the real ASGI application; what
the metrics count (requests, sign-in failures, sockets, operations, the ledger, the queue) is
caused the way a user or a worker causes it.
"""

from __future__ import annotations

import pytest
from asgiref.testing import ApplicationCommunicator
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client
from django.utils import timezone
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from billing import metering
from clusters import operations
from clusters.models import Operation
from portal import metrics
from portal.audit import Actor
from portal.metrics import exposition
from portal.metrics.celery import PRIORITY_SEPARATOR, queue_depth
from tests.clusters.ui import make_cluster

TOKEN = "metrics-test-token-0123456789abcdef"


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def asgi_get(path: str, *, token: str | None = None, method: str = "GET",
                   app=None) -> tuple[int, dict[bytes, bytes], bytes]:
    if app is None:
        from portal.asgi import application as app
    headers = [(b"host", b"10.1.2.3:8000")]  # a pod's address: no ALLOWED_HOSTS entry
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    communicator = ApplicationCommunicator(app, {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method,
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "headers": headers, "client": ("10.9.8.7", 40000), "server": ("10.1.2.3", 8000)})
    await communicator.send_input({"type": "http.request", "body": b""})
    start = await communicator.receive_output(10)
    body = b""
    while True:
        message = await communicator.receive_output(10)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return start["status"], dict(start["headers"]), body


def families(text: str) -> dict[str, object]:
    return {family.name: family for family in text_string_to_metric_families(text)}


# --------------------------------------------------------------------------- access


@pytest.mark.asyncio
async def test_metrics_are_not_found_while_no_token_is_configured(settings):
    settings.METRICS_TOKEN = ""
    status, _headers, body = await asgi_get("/metrics", token="anything")
    assert status == 404 and b"portal_" not in body


@pytest.mark.asyncio
@pytest.mark.parametrize("token", [None, "wrong", TOKEN[:-1], TOKEN + "x", ""])
async def test_metrics_refuse_a_missing_or_wrong_token(settings, token):
    settings.METRICS_TOKEN = TOKEN
    status, headers, body = await asgi_get("/metrics", token=token)
    assert status == 401
    assert headers[b"www-authenticate"].startswith(b"Bearer")
    assert b"portal_" not in body


@pytest.mark.asyncio
async def test_metrics_refuse_a_write(settings):
    settings.METRICS_TOKEN = TOKEN
    status, headers, _body = await asgi_get("/metrics", token=TOKEN, method="POST")
    assert status == 405 and headers[b"allow"] == b"GET, HEAD"


def test_the_token_is_compared_whole():
    from django.test import override_settings

    with override_settings(METRICS_TOKEN=TOKEN):
        assert exposition.authorization_status(f"Bearer {TOKEN}") == 200
        assert exposition.authorization_status(f"bearer  {TOKEN}") == 401
        assert exposition.authorization_status(TOKEN) == 401
        assert exposition.authorization_status("Bearer é") == 401
    with override_settings(METRICS_TOKEN=""):
        assert exposition.authorization_status(None) == 404
        assert exposition.authorization_status(None, token_required=False) == 200


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_web_role_serves_the_prometheus_text_with_the_service_values(settings):
    settings.METRICS_TOKEN = TOKEN
    status, headers, body = await asgi_get("/metrics", token=TOKEN)
    assert status == 200, body
    assert headers[b"content-type"].startswith(b"text/plain; version=0.0.4")
    found = families(body.decode())
    for name in ("portal_http_requests", "portal_operations_in_flight",
                 "portal_celery_queue_length", "portal_metering_open_segments",
                 "portal_watcher_heartbeat_age_seconds", "portal_scrape_collector_up",
                 "portal_webhook_deliveries"):
        assert name in found, name
    up = {s.labels["collector"]: s.value for s in found["portal_scrape_collector_up"].samples}
    assert up == {"celery": 1, "metering": 1, "operations": 1, "watcher": 1}


@pytest.mark.asyncio
async def test_the_metrics_path_is_not_a_page(settings):
    """Everything else goes on to Django as before."""
    settings.METRICS_TOKEN = TOKEN
    status, _headers, _body = await asgi_get("/metricsx", token=TOKEN)
    assert status != 200 or b"portal_http" not in _body


# --------------------------------------------------------------------------- what is counted


def test_requests_are_counted_by_route_name_method_and_status(client, db):
    labels = {"route": "healthz", "method": "GET", "status": "200"}
    before = value("portal_http_requests_total", **labels)
    timed = value("portal_http_request_duration_seconds_count", route="healthz", method="GET")
    client.get("/healthz")
    client.get("/healthz")
    assert value("portal_http_requests_total", **labels) == before + 2
    assert value("portal_http_request_duration_seconds_count", route="healthz",
                 method="GET") == timed + 2


def test_unknown_paths_share_one_route_label(client, db):
    labels = {"route": "unmatched", "method": "GET", "status": "404"}
    before = value("portal_http_requests_total", **labels)
    client.get("/no-such-page-1/")
    client.get("/no-such-page-2/")
    assert value("portal_http_requests_total", **labels) == before + 2


def test_a_failed_sign_in_is_counted(client, user):
    before = value("portal_login_failures_total")
    client.post("/accounts/login/", {"login": user.email, "password": "not-the-password"})
    assert value("portal_login_failures_total") == before + 1


def test_throttled_api_requests_are_counted(settings, db):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "api_anon": "1/min"}}
    client = Client()
    statuses = [client.get("/api/schema/").status_code for _ in range(3)]
    assert 429 in statuses
    route = "api:schema"
    assert value("portal_throttled_requests_total", route=route) >= statuses.count(429)


def test_finished_operations_are_counted_with_their_duration(owner, tenant,
                                                              django_capture_on_commit_callbacks):
    cluster = make_cluster(tenant)
    labels = {"kind": "scale", "state": "cancelled"}
    before = value("portal_operations_finished_total", **labels)
    durations = value("portal_operation_duration_seconds_count", **labels)
    with django_capture_on_commit_callbacks(execute=True):
        operation = operations.start(Actor(user=owner), cluster, Operation.Kind.SCALE,
                                     params={}, desired_spec={}, summary="Scale requested.")
        operations.cancel(operation, "changed my mind", actor_label="owner")
    assert value("portal_operations_finished_total", **labels) == before + 1
    assert value("portal_operation_duration_seconds_count", **labels) == durations + 1


def test_a_rolled_back_finish_is_not_counted(owner, tenant, django_capture_on_commit_callbacks):
    cluster = make_cluster(tenant)
    labels = {"kind": "scale", "state": "cancelled"}
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        operation = operations.start(Actor(user=owner), cluster, Operation.Kind.SCALE,
                                     params={}, desired_spec={}, summary="Scale requested.")
        before = value("portal_operations_finished_total", **labels)
        operations.cancel(operation, "changed my mind", actor_label="owner")
    assert callbacks  # delivered only on commit, which never came
    assert value("portal_operations_finished_total", **labels) == before


def test_operations_in_flight_are_read_from_the_database(owner, tenant):
    from clusters.metrics import operations_in_flight

    actor = Actor(user=owner)
    queued = operations.start(actor, make_cluster(tenant, name="one"), Operation.Kind.SCALE,
                              params={}, desired_spec={}, summary="s")
    running = operations.start(actor, make_cluster(tenant, name="two"), Operation.Kind.SCALE,
                               params={}, desired_spec={}, summary="s")
    later = operations.start(actor, make_cluster(tenant, name="three"), Operation.Kind.SCALE,
                             params={}, desired_spec={}, summary="s")
    assert operations.claim(running.pk) and operations.claim(later.pk)
    later.refresh_from_db()
    operations.back_off(later, countdown=30, detail="the platform is busy")
    in_flight, oldest = operations_in_flight()
    counts = {s.labels["state"]: s.value for s in in_flight.samples}
    assert counts == {"queued": 1, "running": 1, "scheduled": 1}
    assert queued.created_at <= timezone.now()
    assert oldest.samples[0].value >= 0


def test_open_segments_and_metering_runs(tenant):
    from billing.metrics import ledger_state
    from billing.models import UsageSegment

    runs = value("portal_metering_runs_total", trigger="beat")
    metering.reconcile_ledger(trigger="beat")
    assert value("portal_metering_runs_total", trigger="beat") == runs + 1
    open_segments, age = ledger_state()
    assert open_segments.samples[0].value == UsageSegment.objects.filter(end__isnull=True).count()
    assert age.samples[0].value >= 0


def test_the_queue_depth_is_read_from_the_broker(settings):
    import redis

    settings.CELERY_TASK_DEFAULT_QUEUE = "metrics-test-queue"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    try:
        client.rpush("metrics-test-queue", "a", "b")
        client.rpush(f"metrics-test-queue{PRIORITY_SEPARATOR}6", "c")
        length, unacked = queue_depth()
        assert {s.labels["queue"]: s.value for s in length.samples} == {"metrics-test-queue": 3}
        assert unacked.samples[0].value >= 0
    finally:
        client.delete("metrics-test-queue", f"metrics-test-queue{PRIORITY_SEPARATOR}6")


def test_webhook_deliveries_are_counted_by_result():
    before = value("portal_webhook_deliveries_total", result="success")
    errors = value("portal_webhook_deliveries_total", result="error")
    metrics.webhook_delivered("success", 0.12)
    metrics.webhook_delivered("something else")
    assert value("portal_webhook_deliveries_total", result="success") == before + 1
    assert value("portal_webhook_deliveries_total", result="error") == errors + 1
    assert value("portal_webhook_delivery_duration_seconds_count", result="success") >= 1


def test_a_collector_that_fails_is_reported_and_the_others_still_are():
    def broken():
        raise RuntimeError("redis is down")

    metrics.register_collector("zz-broken", broken)
    try:
        found = families(exposition.generate_latest(exposition._service_registry).decode())
    finally:
        metrics._collectors.pop("zz-broken")
    up = {s.labels["collector"]: s.value for s in found["portal_scrape_collector_up"].samples}
    assert up["zz-broken"] == 0 and up["celery"] == 1


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_open_sockets_and_pushes_are_counted(settings):
    from clusters.web.consumers import ClusterDetailConsumer
    from portal.asgi import application
    from tests.factories import MembershipFactory, TenantFactory

    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    tenant = await database_sync_to_async(TenantFactory)(slug="sockets")
    membership = await database_sync_to_async(MembershipFactory)(tenant=tenant)
    await database_sync_to_async(make_cluster)(tenant, name="web")
    client = Client()
    await database_sync_to_async(client.force_login)(membership.user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    label = ClusterDetailConsumer.metrics_name
    opened = value("portal_websocket_connections", consumer=label)
    pushed = value("portal_websocket_pushes_total", consumer=label)
    socket = WebsocketCommunicator(application, "/ws/t/sockets/clusters/web/",
                                   headers=[(b"origin", b"http://testserver"),
                                            (b"host", b"testserver"), (b"cookie", cookie)])
    connected, _code = await socket.connect()
    assert connected
    await socket.receive_from(10)  # the snapshot
    assert value("portal_websocket_connections", consumer=label) == opened + 1
    assert value("portal_websocket_pushes_total", consumer=label) >= pushed + 1
    await socket.disconnect()
    assert value("portal_websocket_connections", consumer=label) == opened


def test_the_watcher_counts_what_it_applies():
    from clusters.watcher import Stream, Watcher, _Batch
    from cozystack.gateway import APPS, WatchEvent

    stream = Stream("clusters", APPS, lambda kind, obj: True, lambda items, gw: 0)
    batch = _Batch([WatchEvent("MODIFIED", {}), WatchEvent("BOOKMARK", {})])
    batch.received_at = 0.0
    before = value("portal_watcher_events_total", stream="clusters")
    applied = value("portal_watcher_events_applied_total", stream="clusters")
    Watcher._measure(stream, batch, 1)
    assert value("portal_watcher_events_total", stream="clusters") == before + 1
    assert value("portal_watcher_events_applied_total", stream="clusters") == applied + 1
    assert value("portal_watcher_last_event_timestamp_seconds", stream="clusters") > 0
