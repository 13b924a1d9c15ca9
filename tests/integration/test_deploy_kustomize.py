"""deploy/k8s rendered with kustomize (or ``kubectl kustomize``; skipped without either): the
base, the example overlay and the base with the HPA component, every object validated.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.deploy import K8S
from tests.fixtures.k8s_schemas import validate_k8s


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
