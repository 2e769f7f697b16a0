"""The Prometheus files in deploy/prometheus/: valid for promtool, and the alert expressions proven on series.

promtool comes from Debian's `prometheus` package (`make promtool`, a prerequisite of `make test`). A missing
promtool fails these tests: it is never a reason to skip them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[3] / "deploy" / "prometheus"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool is not installed: run `make promtool` (Debian package `prometheus`)"
    proc = subprocess.run([exe, *args], cwd=DEPLOY, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, f"promtool {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_alert_rules_are_valid() -> None:
    out = promtool("check", "rules", "alerts.yml").stdout
    assert "SUCCESS: 11 rules found" in out


def test_prometheus_config_is_valid_and_loads_the_rules() -> None:
    out = promtool("check", "config", "prometheus.yml").stdout
    assert "SUCCESS: 1 rule files found" in out and "alerts.yml" in out
    config = (DEPLOY / "prometheus.yml").read_text()
    assert re.search(r"^rule_files:\n  - alerts\.yml$", config, re.M)
    assert re.search(r"- job_name: cact-worker\n    metrics_path: /metrics\n    static_configs:\n"
                     r"      - targets: \[\"127\.0\.0\.1:6066\"\]", config)


def test_alert_rules_fire_and_stay_quiet_as_specified() -> None:
    """alerts_test.yml: input series and, at given times, exactly which alerts fire (and that others do not)."""
    out = promtool("test", "rules", "alerts_test.yml").stdout
    assert "SUCCESS" in out


@pytest.mark.parametrize("alert, severity", [("CactNoShowRateHigh", "warning"), ("CactLabSilent", "critical"),
                                             ("CactLabNotHeard", "critical"), ("CactSiasnBacklogStale", "warning"),
                                             ("CactSiasnRejected", "warning"), ("CactReportAtRisk", "warning"),
                                             ("CactReportLate", "critical")])
def test_every_alert_is_explained_and_tested_both_ways(alert: str, severity: str) -> None:
    rules = (DEPLOY / "alerts.yml").read_text()
    rule = re.search(rf"- alert: {alert}\n(.*?)(?=\n      - alert:|\Z)", rules, re.S)
    assert rule, alert
    body = rule.group(1)
    assert f"severity: {severity}" in body and "summary:" in body and "description:" in body
    cases = re.findall(rf"alertname: {alert}\n        exp_alerts:(.*?)(?=\n      - eval_time|\n  - interval|\Z)",
                       (DEPLOY / "alerts_test.yml").read_text(), re.S)
    assert any(c.strip() == "[]" for c in cases), f"no test case where {alert} must stay quiet"
    assert any("- exp_labels:" in c for c in cases), f"no test case where {alert} fires"


def test_the_kubernetes_prometheus_rules_are_valid_for_promtool(tmp_path: Path) -> None:
    """deploy/k8s's PrometheusRule objects carry rule groups the schema check cannot judge (PromQL, templates):
    promtool checks each one's ``spec.groups`` as the operator would load them."""
    import yaml

    rules = sorted((DEPLOY.parent / "k8s" / "monitoring").glob("prometheusrule-*.yaml"))
    assert len(rules) >= 2, rules
    for path in rules:
        [rule] = [d for d in yaml.safe_load_all(path.read_text()) if d and d.get("kind") == "PrometheusRule"]
        groups = tmp_path / f"{path.stem}.yml"
        groups.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        exe = shutil.which("promtool")
        assert exe, "promtool is not installed: run `make promtool` (Debian package `prometheus`)"
        proc = subprocess.run([exe, "check", "rules", str(groups)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{path.name}: {proc.stdout}{proc.stderr}"
        count = sum(len(g["rules"]) for g in rule["spec"]["groups"])
        assert f"SUCCESS: {count} rules found" in proc.stdout, proc.stdout
