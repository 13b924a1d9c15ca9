"""deploy/k8s is checked, not just written: every manifest a kustomization lists against the
Kubernetes schemas (the custom resources against theirs) and against each other and the CLI:
selectors, ports and probes meet real pods, containers run real commands with real settings,
and the autoscalers target the worker deployment and the chat queue.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from agentfarm.settings import Settings
from tests.fixtures.deploy import (
    ADAPTER_VALUES,
    K8S,
    SETTING_NAMES,
    all_manifests,
    cli_check,
    kustomizations,
    kustomize_entries,
    load_docs,
    manifest_files,
    workloads,
)
from tests.fixtures.k8s_schemas import validate_k8s


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
    from agentfarm.tasks.queues import Queue

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
