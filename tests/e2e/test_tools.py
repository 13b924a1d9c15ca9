"""Tools end to end: the scripted model calls tools, tool.run actors run them on the right
workspace host, results come back in order and the turn continues."""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from models import db
from tests.fixtures.farm import Caller, Farm, start_worker

CHATS = "/api/experimental/chats"


def make_template(owner: Caller, **fields: Any) -> dict[str, Any]:
    body = {"name": f"tpl-{uuid.uuid4().hex[:8]}", "description": "test template", **fields}
    resp = owner.http.post("/api/v2/organizations/default/templates", json=body)
    assert resp.status_code == 201, resp.text
    return resp.json()


def tool(tool_name: str, /, **args: Any) -> str:
    return f"[[tool: {tool_name} {json.dumps(args)}]]"


def turn(caller: Caller, chat_id: str | None, text: str, **extra: Any) -> str:
    """Send (or create with) a message and wait for the turn to end; returns the chat id."""
    if chat_id is None:
        chat_id = caller.create_chat(text, **extra)["id"]
    else:
        caller.send(chat_id, text)
    caller.wait_status(chat_id, "waiting", "error", timeout=60)
    return chat_id


def tool_results(caller: Caller, chat_id: str) -> list[dict[str, Any]]:
    msgs = list(reversed(caller.messages(chat_id)["messages"]))
    return [p for m in msgs if m["role"] == "tool" for p in m["content"]]


