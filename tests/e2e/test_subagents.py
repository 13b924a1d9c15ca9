"""Subagents end to end: a root chat spawns children that run on the farm, waits for their
reports without holding a worker thread, messages and closes them; children cannot spawn.

The scripted model plays both sides: the root's message scripts its tool rounds
(``[[tool:]]`` then ``[[tool2:]]`` …, with ``{{N.key}}`` taken from the previous round's
results) and each child's prompt, written with escaped brackets, scripts the child.
"""

from __future__ import annotations

import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

from tests.fixtures.farm import OWNER_ROLES, Caller, Farm, make_caller, start_worker

CHATS = "/api/experimental/chats"
DELEGATED = "You are a delegated subagent"


def call(name: str, round_no: int = 1, **args: Any) -> str:
    """A scripted tool call in tool round ``round_no``; brackets in the arguments (a child's
    own directives) are escaped so the root's directive parser leaves them alone."""
    tag = "tool" if round_no == 1 else f"tool{round_no}"
    text = json.dumps(args).replace("[", "\\[").replace("]", "\\]")
    return f"[[{tag}: {name} {text}]]"


def spawn(prompt: str, title: str, round_no: int = 1, tool: str = "spawn_agent") -> str:
    return call(tool, round_no, prompt=prompt, title=title)


def timeline(caller: Caller, chat_id: str) -> list[dict[str, Any]]:
    return list(reversed(caller.messages(chat_id)["messages"]))


def tool_results(caller: Caller, chat_id: str) -> list[dict[str, Any]]:
    return [p for m in timeline(caller, chat_id) if m["role"] == "tool" for p in m["content"]]


def db_chat(chat_id: str) -> Any:
    from models import db
    from models.chat.tables import Chat

    with db.session_scope() as session:
        chat = session.get(Chat, uuid.UUID(chat_id))
        assert chat is not None
        session.expunge(chat)
        return chat


def offered_tools(farm: Farm, marker: str, *, child: bool = False) -> set[str]:
    """The tools of the newest step request that mentions ``marker``, made for a subagent
    (its prompt carries the delegated-agent instruction) or for a root chat."""

    def wanted(request: dict[str, Any]) -> bool:
        text = json.dumps(request)
        return bool(request.get("tools")) and marker in text and child == (DELEGATED in text)

    request = next(r for r in reversed(farm.llm.requests) if wanted(r))
    return {t["function"]["name"] for t in request["tools"]}


@pytest.fixture
def single_thread_farm(farm: Farm, tmp_path: Path) -> Iterator[Farm]:
    """The farm with its usual worker paused and one worker with ONE thread serving every
    queue: anything that blocked a worker thread while waiting would stall it for good."""
    group = farm.worker.proc.pid  # the worker runs in its own session: pgid == pid
    os.killpg(group, signal.SIGSTOP)
    solo = None
    try:
        solo = start_worker(farm.env, tmp_path, hosts="solo", threads=1)
        yield farm
    finally:
        if solo is not None:
            solo.stop()
        os.killpg(group, signal.SIGCONT)


def test_two_children_report_through_wait_agent_on_a_single_thread(
    single_thread_farm: Farm, caller: Caller
) -> None:
    text = (
        spawn("[[delay_ms: 40]] [[reply: report from A: found three flaky tests]]", "Child A")
        + spawn("[[reply: report from B: the build is green]]", "Child B")
        + call("wait_agent", 2, chat_id="{{0.chat_id}}")
        + call("wait_agent", 2, chat_id="{{1.chat_id}}", timeout_seconds=60)
        + "[[after_tools: both children reported]]"
    )
    root = caller.create_chat(text)["id"]
    caller.wait_status(root, "waiting", "error", timeout=90)
    results = tool_results(caller, root)
    assert [r["tool_name"] for r in results] == [
        "spawn_agent",
        "spawn_agent",
        "wait_agent",
        "wait_agent",
    ]
    spawned = [r["result"] for r in results[:2]]
    assert [s["title"] for s in spawned] == ["Child A", "Child B"]
    assert all(s["status"] == "pending" for s in spawned)
    waited = [r["result"] for r in results[2:]]
    assert not any(r.get("is_error") for r in results), results
    assert [w["chat_id"] for w in waited] == [s["chat_id"] for s in spawned]
    assert waited[0]["report"] == "report from A: found three flaky tests"
    assert waited[1]["report"] == "report from B: the build is green"
    assert [w["status"] for w in waited] == ["waiting", "waiting"]
    assert timeline(caller, root)[-1]["content"][0]["text"] == "both children reported"

    # The children are real chats of the same owner, embedded under their root.
    got = caller.chat(root)
    assert sorted(c["id"] for c in got["children"]) == sorted(s["chat_id"] for s in spawned)
    for s in spawned:
        child = caller.chat(s["chat_id"])
        assert child["parent_chat_id"] == root and child["root_chat_id"] == root
        assert child["owner_id"] == str(caller.user_id)
        assert child["status"] == "waiting"


