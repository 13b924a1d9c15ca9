"""The shape of the code, checked: the task catalog and the registered actors agree, only the
state machine assigns a chat's status, no module outgrows a reader, and nothing dodges an
import cycle with a function-level import. (Layering itself is import-linter's job: make lint.)
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agentfarm", "api_shim", "models", "scheduler", "workers")
MAX_LINES = 450


def _modules() -> list[Path]:
    return sorted(
        p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py") if "migrations" not in p.parts
    )


def test_every_catalog_task_has_its_actor_and_every_actor_is_in_the_catalog() -> None:
    # A fresh interpreter with an in-process broker: registering actors touches no Redis.
    script = """
import importlib, json, pkgutil
import dramatiq
from dramatiq.brokers.stub import StubBroker
dramatiq.set_broker(StubBroker())
import workers.actors
for info in pkgutil.iter_modules(workers.actors.__path__):
    importlib.import_module(f"workers.actors.{info.name}")
broker = dramatiq.get_broker()
print(json.dumps({n: broker.get_actor(n).queue_name for n in broker.get_declared_actors()}))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTFARM_")}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    registered = json.loads(out.stdout.strip().splitlines()[-1])
    from agentfarm.tasks import catalog

    declared = {t.name: str(t.queue) for t in catalog.ALL_TASKS}
    assert registered == declared


def test_periodic_tasks_name_real_settings() -> None:
    from agentfarm.settings import Settings
    from agentfarm.tasks import catalog

    periodic = catalog.periodic_tasks()
    assert {t.name for t in periodic} >= {"chat.recover_stale", "retention.purge"}
    assert all(t.every in Settings.model_fields for t in periodic)


STATUS_WRITE = re.compile(
    r"\.status\s*=\s*ChatStatus\.|status=ChatStatus\.|SET\s+status\s*=", re.IGNORECASE
)


def test_only_the_state_machine_assigns_a_chat_status() -> None:
    owner = ROOT / "models" / "chat" / "transitions.py"
    offenders = []
    for path in _modules():
        if path == owner:
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if STATUS_WRITE.search(line) and "workspace" not in line.lower():
                offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []


def test_no_module_is_over_450_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_function_level_imports_of_our_own_modules() -> None:
    # The CLI imports each command's process lazily (startup cost, not cycles): allowed.
    allowed = {ROOT / "agentfarm" / "cli.py"}
    found = []
    for path in _modules():
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                    names = [inner.module]
                elif isinstance(inner, ast.Import):
                    names = [a.name for a in inner.names]
                else:
                    continue
                if any(name.split(".")[0] in PACKAGES for name in names):
                    found.append(f"{path.relative_to(ROOT)}:{inner.lineno}")
    assert found == []


def _module_name(path: Path) -> str:
    name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    return name.removesuffix(".__init__")


def _imports_of(path: Path, known: set[str]) -> set[str]:
    """Our modules ``path`` imports at run time (``TYPE_CHECKING`` blocks excluded)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [f"{base}.{a.name}" for a in child.names] + [base]
            for target in targets:
                hit = resolve(target)
                if hit and hit != module:
                    found.add(hit)
            visit(child)

    visit(ast.parse(path.read_text()))
    # Importing a.b.c runs a/__init__ and a/b/__init__ first.
    for name in list(found):
        parts = name.split(".")
        found.update(p for i in range(1, len(parts)) if (p := ".".join(parts[:i])) in known)
    found.discard(module)
    return {n for n in found if not module.startswith(n + ".")}


def test_there_are_no_import_cycles() -> None:
    paths = {_module_name(p): p for p in _modules()}
    graph = {name: _imports_of(path, set(paths)) for name, path in paths.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def strongconnect(node: str) -> None:  # Tarjan
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                strongconnect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for name in graph:
        if name not in index:
            strongconnect(name)
    assert cycles == []
