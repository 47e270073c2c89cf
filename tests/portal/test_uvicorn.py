"""The portal under a real uvicorn, started the way `run_portal` starts the web role: no log
line carries a query string (tokens and codes travel in them), and the client's address comes
from TRUSTED_PROXIES."""

from __future__ import annotations

import base64
import http.client
import json
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from clusters.management.commands.run_portal import web_command
from tests.fixtures.processes import ROOT, _stop, eventually, free_port, wait_for_port

SECRETS = ("kp_secret_in_the_query", "ABCD-EFGH", "kp_websocket_secret")


@dataclass
class Served:
    url: str
    log: Path

    def records(self) -> list[dict]:
        return [json.loads(line) for line in self.log.read_text().splitlines()
                if line.startswith("{")]

    def record(self, logger: str, fragment: str) -> dict | None:
        return next((r for r in self.records()
                     if r["logger"] == logger and fragment in r["event"]), None)


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[Served]:
    port = free_port()
    log = tmp_path_factory.mktemp("uvicorn") / "web.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env.update({"DJANGO_SETTINGS_MODULE": "portal.settings_test", "PYTHONUNBUFFERED": "1",
                "LOG_LEVEL": "INFO", "TRUSTED_PROXIES": "127.0.0.1"})
    with log.open("w") as out:
        # A refused WebSocket keeps a task in uvicorn until it is cancelled: stop within 1 s.
        command = [*web_command("127.0.0.1", port), "--timeout-graceful-shutdown", "1"]
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        wait_for_port(port)
        yield Served(url=f"127.0.0.1:{port}", log=log)
    finally:
        _stop(proc)


def _get(served: Served, target: str, forwarded: str) -> int:
    request = urllib.request.Request(f"http://{served.url}{target}",
                                     headers={"X-Forwarded-For": forwarded})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def _websocket_handshake(served: Served, target: str) -> int:
    connection = http.client.HTTPConnection(served.url, timeout=10)
    try:
        connection.request("GET", target, headers={
            "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode()})
        return connection.getresponse().status
    finally:
        connection.close()


def test_no_query_string_reaches_the_log(served):
    status = _get(served, f"/api/v1/me/?code={SECRETS[1]}&token={SECRETS[0]}", "203.0.113.9")
    assert status == 401
    assert _websocket_handshake(served, f"/ws/staff/?token={SECRETS[2]}") == 403

    access = eventually(lambda: served.record("uvicorn.access", '"GET /api/v1/me/ HTTP/1.1" 401'))
    websocket = eventually(lambda: served.record("uvicorn.error", '"WebSocket /ws/staff/"'))
    request = eventually(lambda: served.record("portal.request", "http.request"))

    assert request["path"] == "/api/v1/me/"
    assert access and websocket
    text = served.log.read_text()
    assert not [secret for secret in SECRETS if secret in text], text


def test_uvicorn_names_the_client_behind_a_trusted_proxy(served):
    assert _get(served, "/api/v1/me/?from=proxy", "192.0.2.1, 198.51.100.23") == 401

    access = eventually(lambda: served.record("uvicorn.access", "198.51.100.23"))

    assert access["event"].startswith("198.51.100.23:0 - ")
