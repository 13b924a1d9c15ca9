"""deploy/compose.yaml and deploy/systemd against the ``agentfarm`` CLI and the settings: real
commands and setting names, references that resolve, and Prometheus scraping what compose
runs.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any

import yaml

from agentfarm.settings import Settings
from tests.fixtures.deploy import DEPLOY, PROMETHEUS, SETTING_NAMES, cli_check


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_compose_services_run_real_cli_commands() -> None:
    services = compose()["services"]
    assert set(services) >= {
        "postgres", "redis", "migrate", "api", "worker", "workspace-host1", "scheduler",
        "prometheus", "grafana",
    }  # fmt: skip
    ours = {name: s for name, s in services.items() if s.get("build")}
    assert set(ours) == {"migrate", "api", "worker", "workspace-host1", "scheduler"}
    for name, service in ours.items():
        assert service["build"]["dockerfile"] == "deploy/Dockerfile", name
        assert (DEPLOY / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        cli_check(service["command"])
        env = service["environment"]
        assert set(env) <= SETTING_NAMES, (name, set(env) - SETTING_NAMES)
        assert "agents" in env["AGENTFARM_EXPERIMENTS"].split(",")
        for needed in ("AGENTFARM_DATABASE_URL", "AGENTFARM_REDIS_URL"):
            assert needed in env, (name, needed)
        if name != "migrate":
            assert service["depends_on"]["migrate"]["condition"] == (
                "service_completed_successfully"
            )
    assert ours["migrate"]["command"] == ["migrate"]
    assert ours["workspace-host1"]["command"] == ["worker", "--queues", "workspace.host1"]
    workspaces_dir = ours["workspace-host1"]["environment"]["AGENTFARM_WORKSPACES_DIR"]
    assert any(v.endswith(f":{workspaces_dir}") for v in ours["workspace-host1"]["volumes"])
    assert ours["scheduler"]["deploy"]["replicas"] == 2
    # Dramatiq's queues and the event streams must never be evicted.
    redis_cmd = services["redis"]["command"]
    assert redis_cmd[redis_cmd.index("--maxmemory-policy") + 1] == "noeviction"


def test_compose_references_resolve() -> None:
    spec = compose()
    services = spec["services"]
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, (name, dependency)
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, source)
            else:
                assert source in spec["volumes"], (name, source)
    # Prometheus scrapes what compose runs, on the ports the settings default to.
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    targets = {
        (name, sd["port"])
        for job in config["scrape_configs"]
        for sd in job["dns_sd_configs"]
        for name in sd["names"]
    }
    metrics_port = Settings.model_fields["worker_metrics_port"].default
    assert targets == {
        ("api", 3000),
        ("worker", metrics_port),
        ("workspace-host1", metrics_port),
        ("scheduler", Settings.model_fields["scheduler_port"].default),
    }


def test_systemd_units_run_real_cli_commands() -> None:
    units = sorted((DEPLOY / "systemd").glob("*.service"))
    commands = {}
    for unit in units:
        (line,) = [ln for ln in unit.read_text().splitlines() if ln.startswith("ExecStart=")]
        argv = shlex.split(line.removeprefix("ExecStart="))
        assert Path(argv[0]).name == "agentfarm", unit
        cli_check(argv[1:])
        commands[unit.name] = argv[1:]
        for env_line in re.findall(r"^Environment=(\S+?)=", unit.read_text(), re.M):
            assert env_line in SETTING_NAMES | {"PROMETHEUS_MULTIPROC_DIR"}, (unit, env_line)
    assert commands["agentfarm-workspace@.service"] == ["worker", "--queues", "workspace.%i"]
    assert {c[0] for c in commands.values()} == {"api", "worker", "scheduler", "migrate"}
