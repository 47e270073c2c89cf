"""The systemd units in deploy/systemd: one per role, each with its environment, its own
metrics directory created empty at start, and the command the README documents."""

from __future__ import annotations

from collections import defaultdict

from tests.deploy.documents import DEPLOY

UNITS = DEPLOY / "systemd"


def unit(name: str) -> dict[str, dict[str, str]]:
    """Sections of a unit file; a key given several times (Environment=) has its values
    joined by newlines, as systemd takes them all."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in (UNITS / name).read_text().replace("\\\n", " ").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
        else:
            key, _sep, value = line.partition("=")
            sections[section][key].append(value)
    return {s: {k: "\n".join(v) for k, v in keys.items()} for s, keys in sections.items()}


def test_there_is_a_unit_per_role_and_one_for_migrations():
    names = {p.name for p in UNITS.iterdir()}
    assert {"portal-web.service", "portal-worker@.service", "portal-beat.service",
            "portal-watcher.service", "portal-migrate.service", "portal.target"} <= names


def test_each_role_reads_the_environment_and_keeps_its_metrics_apart():
    ports = set()
    for name in ("portal-web.service", "portal-worker@.service", "portal-beat.service",
                 "portal-watcher.service"):
        service = unit(name)["Service"]
        assert service["EnvironmentFile"] == "/etc/portal/portal.env"
        runtime = service["RuntimeDirectory"]
        assert f"PROMETHEUS_MULTIPROC_DIR=/run/{runtime}" in service["Environment"], name
        assert "portal-migrate.service" in unit(name)["Unit"]["After"]
        if name != "portal-web.service":
            port = [e for e in service["Environment"].split("\n") if "METRICS_PORT" in e]
            ports.add(port[0] if port else None)
    assert None not in ports and len(ports) == 3


def test_the_commands_are_the_documented_ones():
    assert "uvicorn portal.asgi:application" in unit("portal-web.service")["Service"]["ExecStart"]
    assert "--no-proxy-headers" in unit("portal-web.service")["Service"]["ExecStart"]
    assert "celery -A portal worker" in unit("portal-worker@.service")["Service"]["ExecStart"]
    assert "celery -A portal beat" in unit("portal-beat.service")["Service"]["ExecStart"]
    assert "manage.py watch_platform" in unit("portal-watcher.service")["Service"]["ExecStart"]
    assert "manage.py migrate" in (UNITS / "portal-migrate.service").read_text()
