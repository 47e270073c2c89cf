"""Metrics across real processes: two uvicorn workers and a Celery worker share one metrics
directory (``PROMETHEUS_MULTIPROC_DIR``), as the roles of one host do, and one scrape of the
web role's /metrics adds them all up. The worker also answers on its own port, as it does
when it runs in a pod of its own.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from clusters.management.commands.run_portal import web_command
from tests.deploy.documents import documented_metric_names, present_names
from tests.fixtures.processes import _start, _stop, eventually, free_port, wait_for_port

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
TOKEN = "multiprocess-metrics-token-0123456789"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _samples(text: str) -> list:
    return [s for family in text_string_to_metric_families(text) for s in family.samples]


@pytest.fixture(scope="module")
def roles(process_env, tmp_path_factory):
    """Two web workers and a Celery worker on a queue of this test's own, one directory."""
    from portal.celery import app

    metrics_dir = tmp_path_factory.mktemp("metrics")
    queue = f"metrics-{os.getpid()}"
    web_port, worker_port = free_port(), free_port()
    env = {**process_env, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": TOKEN,
           "API_RATE_ANON": "1/min"}
    worker = _start([sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=solo",
                     "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle",
                     "--without-heartbeat", "-l", "warning"],
                    {**env, "METRICS_PORT": str(worker_port)}, "metrics-worker.log")
    web = _start([*web_command("127.0.0.1", web_port), "--workers", "2", "--log-level",
                  "warning"], env, "metrics-web.log")
    try:
        wait_for_port(web_port)
        wait_for_port(worker_port)
        eventually(lambda: any(queue in name for reply in app.control.ping(timeout=0.5) or []
                               for name in reply), timeout=60, message="worker did not answer")
        yield {"web": f"http://127.0.0.1:{web_port}", "worker": f"http://127.0.0.1:{worker_port}",
               "queue": queue}
    finally:
        _stop(web)
        _stop(worker)


def test_one_scrape_adds_up_two_web_workers_and_a_celery_worker(roles):
    from portal.celery import app

    for _ in range(12):
        assert _get(f"{roles['web']}/healthz")[0] == 200
    throttled = [_get(f"{roles['web']}/api/schema/")[0] for _ in range(3)].count(429)
    assert throttled >= 1
    # A task that raises in the worker (called with arguments it does not take).
    app.send_task("billing.reconcile_ledger", args=[1, 2, 3], queue=roles["queue"])

    def scrape() -> str | None:
        status, text = _get(f"{roles['web']}/metrics", TOKEN)
        assert status == 200, text
        failures = [s for s in _samples(text) if s.name == "portal_celery_task_failures_total"
                    and s.labels.get("task") == "billing.reconcile_ledger"]
        return text if failures and failures[0].value == 1 else None

    text = eventually(scrape, timeout=60, message="the worker's failure never showed")
    samples = _samples(text)
    processes = [s for s in samples if s.name == "portal_process_start_time_seconds"]
    web_pids = {s.labels["pid"] for s in processes if s.labels["role"] == "web"}
    worker_pids = {s.labels["pid"] for s in processes if s.labels["role"] == "worker"}
    assert len(web_pids) == 2 and len(worker_pids) == 1, processes
    healthz = sum(s.value for s in samples if s.name == "portal_http_requests_total"
                  and s.labels["route"] == "healthz")
    assert healthz == 12
    assert sum(s.value for s in samples
               if s.name == "portal_throttled_requests_total") == throttled
    missing = documented_metric_names() - present_names(text)
    assert not missing, f"documented but not exposed: {sorted(missing)}"


def test_the_worker_serves_its_own_metrics_on_its_port_with_the_token(roles):
    assert _get(f"{roles['worker']}/metrics")[0] == 401
    assert _get(f"{roles['worker']}/metrics", "wrong")[0] == 401
    status, text = _get(f"{roles['worker']}/metrics", TOKEN)
    assert status == 200
    roles_seen = {s.labels["role"] for s in _samples(text)
                  if s.name == "portal_process_start_time_seconds"}
    assert "worker" in roles_seen  # the directory's processes, without service-wide values
    assert "portal_celery_task_failures_total" in text
    assert "portal_operations_in_flight" not in text
