"""deploy/: the alert rules and the Grafana dashboard read only metrics ``GET /metrics`` exports,
and each alert's runbook is a section of docs/operations.md.

``promtool`` (Prometheus' own checker, not on PyPI) also checks the rules' syntax and runs
deploy/prometheus/alerts_test.yml when it is installed (Debian: ``apt-get install
prometheus``); the name checks run everywhere.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from einvoice.devservices import project_root
from tests.integration.api.conftest import running_api
from tests.integration.metrics.conftest import TOKEN, scrape

ROOT = project_root()
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yml"
PROMETHEUS = ROOT / "deploy" / "prometheus" / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "einvoice-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"

#: Series Prometheus itself makes, which no exporter exports.
PROMETHEUS_OWN = {"up"}
_METRIC = re.compile(r"\b(einvoice_[a-z0-9_]+|up)\b")


def alert_rules() -> list[dict[str, object]]:
    """Every rule of alerts.yml."""
    parsed = yaml.safe_load(ALERTS.read_text())
    return [rule for group in parsed["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    """Every query of the Grafana dashboard's panels."""
    panels = json.loads(DASHBOARD.read_text())["panels"]
    return [target["expr"] for panel in panels for target in panel.get("targets", [])]


def referenced(expressions: list[str]) -> set[str]:
    return {name for expr in expressions for name in _METRIC.findall(expr)}


def test_alerts_and_dashboard_read_only_metrics_the_endpoint_exports(
        db_url: str, redis_url: str) -> None:
    # Given what /metrics exports (families without a sample yet still say their name)
    with running_api(db_url, redis_url, einvoice_metrics_token=TOKEN) as base_url:
        exported = scrape(base_url).names()
    # When the alert rules and the dashboard's queries are read
    in_alerts = referenced([str(rule["expr"]) for rule in alert_rules()])
    in_dashboard = referenced(dashboard_expressions())
    # Then each name they use is exported (or is Prometheus' own "up")
    assert in_alerts, "no metric found in alerts.yml?"
    assert in_alerts - exported - PROMETHEUS_OWN == set()
    assert in_dashboard - exported == set()


def test_the_five_conditions_of_the_alerts_each_have_a_rule() -> None:
    names = {str(rule["alert"]) for rule in alert_rules()}
    assert {"EinvoiceJobStuckPastLease", "EinvoiceJobFailuresHigh", "EinvoiceRangeRunningOut",
            "EinvoiceRangeExpiring", "EinvoiceAccountBlocked", "EinvoiceBeatDown"} <= names


def test_every_alert_has_a_runbook_section_in_docs_operations() -> None:
    # Given the headings of docs/operations.md as mkdocs anchors
    anchors = {re.sub(r"[^a-z0-9_-]", "", line.lstrip("#").strip().lower().replace(" ", "-"))
               for line in OPERATIONS.read_text().splitlines() if line.startswith("#")}
    for rule in alert_rules():
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        # Then each alert's runbook names a section of that page, called after the alert
        page, _, anchor = str(annotations["runbook"]).partition("#")
        assert page == "docs/operations.md", rule["alert"]
        assert anchor == str(rule["alert"]).lower()
        assert anchor in anchors, f"{rule['alert']}: no section #{anchor} in docs/operations.md"


def test_prometheus_scrapes_the_api_with_the_token_from_a_file() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "einvoice"]
    assert job["metrics_path"] == "/metrics"
    assert job["authorization"]["type"] == "Bearer"
    assert "credentials_file" in job["authorization"]
    assert "credentials" not in job["authorization"]
    assert config["rule_files"] == ["alerts.yml"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
def test_promtool_accepts_the_rules_and_their_unit_tests_pass(tmp_path: Path) -> None:
    checked = subprocess.run(["promtool", "check", "rules", str(ALERTS)], capture_output=True,
                             text=True, check=False, timeout=60)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(["promtool", "test", "rules", "alerts_test.yml"],
                            cwd=ALERTS.parent, capture_output=True, text=True, check=False,
                            timeout=60)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # The configuration, with its token file where Prometheus would find it
    token = tmp_path / "token"
    token.write_text(TOKEN)
    config = PROMETHEUS.read_text().replace("/etc/prometheus/einvoice-metrics-token", str(token))
    (tmp_path / "prometheus.yml").write_text(config)
    shutil.copy(ALERTS, tmp_path / "alerts.yml")
    valid = subprocess.run(["promtool", "check", "config", str(tmp_path / "prometheus.yml")],
                           capture_output=True, text=True, check=False, timeout=60)
    assert valid.returncode == 0, valid.stdout + valid.stderr
