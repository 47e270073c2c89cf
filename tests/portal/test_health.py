"""/healthz says the process answers; /readyz checks what the portal depends on."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from cozystack.gateway import reset_gateway
from cozystack.simulator.kubeconfig import kubeconfig_yaml
from portal import health


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def platform_at(settings) -> Iterator:
    """Point the portal's gateway at the platform a kubeconfig names, for one test."""

    def point(kubeconfig: Path) -> None:
        settings.PLATFORM_KUBECONFIG = str(kubeconfig)
        settings.PLATFORM_IN_CLUSTER = False
        settings.PLATFORM_REQUEST_TIMEOUT = 2
        reset_gateway()

    yield point
    reset_gateway()


def test_healthz_answers_ok_without_touching_dependencies(client, db, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_reports_the_database_ok(client, db):
    checks = client.get("/readyz").json()["checks"]
    assert checks["database"]["ok"] is True
    assert isinstance(checks["database"]["ms"], float)


def test_readyz_reports_redis_ok(client, db):
    checks = client.get("/readyz").json()["checks"]
    assert checks["redis"] == {"ok": True, "ms": checks["redis"]["ms"]}


def test_readyz_is_503_when_redis_is_down(client, db, settings):
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"
    response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["redis"]["ok"] is False
    assert body["checks"]["redis"]["error"]


def test_readyz_leaves_redis_out_when_none_is_configured(client, db, settings):
    settings.REDIS_URL = ""
    assert "redis" not in client.get("/readyz").json()["checks"]


def test_readyz_is_503_when_the_management_cluster_is_down(client, db, platform_at, tmp_path):
    # A kubeconfig like the simulator's, for a platform that is down: nothing listens there.
    kubeconfig = tmp_path / "down.kubeconfig"
    kubeconfig.write_text(kubeconfig_yaml("platform", f"http://127.0.0.1:{free_port()}",
                                          "portal", "token"))
    platform_at(kubeconfig)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    platform = body["checks"]["management_cluster"]
    assert platform["ok"] is False
    assert platform["error"].startswith("PlatformUnavailable: The platform is unreachable")
    assert body["checks"]["database"]["ok"] is True


def test_readyz_is_503_when_the_kubeconfig_is_missing(client, db, platform_at, tmp_path):
    platform_at(tmp_path / "absent.kubeconfig")

    response = client.get("/readyz")

    assert response.status_code == 503
    platform = response.json()["checks"]["management_cluster"]
    assert platform["ok"] is False
    assert "KUBECONFIG" in platform["error"]


def test_readyz_reports_the_management_cluster_ok_when_it_answers(
        client, db, platform_at, simulated_platform):
    platform_at(simulated_platform.kubeconfig_path)

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"

    assert body["checks"]["management_cluster"]["ok"] is True, body
    assert body["checks"]["database"]["ok"] is True


def test_readyz_reports_the_foundations_checks_then_those_the_apps_registered(
        client, db, platform_at, simulated_platform, monkeypatch):
    platform_at(simulated_platform.kubeconfig_path)
    monkeypatch.setattr(health, "_REGISTERED", dict(health._REGISTERED))
    health.register_check("mail", lambda: None)

    checks = client.get("/readyz").json()["checks"]

    assert list(checks) == ["database", "redis", "management_cluster", "mail"]
    assert checks["mail"]["ok"] is True


def test_readyz_is_never_cached(client, db):
    assert "no-cache" in client.get("/readyz")["Cache-Control"]
