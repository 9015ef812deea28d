"""examples/monitoring: the alert rules and the Grafana dashboard query only metrics the code
registers (checked against a real scrape), and the rules pass `promtool check rules` where
promtool is installed (Debian: apt-get install prometheus)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from icefloe import Project
from icefloe.observe.metrics import exposition
from tests.helpers import ORDERS, make_project

EXAMPLES = Path(__file__).parents[2] / "examples" / "monitoring"
_NAME = re.compile(r"\b(icefloe_[a-z_]+)\b")


def _scraped(tmp_path: Path) -> set[str]:
    root = make_project(tmp_path / "p", {"orders": ORDERS})
    with Project(root) as project:
        body, _ = exposition(project.runtime)
    return {s.name for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def _rule_exprs() -> list[str]:
    rules = yaml.safe_load((EXAMPLES / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dashboard = json.loads((EXAMPLES / "grafana-dashboard.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def test_alert_rules_and_dashboard_name_only_registered_metrics(tmp_path: Path) -> None:
    registered = _scraped(tmp_path)
    for exprs in (_rule_exprs(), _dashboard_exprs()):
        used = {name for expr in exprs for name in _NAME.findall(expr)}
        assert len(used) >= 5, used  # the parser finds the names it must check
        assert used - registered == set(), f"not registered: {sorted(used - registered)}"
    # what the issue asks the rules to cover
    rules = " ".join(_rule_exprs())
    for needed in ("icefloe_backlog_events", "icefloe_events_committed_total", "icefloe_events_dead_total", "icefloe_table_freshness_seconds"):
        assert needed in rules
    assert "icefloe_not_a_metric" not in registered  # the check can fail: a made-up name is refused


def test_promtool_accepts_the_rules_where_it_is_installed() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:  # the parser test above still checks every expr's metric names
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("promtool is missing and CI=true (.ci/run installs it: apt-get install -y prometheus)")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    out = subprocess.run([promtool, "check", "rules", str(EXAMPLES / "alerts.yml")], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout
