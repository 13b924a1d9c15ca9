"""deploy/ is checked, not just written: the Kubernetes manifests against the Kubernetes
schemas (kubernetes-validate, offline) and against each other and the CLI; the custom
resources (KEDA ScaledObject, Prometheus Operator PodMonitor and PrometheusRule) against small
JSON schemas of the fields we use; the alert rules and scrape config with promtool, including
promtool unit tests of the alerts; every metric that the alerts, the dashboard and the HPA
adapter name in a scrape of a running farm and a running scheduler; the compose file and the
systemd units against the ``agentfarm`` CLI and the settings.
"""

from __future__ import annotations

import json
import os
import random
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import redis as redis_lib
import sqlalchemy as sa
import yaml

from agentfarm.settings import Settings
from tests.fixtures.farm import Caller, Farm, free_port, sse_events

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
ALERTS = PROMETHEUS / "alerts.yml"
DASHBOARD = DEPLOY / "grafana" / "agentfarm.json"
ADAPTER_VALUES = K8S / "components" / "hpa" / "prometheus-adapter-values.yaml"
# The oldest Kubernetes we claim to run on, and the newest schemas the package bundles.
K8S_VERSIONS = ("1.30.0", "1.37.0")
SETTING_NAMES = {f"AGENTFARM_{name.upper()}" for name in Settings.model_fields}


def load_docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


# --- Kubernetes ----------------------------------------------------------------------------


def kustomizations() -> list[Path]:
    return sorted(K8S.rglob("kustomization.yaml"))


def kustomize_entries(kustomization: Path) -> list[Path]:
    """Files and directories a kustomization names (resources and components)."""
    spec = yaml.safe_load(kustomization.read_text())
    names = [*spec.get("resources", []), *spec.get("components", [])]
    return [(kustomization.parent / name).resolve() for name in names]


def manifest_files() -> list[Path]:
    """Every resource file some kustomization lists (patches are inline, so these are whole
    objects)."""
    files = {p for k in kustomizations() for p in kustomize_entries(k) if p.is_file()}
    return sorted(files)


def all_manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [(path, doc) for path in manifest_files() for doc in load_docs(path)]


def test_kustomizations_name_existing_files_and_every_manifest_is_used() -> None:
    assert {k.parent.relative_to(K8S).as_posix() for k in kustomizations()} >= {
        "base",
        "components/keda",
        "components/hpa",
        "components/prometheus-operator",
        "overlays/example",
    }
    for kustomization in kustomizations():
        for entry in kustomize_entries(kustomization):
            assert entry.exists(), f"{kustomization} names missing {entry}"
            if entry.is_dir():
                assert (entry / "kustomization.yaml").is_file(), entry
    # A manifest no kustomization lists would never be applied (nor validated below). The
    # adapter's Helm values are not a Kubernetes object.
    unused = {
        p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml" and p != ADAPTER_VALUES
    } - set(manifest_files())
    assert not unused, f"not listed in any kustomization: {sorted(map(str, unused))}"


# Custom resources are not in the Kubernetes schemas that kubernetes-validate bundles: they are
# validated against these schemas of the fields we use instead (unknown fields are errors, so
# a typo cannot pass).


def obj(*required: str, **properties: Any) -> dict[str, Any]:
    """A JSON schema object with exactly these properties."""
    return {
        "type": "object",
        "required": list(required),
        "properties": properties,
        "additionalProperties": False,
    }


def array(items: dict[str, Any], min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items}


STR, INT = {"type": "string"}, {"type": "integer", "minimum": 0}
DIGITS = {"type": "string", "pattern": r"^\d+$"}  # KEDA's trigger metadata are strings
_META = obj("name", name=STR, namespace=STR, labels={"type": "object"})
_SELECTOR = obj(
    matchLabels={"type": "object", "additionalProperties": STR},
    matchExpressions=array(
        obj("key", "operator", key=STR, operator={"enum": ["In", "NotIn"]}, values=array(STR))
    ),
)
_SCALING = obj(
    stabilizationWindowSeconds=INT,
    policies=array(
        obj(
            "type",
            "value",
            "periodSeconds",
            type={"enum": ["Pods", "Percent"]},
            value=INT,
            periodSeconds=INT,
        )  # fmt: skip
    ),
)
SCALED_OBJECT_SCHEMA = obj(
    "apiVersion", "kind", "metadata", "spec",
    apiVersion={"const": "keda.sh/v1alpha1"},
    kind={"const": "ScaledObject"},
    metadata=_META,
    spec=obj(
        "scaleTargetRef", "triggers",
        scaleTargetRef=obj("name", name=STR),
        pollingInterval=INT,
        minReplicaCount=INT,
        maxReplicaCount=INT,
        advanced=obj(
            horizontalPodAutoscalerConfig=obj(behavior=obj(scaleUp=_SCALING, scaleDown=_SCALING))
        ),
        triggers=array(
            obj(
                "type", "metadata",
                type={"const": "redis"},
                metadata=obj(
                    "address", "listName", "listLength",
                    address={"type": "string", "pattern": r"^[^:/]+:\d+$"},
                    databaseIndex=DIGITS,
                    listName=STR,
                    listLength=DIGITS,
                ),
            ),
            min_items=1,
        ),
    ),
)  # fmt: skip
POD_MONITOR_SCHEMA = obj(
    "apiVersion", "kind", "metadata", "spec",
    apiVersion={"const": "monitoring.coreos.com/v1"},
    kind={"const": "PodMonitor"},
    metadata=_META,
    spec=obj(
        "selector", "podMetricsEndpoints",
        selector=_SELECTOR,
        podMetricsEndpoints=array(
            obj(
                "port",
                port=STR,
                path={"type": "string", "pattern": "^/"},
                interval={"type": "string", "pattern": r"^\d+[smh]$"},
            ),
            min_items=1,
        ),
    ),
)  # fmt: skip
PROMETHEUS_RULE_SCHEMA = obj(
    "apiVersion", "kind", "metadata", "spec",
    apiVersion={"const": "monitoring.coreos.com/v1"},
    kind={"const": "PrometheusRule"},
    metadata=_META,
    spec=obj(
        "groups",
        groups=array(
            obj(
                "name", "rules",
                name=STR,
                rules=array(
                    obj(
                        "alert", "expr",
                        alert=STR, expr=STR, labels={"type": "object"},
                        annotations={"type": "object"}, **{"for": STR},
                    )
                ),
            )
        ),
    ),
)  # fmt: skip
CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): SCALED_OBJECT_SCHEMA,
    ("monitoring.coreos.com/v1", "PodMonitor"): POD_MONITOR_SCHEMA,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE_SCHEMA,
}


def validate_k8s(doc: dict[str, Any]) -> None:
    """Raise unless ``doc`` is valid (strict: unknown fields are errors)."""
    import kubernetes_validate

    crd = CRD_SCHEMAS.get((doc.get("apiVersion"), doc.get("kind")))
    if crd is not None:
        jsonschema.validate(doc, crd)
        return
    for version in K8S_VERSIONS:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(K8S)))
def test_manifest_validates_against_the_kubernetes_schemas(path: Path) -> None:
    docs = load_docs(path)
    assert docs
    for doc in docs:
        validate_k8s(doc)


