"""The Grafana dashboard, the alert rules and the README's list of metrics name exactly the
metrics the portal exposes."""

from __future__ import annotations

import json
import re

import pytest
from prometheus_client import generate_latest

from portal.metrics import exposition
from tests.deploy.documents import (
    ALERT_RULES,
    DASHBOARDS,
    ROOT,
    alert_expressions,
    dashboard_expressions,
    documented_metric_names,
    present_names,
)


@pytest.fixture
def exposed(db) -> set[str]:
    """Every name one scrape of the web role exposes (this process's registry, with the
    service-wide collectors)."""
    text = generate_latest(exposition.process_registry()).decode()
    text += generate_latest(exposition._service_registry).decode()
    return present_names(text)


def test_there_is_a_dashboard_and_alert_rules():
    assert DASHBOARDS and ALERT_RULES
    assert len(dashboard_expressions()) >= 20 and len(alert_expressions()) >= 10


def test_every_metric_the_dashboard_and_alerts_query_exists(exposed):
    missing = documented_metric_names() - exposed
    assert not missing, f"unknown metrics in deploy/: {sorted(missing)}"


def test_the_dashboard_is_importable_grafana_json():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
        ids = [panel["id"] for panel in dashboard["panels"]]
        assert len(ids) == len(set(ids))
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                assert target["expr"].count("(") == target["expr"].count(")"), target


def test_every_alert_has_a_summary_and_a_severity():
    import yaml

    for path in ALERT_RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule
                assert rule["annotations"]["summary"], rule


def _readme_metrics() -> set[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Metrics", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `(portal_[a-z0-9_]+)`", section, flags=re.MULTILINE))


def test_the_readme_lists_every_metric_and_only_those(exposed):
    listed = _readme_metrics()
    families = {name for name in exposed if name.startswith("portal_")
                and not name.endswith(("_bucket", "_sum", "_count", "_created"))}
    # A counter is exposed as <name>_total; the README names it so.
    families = {name for name in families if (name + "_total") not in families}
    assert listed == families, (f"missing from the README: {sorted(families - listed)}; "
                                f"not exposed: {sorted(listed - families)}")


def test_the_scrape_config_sends_the_token_to_every_job():
    import yaml

    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "scrape-config.yml").read_text())
    for job in config["scrape_configs"]:
        assert job["authorization"]["type"] == "Bearer", job["job_name"]
