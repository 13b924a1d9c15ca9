"""Write alerts.yml as a Prometheus Operator ``PrometheusRule`` (the same groups, verbatim):

    cd deploy && python prometheus/prometheusrule.py \
        > k8s/components/prometheus-operator/prometheusrule.yaml

tests/integration/test_deploy_prometheus.py fails when the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ALERTS = Path(__file__).with_name("alerts.yml")
HEADER = (
    "# Generated from deploy/prometheus/alerts.yml by deploy/prometheus/prometheusrule.py;\n"
    "# edit alerts.yml and regenerate.\n"
)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (PromQL, descriptions) as literal blocks, as in alerts.yml."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_BlockDumper.add_representer(str, _str)


def prometheus_rule(groups: list[dict[str, Any]]) -> dict[str, Any]:
    """The PrometheusRule object holding ``groups``."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "agentfarm",
            "labels": {
                "app.kubernetes.io/name": "agentfarm",
                "app.kubernetes.io/part-of": "agentfarm",
            },
        },
        "spec": {"groups": groups},
    }


def main() -> None:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    sys.stdout.write(HEADER)
    yaml.dump(prometheus_rule(groups), sys.stdout, Dumper=_BlockDumper, sort_keys=False, width=4096)


if __name__ == "__main__":
    main()
