"""The nginx site in deploy/nginx passes ``nginx -t`` (with a throwaway certificate and the
site's paths moved into a temporary directory), and does what the guide says it does."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.documents import DEPLOY

SITE = DEPLOY / "nginx" / "portal.conf"
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "fullchain.pem", directory / "privkey.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=portal.example.ch", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


def _test_config(tmp_path: Path) -> Path:
    cert, key = _certificate(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    site = SITE.read_text()
    site = site.replace("/etc/ssl/portal/fullchain.pem", str(cert))
    site = site.replace("/etc/ssl/portal/privkey.pem", str(key))
    site = site.replace("/var/log/nginx/", f"{logs}/")
    (tmp_path / "portal.conf").write_text(site)
    mime = Path("/etc/nginx/mime.types")
    main = tmp_path / "nginx.conf"
    main.write_text(f"""
pid {tmp_path}/nginx.pid;
error_log {logs}/error.log;
events {{ worker_connections 64; }}
http {{
    {"include " + str(mime) + ";" if mime.exists() else ""}
    access_log {logs}/access.log;
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/portal.conf;
}}
""")
    return main


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test installs it)")
def test_the_site_passes_nginx_t(tmp_path):
    main = _test_config(tmp_path)
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e",
                             str(tmp_path / "logs" / "startup.log")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed (make test installs it)")
def test_a_broken_site_fails_nginx_t(tmp_path):
    main = _test_config(tmp_path)
    site = tmp_path / "portal.conf"
    site.write_text(site.read_text().replace("proxy_pass http://portal_web;",
                                             "proxy_pass http://portal_web", 1))
    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(main), "-e",
                             str(tmp_path / "logs" / "startup.log")],
                            capture_output=True, text=True)
    assert result.returncode != 0


def test_the_site_terminates_tls_upgrades_websockets_and_serves_static_files():
    site = SITE.read_text()
    assert re.search(r"listen 443 ssl", site) and "return 301 https://" in site
    websocket = site.split("location /ws/", 1)[1].split("}", 1)[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert "proxy_set_header Connection $portal_connection;" in websocket
    assert "proxy_http_version 1.1;" in websocket
    assert "alias /srv/portal/staticfiles/;" in site
    assert "X-Forwarded-For $proxy_add_x_forwarded_for" in site
    assert "location = /metrics" in site  # never public
