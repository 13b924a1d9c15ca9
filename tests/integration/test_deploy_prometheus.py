"""deploy/prometheus and deploy/grafana: the alert rules and the scrape config checked with
promtool, including promtool unit tests of the alerts that must catch a broken threshold;
the PrometheusRule generated from alerts.yml; the PromQL reader the scrape test relies on;
what the dashboard shows and how Grafana is provisioned with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.fixtures.deploy import (
    ALERTS,
    DASHBOARD,
    DEPLOY,
    K8S,
    PROMETHEUS,
    alert_exprs,
    dashboard_exprs,
    load_docs,
    promql_refs,
)


def test_prometheus_rule_matches_alerts_yml() -> None:
    (rule,) = load_docs(K8S / "components" / "prometheus-operator" / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"], (
        "regenerate: cd deploy && python prometheus/prometheusrule.py "
        "> k8s/components/prometheus-operator/prometheusrule.yaml"
    )


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if os.geteuid() == 0:
            pytest.fail("promtool is missing: `make os-packages` installs it (Debian `prometheus`)")
        pytest.skip("promtool is missing and only root can install it (Debian package prometheus)")
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120
    )


def test_promtool_checks_the_rules_and_the_scrape_config() -> None:
    rules = run_promtool("check", "rules", "alerts.yml")
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = run_promtool("check", "config", "prometheus.yml")
    assert config.returncode == 0, config.stdout + config.stderr
    assert "1 rule files found" in config.stdout


def test_promtool_unit_tests_of_the_alerts() -> None:
    result = run_promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # Every alert has at least one unit test that expects it to fire.
    tests = yaml.safe_load((PROMETHEUS / "alerts.test.yml").read_text())["tests"]
    fired = {
        case["alertname"]
        for test in tests
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert fired == set(alert_exprs())


def test_promtool_unit_tests_fail_on_a_broken_rule(tmp_path: Path) -> None:
    """The unit tests are sharp enough to catch a threshold that was changed by mistake."""
    promtool()
    broken = ALERTS.read_text().replace("> 60\n", "> 6000\n", 1)
    assert broken != ALERTS.read_text()
    (tmp_path / "alerts.yml").write_text(broken)
    shutil.copy(PROMETHEUS / "alerts.test.yml", tmp_path)
    result = subprocess.run(
        [promtool(), "test", "rules", "alerts.test.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0


def test_promql_refs_parses_names_labels_and_ignores_the_rest() -> None:
    names, selectors, grouping = promql_refs(
        'histogram_quantile(0.99, sum by (le, model) (rate(agentfarm_x_bucket{status=~"5..",'
        ' route!="/a{b}"}[$__rate_interval]))) * 1e6 / on () group_left (kind)'
        " max(agentfarm_y offset 5m) > bool 2 and absent(agentfarm_z) or time() - 1.5e-3"
    )
    assert names == {"agentfarm_x_bucket", "agentfarm_y", "agentfarm_z"}
    assert selectors == [("agentfarm_x_bucket", {"status", "route"})]
    assert grouping == {"le", "model", "kind"}


def test_the_dashboard_covers_what_operators_watch() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "agentfarm"
    families = set()
    for expr in dashboard_exprs().values():
        families |= promql_refs(expr)[0]
    assert families >= {
        "agentfarm_queue_depth",
        "agentfarm_queue_oldest_message_age_seconds",
        "agentfarm_chat_steps_total",
        "agentfarm_chat_step_duration_seconds_bucket",
        "agentfarm_llm_time_to_first_token_seconds_bucket",
        "agentfarm_llm_tokens_total",
        "agentfarm_llm_cost_micros_total",
        "agentfarm_tool_calls_total",
        "agentfarm_http_requests_total",
        "agentfarm_http_request_duration_seconds_bucket",
        "agentfarm_open_streams",
        "agentfarm_workers_live",
        "agentfarm_scheduler_leader",
        "agentfarm_purged_rows_total",
    }
    # The provisioning files point Grafana at this dashboard and at the compose Prometheus.
    provisioning = DEPLOY / "grafana" / "provisioning"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "agentfarm.yml").read_text())[
        "providers"
    ]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/agentfarm.json:{provider['options']['path']}/agentfarm.json:ro" in mounts