def test_child_chat_is_built_as_section_4_2_lists(farm: Farm, caller: Caller) -> None:
    from models import db
    from models.chat.tables import ChatMessage

    text = spawn("[[reply: done]] inspect the repository layout", "Layout") + "[[after_tools: ok]]"
    root = caller.create_chat(text, plan_mode="plan", labels={"team": "infra"})["id"]
    caller.wait_status(root, "waiting", "error", timeout=60)
    (spawned,) = [r["result"] for r in tool_results(caller, root)]
    child_id = spawned["chat_id"]
    caller.wait_status(child_id, "waiting", "error", timeout=60)
    child, parent = db_chat(child_id), db_chat(root)
    assert child.plan_mode == parent.plan_mode == "plan"  # inherited
    assert child.client_type == parent.client_type
    assert child.organization_id == parent.organization_id
    assert child.labels == {}
    assert child.last_model_config_id == parent.last_model_config_id
    with db.session_scope() as session:
        rows = session.exec(
            select(ChatMessage)
            .where(ChatMessage.chat_id == uuid.UUID(child_id))
            .order_by(ChatMessage.id)  # type: ignore[arg-type]
        ).all()
        shape = [(r.role, r.visibility, r.content[0].get("text", "")) for r in rows]
    roles = [(role, vis) for role, vis, _ in shape]
    assert roles[:3] == [("system", "model"), ("system", "model"), ("user", "both")]
    assert "delegated subagent" in shape[1][2]
    assert shape[2][2] == "[[reply: done]] inspect the repository layout"
    # A child in plan mode may only read and run read-only commands.
    offered = offered_tools(farm, "inspect the repository layout", child=True)
    assert offered == {"read_file", "execute", "process_output"}


def test_a_child_cannot_spawn_and_its_tools_exclude_orchestration(
    farm: Farm, caller: Caller
) -> None:
    grandchild = call("spawn_agent", 1, prompt="nested work") + "[[after_tools: child done]]"
    text = spawn(grandchild, "Nested") + call("wait_agent", 2, chat_id="{{0.chat_id}}")
    root = caller.create_chat(text)["id"]
    caller.wait_status(root, "waiting", "error", timeout=60)
    spawned, waited = tool_results(caller, root)
    child_id = spawned["result"]["chat_id"]
    assert waited["result"]["report"] == "child done"
    (refused,) = tool_results(caller, child_id)
    assert refused["is_error"] is True
    assert refused["result"] == {"error": "delegated chats cannot create child subagents"}
    offered = offered_tools(farm, "nested work", child=True)
    assert not offered & {
        "spawn_agent",
        "spawn_explore_agent",
        "wait_agent",
        "message_agent",
        "close_agent",
        "list_templates",
        "create_workspace",
        "propose_plan",
        "ask_user_question",
    }
    assert {"execute", "read_file", "write_file"} <= offered
    # The root, by contrast, is offered the orchestration tools (never computer use here).
    root_offered = offered_tools(farm, "Nested")
    assert {"spawn_agent", "spawn_explore_agent", "wait_agent", "message_agent"} <= root_offered
    assert "spawn_computer_use_agent" not in root_offered


def test_targets_must_be_descendants(farm: Farm, caller: Caller) -> None:
    text = spawn("[[reply: mine]]", "Mine") + "[[after_tools: spawned]]"
    first = caller.create_chat(text)["id"]
    caller.wait_status(first, "waiting", "error", timeout=60)
    (spawned,) = tool_results(caller, first)
    foreign = spawned["result"]["chat_id"]
    probe = (
        call("wait_agent", chat_id=foreign)
        + call("close_agent", chat_id=first)
        + call("message_agent", chat_id="not-a-uuid", message="hi")
        + "[[after_tools: probed]]"
    )
    other = caller.create_chat(probe)["id"]
    caller.wait_status(other, "waiting", "error", timeout=60)
    results = tool_results(caller, other)
    assert [r["result"]["error"] for r in results] == [
        "target chat is not a descendant of current chat",
        "target chat is not a descendant of current chat",
        "chat_id must be a valid UUID",
    ]
    assert all(r["is_error"] for r in results)