def create_workspace(caller: Caller, template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    chat_id = turn(caller, None, tool("create_workspace", template_id=template["id"]))
    (result,) = tool_results(caller, chat_id)
    assert not result.get("is_error"), result
    return chat_id, result["result"]


def test_agent_creates_a_workspace_and_runs_commands(
    farm: Farm, owner: Caller, caller: Caller
) -> None:
    template = make_template(owner)
    chat_id, workspace = create_workspace(caller, template)
    assert workspace["status"] == "running" and workspace["directory"]
    assert caller.chat(chat_id)["workspace_id"] == workspace["workspace_id"]
    listed = caller.http.get("/api/v2/workspaces").json()
    assert [w["id"] for w in listed["workspaces"]] == [workspace["workspace_id"]]
    assert listed["workspaces"][0]["host"] == "local"

    turn(caller, chat_id, tool("execute", command="echo hello; echo oops >&2; exit 3"))
    result = tool_results(caller, chat_id)[-1]["result"]
    assert result["exit_code"] == 3 and result["success"] is False
    assert "hello" in result["output"] and "oops" in result["output"]

    turn(caller, chat_id, tool("write_file", path="notes/a.txt", content="one\ntwo\n"))
    turn(caller, chat_id, tool("read_file", path="notes/a.txt"))
    assert "two" in tool_results(caller, chat_id)[-1]["result"]["content"]
    assert (Path(workspace["directory"]) / "notes" / "a.txt").read_text() == "one\ntwo\n"


def test_parallel_calls_return_in_order_and_turn_continues(
    farm: Farm, owner: Caller, caller: Caller
) -> None:
    template = make_template(owner)
    chat_id, _ = create_workspace(caller, template)
    text = (
        tool("execute", command="sleep 0.5; echo first")
        + tool("execute", command="echo second")
        + tool("nonexistent_tool")
        + "[[after_tools: all three done]]"
    )
    turn(caller, chat_id, text)
    results = tool_results(caller, chat_id)[-3:]
    assert [r["tool_name"] for r in results] == ["execute", "execute", "nonexistent_tool"]
    assert "first" in results[0]["result"]["output"]
    assert "second" in results[1]["result"]["output"]
    assert results[2]["is_error"] is True
    msgs = caller.messages(chat_id)["messages"]
    assert msgs[0]["role"] == "assistant" and msgs[0]["content"][0]["text"] == "all three done"


def test_timeout_backgrounds_then_process_output_and_signal(
    farm: Farm, owner: Caller, caller: Caller
) -> None:
    template = make_template(owner)
    chat_id, _ = create_workspace(caller, template)
    turn(caller, chat_id, tool("execute", command="sleep 3; echo finished", timeout="1s"))
    first = tool_results(caller, chat_id)[-1]["result"]
    assert first["exit_code"] == -1 and "timed out" in first["error"]
    process_id = first["background_process_id"]
    turn(caller, chat_id, tool("process_output", process_id=process_id, wait_timeout="10s"))
    rest = tool_results(caller, chat_id)[-1]["result"]
    assert "finished" in rest["output"] and rest["exit_code"] == 0

    turn(caller, chat_id, tool("execute", command="sleep 120", run_in_background=True))
    sleeper = tool_results(caller, chat_id)[-1]["result"]["background_process_id"]
    turn(caller, chat_id, tool("process_signal", process_id=sleeper, signal="kill"))
    assert tool_results(caller, chat_id)[-1]["result"]["success"] is True
    turn(caller, chat_id, tool("process_list"))
    listed = tool_results(caller, chat_id)[-1]["result"]["processes"]
    states = {p["id"]: p["status"] for p in listed}
    assert states[sleeper] == "exited" and states[process_id] == "exited"


def test_workspace_isolation_and_atomic_edits(farm: Farm, owner: Caller, caller: Caller) -> None:
    template = make_template(owner)
    chat_id, workspace = create_workspace(caller, template)
    root = Path(workspace["directory"])
    (root / "a.txt").write_text("alpha\n")
    (root / "b.txt").write_text("beta\n")
    os.symlink("/etc", root / "escape")
    for path in ("../../etc/passwd", "escape/passwd", "/etc/passwd"):
        turn(caller, chat_id, tool("read_file", path=path))
        last = tool_results(caller, chat_id)[-1]
        assert last["is_error"] is True, (path, last)
    edits = [
        {"path": str(root / "a.txt"), "old_text": "alpha", "new_text": "ALPHA"},
        {"path": str(root / "b.txt"), "old_text": "not there", "new_text": "x"},
    ]
    turn(caller, chat_id, tool("edit_files", edits=edits))
    assert tool_results(caller, chat_id)[-1]["is_error"] is True
    assert (root / "a.txt").read_text() == "alpha\n"  # nothing changed


def test_tools_without_a_workspace_explain_what_to_do(farm: Farm, caller: Caller) -> None:
    chat_id = turn(caller, None, tool("execute", command="ls"))
    (result,) = tool_results(caller, chat_id)
    assert result["is_error"] is True and "create_workspace" in result["result"]["error"]


def test_other_organizations_template_is_refused(farm: Farm, caller: Caller) -> None:
    from models.identity.tables import Organization
    from models.workspaces.rules import create_template

    with db.session_scope() as session:
        org = Organization(name=f"other-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        foreign = create_template(session, organization_id=org.id, name="foreign")
        foreign_id = str(foreign.id)
    chat_id = turn(caller, None, tool("create_workspace", template_id=foreign_id))
    (result,) = tool_results(caller, chat_id)
    assert result["is_error"] and "another organization" in result["result"]["error"]
    assert caller.chat(chat_id)["workspace_id"] is None


def test_agents_md_and_skills_reach_the_model(farm: Farm, owner: Caller, caller: Caller) -> None:
    template = make_template(owner)
    _, workspace = create_workspace(caller, template)
    root = Path(workspace["directory"])
    (root / "AGENTS.md").write_text("Always answer in haiku.\n")
    skill = root / ".agents" / "skills" / "deploy-app"
    (skill / "scripts").mkdir(parents=True)
    (skill / "SKILL.md").write_text(
        "---\nname: deploy-app\ndescription: How to deploy the app\n---\nRun make deploy.\n"
    )
    (skill / "scripts" / "deploy.sh").write_text("#!/bin/sh\necho deploying\n")
    text = tool("read_skill", name="deploy-app") + tool(
        "read_skill_file", name="deploy-app", path="scripts/deploy.sh"
    )
    chat_id = turn(caller, None, text, workspace_id=workspace["workspace_id"])
    msgs = list(reversed(caller.messages(chat_id)["messages"]))
    context = [
        p for m in msgs for p in m.get("content", []) if p["type"] in ("context-file", "skill")
    ]
    assert {p["type"] for p in context} == {"context-file", "skill"}
    assert all("context_file_content" not in p and "skill_dir" not in p for p in context)
    body, script = tool_results(caller, chat_id)
    assert "Run make deploy." in body["result"]["body"]
    assert body["result"]["files"] == ["scripts/deploy.sh"]
    assert "echo deploying" in script["result"]["content"]
    # The model was given the instructions and the skill list, and offered the skill tools.
    request = next(
        r for r in reversed(farm.llm.requests) if "deploy-app" in json.dumps(r.get("messages"))
    )
    prompt = json.dumps(request["messages"])
    assert "Always answer in haiku." in prompt and "<available-skills>" in prompt
    assert {"read_skill", "read_skill_file"} <= {t["function"]["name"] for t in request["tools"]}


def test_each_host_runs_only_its_own_workspaces_calls(
    farm: Farm, caller: Caller, owner: Caller, tmp_path: Path
) -> None:
    template = make_template(owner)
    workers = {
        host: start_worker(farm.env, tmp_path / host, hosts=host, queues=[f"workspace.{host}"])
        for host in ("alpha", "beta")
    }
    try:
        chats = {}
        for host, worker in workers.items():
            directory = worker.workspaces_dir / f"ws-{host}"
            directory.mkdir()
            workspace_id = _insert_workspace(caller, template["id"], host, directory)
            chats[host] = turn(
                caller, None, tool("execute", command="pwd"), workspace_id=workspace_id
            )
        for host, chat_id in chats.items():
            result = tool_results(caller, chat_id)[-1]["result"]
            assert result["output"].strip() == str(workers[host].workspaces_dir / f"ws-{host}")
    finally:
        for worker in workers.values():
            worker.stop()


def _insert_workspace(caller: Caller, template_id: str, host: str, directory: Path) -> str:
    from models.identity.bootstrap import default_organization
    from models.workspaces.tables import Workspace

    with db.session_scope() as session:
        workspace = Workspace(
            owner_id=caller.user_id,
            organization_id=default_organization(session).id,
            template_id=uuid.UUID(template_id),
            name=f"{host}-ws",
            host=host,
            directory=str(directory),
            status="running",
        )
        session.add(workspace)
        session.flush()
        return str(workspace.id)


def test_worker_killed_during_a_tool_call(
    farm: Farm, caller: Caller, owner: Caller, tmp_path: Path
) -> None:
    template = make_template(owner)
    victim = start_worker(
        farm.env, tmp_path / "victim", hosts="victim", queues=["workspace.victim"]
    )
    try:
        directory = victim.workspaces_dir / "ws"
        directory.mkdir()
        workspace_id = _insert_workspace(caller, template["id"], "victim", directory)
        chat = caller.create_chat(
            tool("execute", command="sleep 30", timeout="60s") + "[[after_tools: carried on]]",
            workspace_id=workspace_id,
        )
        _wait_for_running_call(chat["id"])
        os.killpg(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        from agentfarm.tasks import catalog

        deadline = time.monotonic() + 40
        while caller.chat(chat["id"])["status"] != "waiting" and time.monotonic() < deadline:
            catalog.RECOVER_STALE.send()
            time.sleep(0.5)
        (result,) = tool_results(caller, chat["id"])
        assert result["is_error"] is True
        assert "interrupted by a worker failure" in result["result"]["error"]
        assert caller.messages(chat["id"])["messages"][0]["content"][0]["text"] == "carried on"
    finally:
        victim.stop()


def _wait_for_running_call(chat_id: str) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with db.session_scope() as session:
            status = session.execute(
                sa.text("SELECT status FROM chat_tool_calls WHERE chat_id = :id"), {"id": chat_id}
            ).scalar()
        if status == "running":
            time.sleep(0.3)  # let the process start
            return
        time.sleep(0.05)
    raise AssertionError("the tool call never started")


def test_sandboxed_template_confines_writes_and_network(
    farm: Farm, owner: Caller, caller: Caller
) -> None:
    from workers.tools.sandbox import unavailable_reason

    reason = unavailable_reason("none")
    if reason is not None:
        pytest.skip(f"bubblewrap cannot sandbox on this machine: {reason}")
    template = make_template(owner, sandbox=True, network_policy="none")
    chat_id, workspace = create_workspace(caller, template)
    turn(
        caller,
        chat_id,
        tool("execute", command="echo inside > inside.txt && touch /usr/agentfarm-x"),
    )
    result = tool_results(caller, chat_id)[-1]["result"]
    assert result["exit_code"] != 0 and "Read-only file system" in result["output"]
    assert (Path(workspace["directory"]) / "inside.txt").read_text() == "inside\n"
    assert not Path("/usr/agentfarm-x").exists()
    probe = (
        'python3 -c \'import socket; socket.create_connection(("127.0.0.1", '
        f"{farm.base_url.rsplit(':', 1)[1]}), timeout=2)'"
    )
    turn(caller, chat_id, tool("execute", command=probe))
    assert tool_results(caller, chat_id)[-1]["result"]["exit_code"] != 0


def test_idle_workspace_is_autostopped_and_can_be_started_again(
    farm: Farm, owner: Caller, caller: Caller
) -> None:
    from agentfarm.tasks import catalog

    template = make_template(owner, autostop_ttl_ms=60_000)
    chat_id, workspace = create_workspace(caller, template)
    busy_id, busy = create_workspace(caller, make_template(owner, autostop_ttl_ms=60_000))
    turn(caller, chat_id, tool("execute", command="sleep 120", run_in_background=True))
    sleeper = tool_results(caller, chat_id)[-1]["result"]["background_process_id"]
    caller.send(busy_id, "[[tokens: 300 delay_ms=20]]")  # a running turn keeps it alive
    with db.session_scope() as session:
        session.execute(
            sa.text(
                "UPDATE workspaces SET last_activity_at = now() - interval '2 minutes'"
                " WHERE id = ANY(:ids)"
            ),
            {"ids": [uuid.UUID(workspace["workspace_id"]), uuid.UUID(busy["workspace_id"])]},
        )
    catalog.WORKSPACE_AUTOSTOP.send()
    ws_url = f"/api/v2/workspaces/{workspace['workspace_id']}"
    deadline = time.monotonic() + 20
    while caller.http.get(ws_url).json()["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert caller.http.get(ws_url).json()["status"] == "stopped"
    assert caller.http.get(f"/api/v2/workspaces/{busy['workspace_id']}").json()["status"] == (
        "running"
    )
    turn(caller, chat_id, tool("execute", command="echo hi"))
    assert "start_workspace" in tool_results(caller, chat_id)[-1]["result"]["error"]
    turn(caller, chat_id, tool("start_workspace"))
    assert tool_results(caller, chat_id)[-1]["result"]["status"] == "running"
    turn(caller, chat_id, tool("process_list"))
    listing = tool_results(caller, chat_id)[-1]
    states = {p["id"]: p["status"] for p in listing["result"]["processes"]}
    assert states[sleeper] == "exited"  # stopping the workspace ended its processes
    caller.http.post(f"{CHATS}/{busy_id}/interrupt")


def test_binding_a_workspace_checks_owner_and_organization(
    farm: Farm, owner: Caller, caller: Caller, other_caller: Caller
) -> None:
    from models.identity.tables import Organization

    template = make_template(owner)
    _, workspace = create_workspace(caller, template)
    resp = other_caller.http.post(
        CHATS,
        json={
            "content": [{"type": "text", "text": "hi"}],
            "workspace_id": workspace["workspace_id"],
        },
    )
    assert resp.status_code == 400
    assert (
        resp.json()["message"] == "Workspace not found or you do not have access to this resource"
    )
    with db.session_scope() as session:
        org = Organization(name=f"elsewhere-{uuid.uuid4().hex[:8]}")
        session.add(org)
        session.flush()
        session.execute(
            sa.text("UPDATE workspaces SET organization_id = :org WHERE id = :id"),
            {"org": org.id, "id": workspace["workspace_id"]},
        )
    chat = caller.create_chat("[[reply: ok]]")
    resp = caller.http.patch(
        f"{CHATS}/{chat['id']}", json={"workspace_id": workspace["workspace_id"]}
    )
    assert resp.status_code == 400
    assert resp.json()["message"] == "Workspace does not belong to this chat's organization."
    nil = caller.http.patch(f"{CHATS}/{chat['id']}", json={"workspace_id": str(uuid.UUID(int=0))})
    assert nil.status_code == 204 and caller.chat(chat["id"])["workspace_id"] is None