def test_the_validation_rejects_broken_manifests() -> None:
    """The validators above catch what they are meant to (so a green run means something)."""
    import kubernetes_validate

    api = next(d for _, d in all_manifests() if d["kind"] == "Deployment")
    typo = json.loads(json.dumps(api))
    typo["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {"httpGet": {}}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate_k8s(typo)
    scaled = next(d for _, d in all_manifests() if d["kind"] == "ScaledObject")
    bad = json.loads(json.dumps(scaled))
    bad["spec"]["triggers"][0]["metadata"]["listLenght"] = "5"
    with pytest.raises(jsonschema.ValidationError):
        validate_k8s(bad)


def workloads() -> dict[str, dict[str, Any]]:
    """Deployments, StatefulSets and Jobs by name."""
    return {
        doc["metadata"]["name"]: doc
        for _, doc in all_manifests()
        if doc["kind"] in ("Deployment", "StatefulSet", "Job")
    }


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return workload["spec"]["template"]["metadata"]["labels"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expr in selector.get("matchExpressions", []):
        if expr["operator"] == "In" and labels.get(expr["key"]) not in expr["values"]:
            return False
    return True


def container_ports(workload: dict[str, Any]) -> dict[str, int]:
    return {
        p["name"]: p["containerPort"]
        for c in workload["spec"]["template"]["spec"]["containers"]
        for p in c.get("ports", [])
    }


def test_selectors_ports_and_probes_refer_to_real_pods() -> None:
    pods = workloads()
    for _, doc in all_manifests():
        kind, spec = doc["kind"], doc.get("spec", {})
        if kind in ("Service", "PodDisruptionBudget", "PodMonitor"):
            selector = spec["selector"]
            if kind == "Service":
                selector = {"matchLabels": selector}
            matched = [w for w in pods.values() if selects(selector, pod_labels(w))]
            assert matched, f"{kind} {doc['metadata']['name']} selects no pods"
            wanted = [p["targetPort"] for p in spec.get("ports", [])]
            wanted += [e["port"] for e in spec.get("podMetricsEndpoints", [])]
            for workload in matched:
                for port in wanted:
                    assert port in container_ports(workload), (doc["metadata"], port)
        if kind in ("Deployment", "StatefulSet"):
            assert selects(spec["selector"], pod_labels(doc))
            for container in spec["template"]["spec"]["containers"]:
                for probe in ("readinessProbe", "livenessProbe"):
                    action = container.get(probe, {})
                    port = (action.get("httpGet") or action.get("tcpSocket") or {}).get("port")
                    if port is not None:
                        assert port in container_ports(doc), (doc["metadata"]["name"], probe)
        if kind == "StatefulSet":
            service = next(
                d for _, d in all_manifests()
                if d["kind"] == "Service" and d["metadata"]["name"] == spec["serviceName"]
            )  # fmt: skip
            assert service["spec"]["clusterIP"] == "None"  # a StatefulSet needs a headless one
    # Each role's scrape annotation names its settings' default port, which it declares.
    defaults = {
        "api": Settings.model_fields["http_port"].default,
        "worker": Settings.model_fields["worker_metrics_port"].default,
        "workspace-host": Settings.model_fields["worker_metrics_port"].default,
        "scheduler": Settings.model_fields["scheduler_port"].default,
    }
    for workload in pods.values():
        component = pod_labels(workload)["app.kubernetes.io/component"]
        if component in defaults:
            annotations = workload["spec"]["template"]["metadata"]["annotations"]
            assert annotations["prometheus.io/scrape"] == "true"
            assert int(annotations["prometheus.io/port"]) == defaults[component]
            assert defaults[component] in container_ports(workload).values()


def cli_check(args: list[str]) -> None:
    """Parse ``agentfarm <args>`` as the CLI would (unknown commands or options raise) without
    running it."""
    import typer.main

    from agentfarm.cli import app

    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    name, *rest = args
    assert name in commands, f"agentfarm has no command {name!r}: {sorted(commands)}"
    commands[name].make_context(name, list(rest))


def test_cli_check_rejects_what_the_cli_rejects() -> None:
    cli_check(["worker", "--queues", "workspace.h1", "--processes", "2"])
    with pytest.raises(AssertionError, match="no command 'wokrer'"):
        cli_check(["wokrer"])
    # (typer vendors click: its exceptions are not click's own classes)
    with pytest.raises(Exception, match="No such option: --queue"):
        cli_check(["worker", "--queue", "chat"])
    with pytest.raises(Exception, match="valid integer"):
        cli_check(["worker", "--processes", "two"])


def test_containers_run_real_cli_commands_with_the_settings_they_need() -> None:
    roles = {}
    for name, workload in workloads().items():
        for container in workload["spec"]["template"]["spec"]["containers"]:
            assert container["image"] == "agentfarm"  # set per overlay by kustomize `images`
            cli_check(container["args"])
            roles[name] = container
            refs = {
                next(iter(ref.values()))["name"] for ref in container["envFrom"]
            }  # configMapRef / secretRef
            assert refs == {"agentfarm-config", "agentfarm-secrets"}, name
    assert {c["args"][0] for c in roles.values()} == {"api", "worker", "scheduler", "migrate"}

    # Settings: the ConfigMap and Secret together hold what every process needs, and every
    # key is a real setting (a misspelt one would be ignored silently).
    env: dict[str, str] = {}
    for _, doc in all_manifests():
        if doc["kind"] == "ConfigMap":
            env.update(doc["data"])
        if doc["kind"] == "Secret":
            env.update(doc["stringData"])
    assert set(env) <= SETTING_NAMES, set(env) - SETTING_NAMES
    assert {
        "AGENTFARM_DATABASE_URL",
        "AGENTFARM_REDIS_URL",
        "AGENTFARM_ENCRYPTION_KEYS",
        "AGENTFARM_EXPERIMENTS",
    } <= set(env)
    assert "agents" in env["AGENTFARM_EXPERIMENTS"].split(",")
    # Inside a pod every endpoint must listen beyond loopback (the defaults are 127.0.0.1).
    assert env["AGENTFARM_SCHEDULER_HOST"] == env["AGENTFARM_HTTP_HOST"] == "0.0.0.0"

    # Workspace hosts: the pod name is the host name, its workspaces on its own volume.
    (host_set,) = [w for w in workloads().values() if w["kind"] == "StatefulSet"]
    (container,) = host_set["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["worker", "--queues", "workspace.$(POD_NAME)"]
    env_vars = {e["name"]: e for e in container["env"]}
    assert env_vars["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    claims = {t["metadata"]["name"] for t in host_set["spec"]["volumeClaimTemplates"]}
    assert env_vars["AGENTFARM_WORKSPACES_DIR"]["value"] in {mounts[c] for c in claims}
    assert set(env_vars) - {"POD_NAME"} <= SETTING_NAMES

    scheduler = workloads()["agentfarm-scheduler"]
    assert scheduler["spec"]["replicas"] == 2  # one leads, one stands by


def test_autoscalers_target_the_worker_deployment_and_the_chat_queue() -> None:
    from workers.queues import Queue

    workers = workloads()["agentfarm-worker"]
    assert (
        workers["kind"] == "Deployment"
        and workers["spec"]["template"]["spec"]["containers"][0]["args"][0] == "worker"
    )
    namespace = Settings.model_fields["broker_namespace"].default
    (scaled,) = [d for _, d in all_manifests() if d["kind"] == "ScaledObject"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "agentfarm-worker"
    lists = [t["metadata"]["listName"] for t in scaled["spec"]["triggers"]]
    # Dramatiq keeps a queue's waiting messages in the list <namespace>:<queue>.
    assert f"{namespace}:{Queue.CHAT.value}" in lists
    assert set(lists) <= {f"{namespace}:{q.value}" for q in Queue}
    assert scaled["spec"]["minReplicaCount"] >= 1  # never to zero: pickup within ms

    (hpa,) = [d for _, d in all_manifests() if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "agentfarm-worker"
    external = [m["external"]["metric"] for m in hpa["spec"]["metrics"]]
    assert {m["name"] for m in external} == {
        "agentfarm_queue_depth",
        "agentfarm_queue_oldest_message_age_seconds",
    }
    assert all(m["selector"]["matchLabels"] == {"queue": Queue.CHAT.value} for m in external)
    adapter = yaml.safe_load(ADAPTER_VALUES.read_text())
    served = {rule["name"]["as"] for rule in adapter["rules"]["external"]}
    assert {m["name"] for m in external} <= served


def kustomize_command() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def kustomize_build(directory: Path) -> dict[str, list[dict[str, Any]]]:
    """Render a kustomization (skips without a kustomize binary); objects by kind, each one
    validated."""
    command = kustomize_command()
    if command is None:
        pytest.skip("neither kustomize nor kubectl is installed: rendering is not checked")
    rendered = subprocess.run(
        [*command, str(directory)], capture_output=True, text=True, timeout=120
    )
    assert rendered.returncode == 0, rendered.stderr
    kinds = defaultdict(list)
    for doc in yaml.safe_load_all(rendered.stdout):
        if doc:
            validate_k8s(doc)
            kinds[doc["kind"]].append(doc)
            if doc["kind"] != "Namespace":
                assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "agentfarm"
    assert {"Deployment", "StatefulSet", "Job", "Service", "PodDisruptionBudget"} <= set(kinds)
    return kinds


def worker_deployment(kinds: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    (workers,) = [d for d in kinds["Deployment"] if d["metadata"]["name"] == "agentfarm-worker"]
    return workers


def test_kustomize_builds_the_base() -> None:
    kinds = kustomize_build(K8S / "base")
    assert worker_deployment(kinds)["spec"]["replicas"] >= 1
    assert not kinds["ScaledObject"] and not kinds["HorizontalPodAutoscaler"]


def test_kustomize_builds_the_example_overlay() -> None:
    kinds = kustomize_build(K8S / "overlays" / "example")
    docs = [d for group in kinds.values() for d in group]
    assert all(d["metadata"]["namespace"] == "agentfarm" for d in docs if d["kind"] != "Namespace")
    assert "replicas" not in worker_deployment(kinds)["spec"]  # KEDA owns the count
    (scaled,) = kinds["ScaledObject"]
    assert {t["metadata"]["address"] for t in scaled["spec"]["triggers"]} == {
        "redis.data.svc.cluster.local:6379"
    }
    assert kinds["PodMonitor"] and kinds["PrometheusRule"]
    (api,) = [d for d in kinds["Deployment"] if d["metadata"]["name"] == "agentfarm-api"]
    assert api["spec"]["replicas"] == 3
    images = {
        c["image"] for d in docs if "template" in d.get("spec", {})
        for c in d["spec"]["template"]["spec"]["containers"]
    }  # fmt: skip
    assert images == {"registry.example.com/platform/agentfarm:0.1.0"}


def test_kustomize_builds_base_with_the_hpa_component(tmp_path: Path) -> None:
    def rel(path: Path) -> str:
        return os.path.relpath(path, tmp_path)  # kustomize refuses absolute paths

    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [rel(K8S / "base")],
                "components": [rel(K8S / "components" / "hpa")],
            }
        )
    )
    kinds = kustomize_build(tmp_path)
    assert "replicas" not in worker_deployment(kinds)["spec"]  # the HPA owns the count
    assert len(kinds["HorizontalPodAutoscaler"]) == 1 and not kinds["ScaledObject"]


def test_prometheus_rule_matches_alerts_yml() -> None:
    (rule,) = load_docs(K8S / "components" / "prometheus-operator" / "prometheusrule.yaml")
    assert rule["spec"]["groups"] == yaml.safe_load(ALERTS.read_text())["groups"], (
        "regenerate: cd deploy && python prometheus/prometheusrule.py "
        "> k8s/components/prometheus-operator/prometheusrule.yaml"
    )


# --- promtool --------------------------------------------------------------------------------


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
    assert "AgentfarmQueueBacklog" in result.stdout + result.stderr


# --- metric names in alerts, dashboard and adapter ---------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)?\s*\{([^{}]*)\}")
_MATCHER = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*""')
_GROUPING = re.compile(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_TOKEN = re.compile(
    r"(?P<number>0x[0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?(?:ms|[smhdwy])*)"
    r"|(?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)"
)
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "atan2", "start", "end"}
# Labels Prometheus adds or renames at scrape time: the target's labels, and the scheduler's
# own `job` label, which clashes with the target label and is stored as `exported_job`.
_TARGET_LABELS = {"instance", "job", "namespace", "pod", "component"}
_RENAMED = {"exported_job": "job"}


def promql_refs(expr: str) -> tuple[set[str], list[tuple[str, set[str]]], set[str]]:
    """(metric names, [(metric, label names in its matchers)], label names in by/on/…)."""
    text = _STRING.sub('""', expr)  # a string may hold anything, braces included
    selectors = [
        (m.group(1), {lm.group(1) for lm in _MATCHER.finditer(m.group(2))})
        for m in _SELECTOR.finditer(text)
    ]
    grouping = {
        label.strip()
        for m in _GROUPING.finditer(text)
        for label in m.group(2).split(",")
        if label.strip()
    }
    text = _SELECTOR.sub(lambda m: f" {m.group(1) or ''} ", text)  # drop label matchers
    text = re.sub(r"\[[^\[\]]*\]", " ", text)  # ranges and subqueries ([5m], [$__rate_interval])
    text = _GROUPING.sub(" ", text)
    names = set()
    for token in _TOKEN.finditer(text):
        ident = token.group("ident")
        if ident is None or ident.lower() in _KEYWORDS:
            continue
        if text[token.end() :].lstrip().startswith("("):
            continue  # a function: rate(, histogram_quantile(, time(
        names.add(ident)
    named = [(name, labels) for name, labels in selectors if name]
    return names, named, grouping


def test_promql_refs_parses_names_labels_and_ignores_the_rest() -> None:
    names, selectors, grouping = promql_refs(
        'histogram_quantile(0.99, sum by (le, model) (rate(agentfarm_x_bucket{status=~"5..",'
        ' route!="/a{b}"}[$__rate_interval]))) * 1e6 / on () group_left (kind)'
        " max(agentfarm_y offset 5m) > bool 2 and absent(agentfarm_z) or time() - 1.5e-3"
    )
    assert names == {"agentfarm_x_bucket", "agentfarm_y", "agentfarm_z"}
    assert selectors == [("agentfarm_x_bucket", {"status", "route"})]
    assert grouping == {"le", "model", "kind"}


def alert_exprs() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {rule["alert"]: rule["expr"] for g in groups for rule in g["rules"]}


def dashboard_exprs() -> dict[str, str]:
    out = {}

    def walk(panels: list[dict[str, Any]]) -> None:
        for panel in panels:
            for target in panel.get("targets", []):
                out[f"{panel['title']} / {target['refId']}"] = target["expr"]
            walk(panel.get("panels", []))

    walk(json.loads(DASHBOARD.read_text())["panels"])
    return out


def adapter_exprs() -> dict[str, str]:
    values = yaml.safe_load(ADAPTER_VALUES.read_text())
    return {
        rule["name"]["as"]: rule["metricsQuery"].replace("<<.LabelMatchers>>", "")
        for rule in values["rules"]["external"]
    }


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


def scrape(url: str) -> dict[str, set[str]]:
    """Sample name → label names, from one exposition."""
    from prometheus_client.parser import text_string_to_metric_families

    resp = httpx.get(url, timeout=10)  # no token: Prometheus scrapes anonymously
    assert resp.status_code == 200, (url, resp.status_code)
    out: dict[str, set[str]] = defaultdict(set)
    for family in text_string_to_metric_families(resp.text):
        for sample in family.samples:
            out[sample.name] |= set(sample.labels)
    return out


@pytest.fixture
def scheduler_metrics_url(
    database_url: str, scratch_redis: redis_lib.Redis, tmp_path: Path
) -> Iterator[str]:
    """A real ``agentfarm scheduler`` (its own lock key and broker namespace, on the scratch
    Redis db) that has led and sent every job once."""
    kw = scratch_redis.connection_pool.connection_kwargs
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items()
           if not k.startswith("AGENTFARM_") and k != "PROMETHEUS_MULTIPROC_DIR"},
        "AGENTFARM_DATABASE_URL": database_url,
        "AGENTFARM_REDIS_URL": f"redis://{kw['host']}:{kw['port']}/{kw['db']}",
        "AGENTFARM_BROKER_NAMESPACE": f"deploy-{uuid.uuid4().hex[:8]}",
        "AGENTFARM_SCHEDULER_LOCK_KEY": str(random.randrange(1, 2**40)),
        "AGENTFARM_SCHEDULER_POLL_S": "0.5",
        "AGENTFARM_RECOVER_STALE_EVERY_S": "1",
        "AGENTFARM_WORKSPACE_AUTOSTOP_EVERY_S": "1",
        "AGENTFARM_RETENTION_PURGE_EVERY_S": "1",
        "AGENTFARM_SCHEDULER_PORT": str(port),
    }  # fmt: skip
    log_path = tmp_path / "scheduler.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentfarm.cli", "scheduler"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                text = httpx.get(url, timeout=2).text
            except httpx.TransportError:
                text = ""
            if "agentfarm_scheduler_leader 1.0" in text and (
                "agentfarm_scheduler_last_success_timestamp_seconds{" in text
            ):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"scheduler did not lead:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def promql_sources() -> dict[str, str]:
    """Every PromQL expression deploy/ ships, by where it is."""
    return {
        **{f"alerts.yml {k}": v for k, v in alert_exprs().items()},
        **{f"agentfarm.json {k}": v for k, v in dashboard_exprs().items()},
        **{f"adapter {k}": v for k, v in adapter_exprs().items()},
    }


def scrape_until(urls: list[str], samples: dict[str, set[str]], names: set[str]) -> None:
    """Add the scrapes of ``urls`` to ``samples`` until they hold ``names`` or 30 s passed
    (the API caches its farm-wide gauges for 5 s; a purge's counter lands after its rows are
    gone)."""
    deadline = time.monotonic() + 30
    while True:
        for url in urls:
            for name, labels in scrape(url).items():
                samples[name] |= labels
        if names <= set(samples) or time.monotonic() > deadline:
            return
        time.sleep(0.5)


@pytest.mark.e2e
def test_every_metric_named_in_alerts_dashboard_and_adapter_is_scraped(
    farm: Farm, caller: Caller, scheduler_metrics_url: str
) -> None:
    sources = promql_sources()
    wanted = set().union(*(promql_refs(expr)[0] for expr in sources.values()))
    urls = [
        f"{farm.base_url}/metrics",
        f"http://127.0.0.1:{farm.env['AGENTFARM_WORKER_METRICS_PORT']}/metrics",
        scheduler_metrics_url,
    ]
    samples: dict[str, set[str]] = defaultdict(set)

    # A turn with a model call that is retried (429), a tool call and token usage, and a
    # stream opened on it: scraped while the chat exists.
    tag = uuid.uuid4().hex
    chat = caller.create_chat(
        f"deploy {tag} [[fail: 429 times=1]] [[tool: list_templates {{}}]] [[after_tools: done]]"
    )
    caller.wait_status(chat["id"], "waiting", timeout=90)
    assert sse_events(farm.base_url, caller.token, chat["id"], limit=1, timeout=30)
    scrape_until(urls, samples, wanted - {"agentfarm_purged_rows_total"})

    # Then archived, aged past any retention window (at most 3650 days) and purged.
    resp = caller.http.patch(f"/api/experimental/chats/{chat['id']}", json={"archived": True})
    assert resp.status_code < 300, resp.text
    from models import db
    from workers.actors.retention import retention_purge

    with db.get_engine().begin() as conn:
        conn.execute(
            sa.text("UPDATE chats SET updated_at = now() - interval '3660 days' WHERE id = :id"),
            {"id": chat["id"]},
        )
    retention_purge.send()
    scrape_until(urls, samples, wanted)

    missing, bad_labels = [], []
    for where, expr in sources.items():
        names, selectors, grouping = promql_refs(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        missing += [f"{where}: {name}" for name in names if name not in samples]
        for name, labels in selectors:
            have = samples.get(name, set()) | _TARGET_LABELS
            unknown = {_RENAMED.get(label, label) for label in labels} - have
            if unknown:
                bad_labels.append(f"{where}: {name} has no label {sorted(unknown)}")
        have = set().union(*(samples.get(n, set()) for n in names)) | _TARGET_LABELS
        unknown = {_RENAMED.get(label, label) for label in grouping} - have
        if unknown:
            bad_labels.append(f"{where}: grouping by {sorted(unknown)} matches no label")
    assert not missing, "metrics not in any scrape:\n" + "\n".join(sorted(missing))
    assert not bad_labels, "\n".join(bad_labels)


# --- compose and systemd ---------------------------------------------------------------------


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