def test_close_then_message_then_wait_again(farm: Farm, caller: Caller) -> None:
    text = (
        spawn("[[tokens: 400 delay_ms=25]]", "Slow child")
        + call("close_agent", 2, chat_id="{{0.chat_id}}")
        + call("message_agent", 3, chat_id="{{0.chat_id}}", message="[[reply: v2]]")
        + call("wait_agent", 4, chat_id="{{0.chat_id}}")
        + "[[after_tools: finished]]"
    )
    root = caller.create_chat(text)["id"]
    caller.wait_status(root, "waiting", "error", timeout=90)
    spawned, closed, messaged, waited = (r["result"] for r in tool_results(caller, root))
    child_id = spawned["chat_id"]
    assert closed == {
        "chat_id": child_id,
        "title": "Slow child",
        "terminated": True,
        "status": "waiting",
    }
    assert messaged["chat_id"] == child_id and messaged["interrupted"] is False
    assert messaged["status"] == "pending"
    assert waited["report"] == "v2"
    texts = [m["content"][0].get("text") for m in timeline(caller, child_id)]
    assert "[[reply: v2]]" in texts  # the follow-up arrived as the owner's message


def test_children_run_in_parallel_on_the_farm(farm: Farm, caller: Caller) -> None:
    slow = "[[tokens: 60 delay_ms=40]]"
    text = (
        spawn(slow + " first", "P1")
        + spawn(slow + " second", "P2")
        + call("wait_agent", 2, chat_id="{{0.chat_id}}")
        + call("wait_agent", 2, chat_id="{{1.chat_id}}")
    )
    root = caller.create_chat(text)["id"]
    # Both children are seen running at the same moment.
    seen_together = False
    deadline = time.monotonic() + 60
    while not seen_together and time.monotonic() < deadline:
        kids = caller.chat(root).get("children") or []
        seen_together = len(kids) == 2 and all(k["status"] == "running" for k in kids)
        time.sleep(0.05)
    assert seen_together
    caller.wait_status(root, "waiting", "error", timeout=60)
    reports = [r["result"]["report"] for r in tool_results(caller, root)[2:]]
    assert all(r.startswith("tok0 tok1") for r in reports)


def test_archiving_the_root_archives_its_children(farm: Farm, caller: Caller) -> None:
    root = caller.create_chat(spawn("[[reply: hi]]", "Kid") + "[[after_tools: ok]]")["id"]
    caller.wait_status(root, "waiting", "error", timeout=60)
    (spawned,) = tool_results(caller, root)
    child_id = spawned["result"]["chat_id"]
    assert caller.http.post(f"{CHATS}/{root}/archive").status_code == 204
    assert caller.chat(child_id)["archived"] is True
    assert caller.http.post(f"{CHATS}/{root}/unarchive").status_code == 204
    assert caller.chat(child_id)["archived"] is False


def test_computer_use_agent_needs_an_anthropic_key_and_the_desktop(
    farm: Farm, caller: Caller
) -> None:
    from models import db
    from models.crypto import SecretBox
    from models.providers.tables import ChatProvider

    owner = make_caller(farm.base_url, roles=OWNER_ROLES)
    url = f"{CHATS}/config/desktop-enabled"
    assert caller.http.get(url).json() == {"enable_desktop": False}
    assert caller.http.put(url, json={"enable_desktop": True}).status_code == 403
    assert owner.http.put(url, json={"enable_desktop": True}).status_code == 204
    provider_id = None
    try:
        first = caller.create_chat("desktop only [[reply: a]]")
        caller.wait_status(first["id"], "waiting", timeout=60)
        assert "spawn_computer_use_agent" not in offered_tools(farm, "desktop only")
        box = SecretBox([farm.env["AGENTFARM_ENCRYPTION_KEYS"]])
        with db.session_scope() as session:
            ciphertext, key_id = box.encrypt("sk-ant-test")
            row = ChatProvider(provider="anthropic", api_key=ciphertext, api_key_key_id=key_id)
            session.add(row)
            session.flush()
            provider_id = row.id
        chat = caller.create_chat(
            spawn("[[reply: child sees]]", "CU") + "desktop and key [[after_tools: ok]]"
        )
        caller.wait_status(chat["id"], "waiting", timeout=60)
        assert "spawn_computer_use_agent" in offered_tools(farm, "desktop and key")
        assert "spawn_computer_use_agent" not in offered_tools(farm, "child sees", child=True)
    finally:
        owner.http.put(url, json={"enable_desktop": False})
        if provider_id is not None:
            with db.session_scope() as session:
                session.delete(session.get(ChatProvider, provider_id))
        owner.http.close()
