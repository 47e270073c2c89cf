"""The embedded default boots: SQLite, no Redis, nothing configured, behind a real ASGI server."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# Variables that would switch a piece away from the embedded default, or leak test settings.
NOT_INHERITED = {"DATABASE_URL", "REDIS_URL", "CACHE_REDIS_URL", "CHANNELS_REDIS_URL",
                 "SECRET_KEY", "KUBECONFIG", "DJANGO_SETTINGS_MODULE", "EMAIL_BACKEND",
                 "PORTAL_VAR_DIR"}

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Portal:
    url: str
    var_dir: Path
    log: Path
    process: subprocess.Popen

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, f"manage.py {' '.join(args)} failed:\n{result.stderr[-4000:]}"
    return result


def _wait_until_serving(portal: Portal, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if portal.process.poll() is not None:
            pytest.fail(f"the ASGI server exited with {portal.process.returncode}:\n"
                        f"{portal.log_tail()}")
        try:
            with urllib.request.urlopen(f"{portal.url}/healthz", timeout=2):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.2)  # polling with a deadline, not synchronisation
    pytest.fail(f"the portal did not answer /healthz within {deadline_s} s:\n{portal.log_tail()}")


@pytest.fixture(scope="module")
def embedded_portal(tmp_path_factory) -> Iterator[Portal]:
    var_dir = tmp_path_factory.mktemp("embedded-var")
    env = {k: v for k, v in os.environ.items()
           if k not in NOT_INHERITED and not k.startswith("PYTEST_")}
    env.update({"DEBUG": "true", "PORTAL_VAR_DIR": str(var_dir),
                "DJANGO_SETTINGS_MODULE": "portal.settings", "PYTHONUNBUFFERED": "1"})
    _manage(env, "migrate", "--no-input", "-v0")
    seeded = _manage(env, "seed_demo")
    assert "demo@example.org" in seeded.stdout

    port = free_port()
    log = var_dir / "asgi.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "portal.asgi:application", "--host", "127.0.0.1",
             "--port", str(port), "--no-access-log"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    portal = Portal(url=f"http://127.0.0.1:{port}", var_dir=var_dir, log=log, process=process)
    try:
        _wait_until_serving(portal)
        yield portal
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)


def test_the_embedded_default_keeps_its_state_in_the_var_directory(embedded_portal):
    assert (embedded_portal.var_dir / "portal.sqlite3").stat().st_size > 0
    assert (embedded_portal.var_dir / "secret_key").exists()


def test_healthz_answers(embedded_portal):
    with urllib.request.urlopen(f"{embedded_portal.url}/healthz", timeout=5) as response:
        assert response.status == 200
        assert json.load(response) == {"status": "ok"}


def test_readyz_reports_the_sqlite_database_and_no_redis(embedded_portal):
    try:
        response = urllib.request.urlopen(f"{embedded_portal.url}/readyz", timeout=15)
    except urllib.error.HTTPError as error:  # 503 while no platform answers: still a report
        response = error
    checks = json.load(response)["checks"]
    assert checks["database"]["ok"] is True
    assert "redis" not in checks


def test_the_login_page_is_served_with_its_assets(embedded_portal):
    with urllib.request.urlopen(f"{embedded_portal.url}/accounts/login/", timeout=5) as response:
        assert response.status == 200
        page = response.read().decode()
    assert 'name="password"' in page
    stylesheet = re.search(r'href="(/static/[^"]+tabler[^"]*\.css)"', page)
    assert stylesheet, "the page links Tabler's CSS from the portal itself"
    with urllib.request.urlopen(embedded_portal.url + stylesheet.group(1), timeout=5) as css:
        assert css.status == 200


def test_the_demo_owner_signs_in_and_the_home_page_lists_the_demo_tenant(embedded_portal):
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login_url = f"{embedded_portal.url}/accounts/login/"
    with browser.open(login_url, timeout=5) as response:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                          response.read().decode()).group(1)
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token, "login": "demo@example.org",
                                   "password": "demo-portal-2026"}).encode()
    request = urllib.request.Request(login_url, data=form, headers={"Referer": login_url})

    with browser.open(request, timeout=10) as response:
        assert response.status == 200
        assert urllib.parse.urlsplit(response.url).path == "/"
        home = response.read().decode()

    assert "Your tenants" in home
    assert "tenant-demo" in home
