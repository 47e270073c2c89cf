"""What the operator documents in ``deploy/`` and the README name, read back for the tests."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
DASHBOARDS = sorted((DEPLOY / "grafana").glob("*.json"))
ALERT_RULES = sorted((DEPLOY / "prometheus").glob("*-alerts.yml"))
METRIC = re.compile(r"\bportal_[a-z0-9_]+\b")
SUFFIXES = ("_bucket", "_sum", "_count", "_created", "_total")


def _expressions(node) -> list[str]:
    if isinstance(node, dict):
        return [text for key, value in node.items()
                for text in ([value] if key in ("expr", "query") and isinstance(value, str)
                             else _expressions(value))]
    if isinstance(node, list):
        return [text for item in node for text in _expressions(item)]
    return []


def dashboard_expressions() -> list[str]:
    return [expr for path in DASHBOARDS for expr in _expressions(json.loads(path.read_text()))]


def alert_expressions() -> list[str]:
    return [expr for path in ALERT_RULES for expr in _expressions(yaml.safe_load(path.read_text()))]


def documented_metric_names() -> set[str]:
    """Every ``portal_*`` name a dashboard panel or an alert rule queries."""
    return {name for expr in dashboard_expressions() + alert_expressions()
            for name in METRIC.findall(expr)}


def present_names(exposition: str) -> set[str]:
    """Names an exposition serves: families (``# TYPE``) and samples, with the sample names a
    histogram or counter family stands for."""
    names = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            family, kind = line.split()[2:4]
            names.add(family)
            if kind == "histogram":
                names.update(family + s for s in ("_bucket", "_sum", "_count"))
            if kind == "counter" and not family.endswith("_total"):
                names.add(family + "_total")
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names
