"""Workspace tools on the local host: processes, files, edits and the bubblewrap sandbox.

No database or broker: each test gets a workspace and a spool under pytest's ``tmp_path``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from workers.tools import WORKSPACE_TOOLS, WorkspaceContext, openai_tools, run_tool
from workers.tools import sandbox as sandbox_mod
from workers.tools.durations import format_duration, parse_duration
from workers.tools.processes import kill_chat_processes, strip_background

CHATS = ("chat-a", "chat-b")


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[WorkspaceContext]:
    root = tmp_path / "ws"
    spool = tmp_path / "spool"
    root.mkdir()
    spool.mkdir()
    context = WorkspaceContext(root=root, spool=spool, chat_id=CHATS[0])
    yield context
    for chat in CHATS:
        kill_chat_processes(WorkspaceContext(root=root, spool=spool, chat_id=chat))


def ok(name: str, ctx: WorkspaceContext, args: dict[str, Any]) -> dict[str, Any]:
    result, is_error = run_tool(name, ctx, args)
    assert not is_error, result
    return result


def err(name: str, ctx: WorkspaceContext, args: dict[str, Any]) -> str:
    result, is_error = run_tool(name, ctx, args)
    assert is_error, result
    return str(result["error"])


# --- execute and tracked processes -----------------------------------------------------------


def test_execute_echo_and_failure(ctx: WorkspaceContext) -> None:
    result = ok("execute", ctx, {"command": "echo hello; pwd"})
    assert result["success"] is True
    assert result["exit_code"] == 0
    assert result["output"] == f"hello\n{os.path.realpath(ctx.root)}\n"
    assert isinstance(result["wall_duration_ms"], int)

    failed = ok("execute", ctx, {"command": "echo oops >&2; exit 3"})
    assert failed["success"] is False
    assert failed["exit_code"] == 3
    assert failed["output"] == "oops\n"


def test_execute_workdir_and_file_dump_note(ctx: WorkspaceContext) -> None:
    (ctx.root / "sub").mkdir()
    (ctx.root / "sub" / "f.txt").write_text("x\n")
    result = ok("execute", ctx, {"command": "cat f.txt", "workdir": "sub"})
    assert result["output"] == "x\n"
    assert "read_file" in result["note"]
    assert "outside the workspace" in err("execute", ctx, {"command": "true", "workdir": "/etc"})


def test_execute_argument_errors(ctx: WorkspaceContext) -> None:
    assert "invalid timeout" in err("execute", ctx, {"command": "true", "timeout": "10"})
    assert "greater than zero" in err("execute", ctx, {"command": "true", "timeout": "0s"})
    assert "command is required" in err("execute", ctx, {})
    assert "timeout must be of type string" in err(
        "execute", ctx, {"command": "true", "timeout": 5}
    )


def test_env_is_scrubbed(ctx: WorkspaceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTFARM_SECRET_X", "leak1")
    monkeypatch.setenv("OPENAI_API_KEY", "leak2")
    monkeypatch.setenv("SOME_WORKER_VAR", "leak3")
    context = WorkspaceContext(ctx.root, ctx.spool, ctx.chat_id, extra_env={"FROM_TEMPLATE": "1"})
    output = ok("execute", context, {"command": "env"})["output"]
    env = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
    assert "AGENTFARM_SECRET_X" not in env and "OPENAI_API_KEY" not in env
    assert "SOME_WORKER_VAR" not in env and "leak" not in output
    for key, value in {
        "CODER_CHAT_AGENT": "true",
        "GIT_EDITOR": "true",
        "GIT_SEQUENCE_EDITOR": "true",
        "EDITOR": "true",
        "VISUAL": "true",
        "GIT_TERMINAL_PROMPT": "0",
        "NO_COLOR": "1",
        "TERM": "dumb",
        "PAGER": "cat",
        "GIT_PAGER": "cat",
        "FROM_TEMPLATE": "1",
        "SHELL": "/bin/sh",
        "HOME": os.path.realpath(ctx.root),
    }.items():
        assert env.get(key) == value, key


def test_timeout_keeps_running_then_process_output(ctx: WorkspaceContext) -> None:
    result = ok("execute", ctx, {"command": "echo start; sleep 2; echo done", "timeout": "1s"})
    assert result["success"] is False
    assert result["error"] == "command timed out after 1s"
    assert result["exit_code"] == -1
    assert result["output"] == "start\n"
    pid = result["background_process_id"]
    assert len(pid) == 12

    later = ok("process_output", ctx, {"process_id": pid, "wait_timeout": "5s"})
    assert later["success"] is True
    assert later["exit_code"] == 0
    assert later["output"] == "start\ndone\n"


def test_background_and_signal(ctx: WorkspaceContext) -> None:
    started = ok("execute", ctx, {"command": "echo up; sleep 60 &"})
    assert started["success"] is True
    pid = started["background_process_id"]

    snap = ok("process_output", ctx, {"process_id": pid, "wait_timeout": "0s"})
    assert snap["success"] is True and "exit_code" not in snap
    assert snap["note"] == "process is still running"

    other = ok("execute", ctx, {"command": "sleep 60", "run_in_background": True})
    assert other["background_process_id"] != pid

    sent = ok("process_signal", ctx, {"process_id": pid, "signal": "kill"})
    assert sent == {"success": True, "message": f'signal "kill" sent to process {pid}'}
    done = ok("process_output", ctx, {"process_id": pid, "wait_timeout": "5s"})
    assert done["exit_code"] == 137 and done["success"] is False
    assert done["output"] == "up\n"

    bad = err("process_signal", ctx, {"process_id": pid, "signal": "hup"})
    assert bad == 'signal must be "terminate" or "kill"'
    assert "already exited" in err("process_signal", ctx, {"process_id": pid, "signal": "kill"})
    ok("process_signal", ctx, {"process_id": other["background_process_id"], "signal": "terminate"})
    term = ok("process_output", ctx, {"process_id": other["background_process_id"]})
    assert term["exit_code"] == 143


def test_process_list_is_per_chat(ctx: WorkspaceContext) -> None:
    ok("execute", ctx, {"command": "true"})
    running = ok("execute", ctx, {"command": "sleep 60 &"})["background_process_id"]
    listed = ok("process_list", ctx, {})["processes"]
    assert [p["command"] for p in listed] == ["true", "sleep 60"]
    assert listed[0]["status"] == "exited" and listed[0]["exit_code"] == 0
    assert listed[1] == {
        "id": running,
        "command": "sleep 60",
        "status": "running",
        "started_at": listed[1]["started_at"],
    }

    other = WorkspaceContext(root=ctx.root, spool=ctx.spool, chat_id=CHATS[1])
    assert ok("process_list", other, {}) == {"processes": []}
    assert "not found" in err("process_output", other, {"process_id": running})
    assert "not found" in err("process_signal", other, {"process_id": running, "signal": "kill"})
    assert "not found" in err("process_output", ctx, {"process_id": "../../etc"})


def test_process_outlives_the_worker_that_started_it(ctx: WorkspaceContext) -> None:
    script = (
        "import sys; from pathlib import Path;"
        "from workers.tools import WorkspaceContext, run_tool;"
        "ctx = WorkspaceContext(Path(sys.argv[1]), Path(sys.argv[2]), 'chat-a');"
        "cmd = 'for i in 1 2 3; do echo $i; sleep 0.3; done &';"
        "print(run_tool('execute', ctx, {'command': cmd})[0]['background_process_id'])"
    )
    starter = subprocess.run(
        [sys.executable, "-c", script, str(ctx.root), str(ctx.spool)],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    pid = starter.stdout.strip()  # the starting worker process has exited by now
    result = ok("process_output", ctx, {"process_id": pid, "wait_timeout": "5s"})
    assert result["output"] == "1\n2\n3\n" and result["exit_code"] == 0
    meta = json.loads((ctx.spool / pid / "meta.json").read_text())
    assert (
        meta["chat_id"] == "chat-a"
        and meta["command"] == "for i in 1 2 3; do echo $i; sleep 0.3; done"
    )
    for key in ("workdir", "started_at", "pid", "pgid", "sandbox"):
        assert key in meta


def test_output_truncated_on_utf8_boundary(ctx: WorkspaceContext) -> None:
    command = "python3 -c \"import sys; sys.stdout.write('é' * 40000 + 'ü' * 40000)\""
    result = ok("execute", ctx, {"command": command})
    assert result["truncated"] is True
    data = result["output"].encode("utf-8")
    assert len(data) <= 32 * 1024
    assert "\ufffd" not in result["output"]
    assert result["output"].startswith("é") and result["output"].endswith("ü")
    assert "bytes of output omitted" in result["output"]


def test_durations_and_background_marker() -> None:
    assert parse_duration("500ms") == 0.5
    assert parse_duration("1m30s") == 90
    assert parse_duration("2h") == 7200
    assert format_duration(1) == "1s" and format_duration(90) == "1m30s"
    assert strip_background("sleep 1 &") == ("sleep 1", True)
    assert strip_background("a && b")[1] is False
    assert strip_background("a |&")[1] is False
    assert strip_background("a &&")[1] is False


# --- files -----------------------------------------------------------------------------------


def test_read_file_numbering_offset_limit(ctx: WorkspaceContext) -> None:
    (ctx.root / "f.txt").write_text("".join(f"line {i}\n" for i in range(1, 11)))
    whole = ok("read_file", ctx, {"path": "f.txt"})
    assert whole["content"].splitlines()[0] == "     1\tline 1"
    assert whole["total_lines"] == 10 and whole["has_more"] is False
    part = ok("read_file", ctx, {"path": str(ctx.root / "f.txt"), "offset": 3, "limit": 2})
    assert part["content"] == "     3\tline 3\n     4\tline 4"
    assert part["has_more"] is True and part["end_line"] == 4
    assert "offset=5" in part["note"]


def test_read_file_refusals(ctx: WorkspaceContext) -> None:
    (ctx.root / "bin").write_bytes(b"abc\x00def")
    assert "binary" in err("read_file", ctx, {"path": "bin"})
    assert "directory" in err("read_file", ctx, {"path": "."})
    assert "does not exist" in err("read_file", ctx, {"path": "missing.txt"})
    assert "outside the workspace" in err("read_file", ctx, {"path": "../../etc/passwd"})
    assert "outside the workspace" in err("read_file", ctx, {"path": "/etc/passwd"})
    os.symlink("/etc", ctx.root / "outside")
    assert "outside the workspace" in err("read_file", ctx, {"path": "outside/passwd"})
    assert "outside the workspace" in err("write_file", ctx, {"path": "outside/x", "content": ""})


def test_write_file_creates_dirs(ctx: WorkspaceContext) -> None:
    assert ok("write_file", ctx, {"path": "a/b/c.txt", "content": "hi\n"}) == {"ok": True}
    assert (ctx.root / "a" / "b" / "c.txt").read_text() == "hi\n"
    target = ctx.root / "a" / "b" / "c.txt"
    target.chmod(0o755)
    ok("write_file", ctx, {"path": str(target), "content": "again"})
    assert target.read_text() == "again" and target.stat().st_mode & 0o777 == 0o755
    assert [p.name for p in target.parent.iterdir()] == ["c.txt"]


# --- edit_files ------------------------------------------------------------------------------


def test_edit_files_happy_path_and_atomicity(ctx: WorkspaceContext) -> None:
    one, two = ctx.root / "one.py", ctx.root / "two.py"
    one.write_text("a = 1\nb = 2\n")
    two.write_text("x = 1\n")
    result = ok(
        "edit_files",
        ctx,
        {
            "edits": [
                {"path": str(one), "old_text": "a = 1", "new_text": "a = 10"},
                {"path": str(one), "old_text": "a = 10\nb = 2", "new_text": "a = 10\nb = 20"},
                {"path": "two.py", "old_text": "x = 1", "new_text": "x = 2"},
            ]
        },
    )
    assert result["ok"] is True
    assert one.read_text() == "a = 10\nb = 20\n" and two.read_text() == "x = 2\n"
    diff = result["files"][0]["diff"]
    assert result["files"][0]["path"] == str(one.resolve())
    assert "--- a/one.py" in diff and "-a = 1\n" in diff and "+b = 20\n" in diff

    message = err(
        "edit_files",
        ctx,
        {
            "edits": [
                {"path": str(one), "old_text": "a = 10", "new_text": "a = 11"},
                {"path": str(two), "old_text": "x = 2", "new_text": "x = 3"},
                {"path": str(one), "old_text": "missing", "new_text": "y"},
            ]
        },
    )
    assert message.startswith("edit 3") and "not found" in message
    assert one.read_text() == "a = 10\nb = 20\n" and two.read_text() == "x = 2\n"


def test_edit_files_whitespace_tolerant(ctx: WorkspaceContext) -> None:
    path = ctx.root / "m.py"
    path.write_text("def f():\n    if x:\n        return 1\n    return 2\n")
    old = "if x:\n    return 1\n"
    new = "if x:\n    return 10\nelse:\n    return 0\n"
    ok("edit_files", ctx, {"edits": [{"path": "m.py", "old_text": old, "new_text": new}]})
    expected = "def f():\n    if x:\n        return 10\n    else:\n        return 0\n    return 2\n"
    assert path.read_text() == expected


def test_edit_files_replace_all_and_errors(ctx: WorkspaceContext) -> None:
    path = ctx.root / "r.txt"
    path.write_text("foo bar foo\nfoo\n")
    message = err(
        "edit_files", ctx, {"edits": [{"path": "r.txt", "old_text": "foo", "new_text": "x"}]}
    )
    assert "found 3 times" in message
    edit = {"path": "r.txt", "old_text": "foo", "new_text": "baz", "replace_all": True}
    ok("edit_files", ctx, {"edits": [edit]})
    assert path.read_text() == "baz bar baz\nbaz\n"
    same = {"path": "r.txt", "old_text": "bar", "new_text": "bar"}
    assert "must differ" in err("edit_files", ctx, {"edits": [same]})
    assert "non-empty" in err("edit_files", ctx, {"edits": []})
    assert "edits[0].new_text is required" in err(
        "edit_files", ctx, {"edits": [{"path": "r.txt", "old_text": "bar"}]}
    )


def test_registry_shapes() -> None:
    assert set(WORKSPACE_TOOLS) == {
        "execute",
        "process_output",
        "process_list",
        "process_signal",
        "read_file",
        "write_file",
        "edit_files",
    }
    decls = openai_tools(["execute", "read_file", "nope"])
    assert [d["function"]["name"] for d in decls] == ["execute", "read_file"]
    assert decls[0]["type"] == "function"
    assert decls[0]["function"]["parameters"]["required"] == ["command"]


def test_unexpected_error_is_reported(
    ctx: WorkspaceContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*_: object) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr("workers.tools.files.resolve_path", boom)
    result, is_error = run_tool("write_file", ctx, {"path": "x", "content": ""})
    assert is_error and result == {"error": "internal error running write_file: RuntimeError"}


# --- sandbox ---------------------------------------------------------------------------------


def _sandboxed(ctx: WorkspaceContext, network: str) -> WorkspaceContext:
    reason = sandbox_mod.unavailable_reason(network)
    if reason is not None:
        pytest.skip(reason)
    return WorkspaceContext(ctx.root, ctx.spool, ctx.chat_id, sandbox=True, network=network)


def test_sandbox_filesystem(ctx: WorkspaceContext) -> None:
    box = _sandboxed(ctx, "open")
    result = ok("execute", box, {"command": "touch /usr/agentfarm-x"})
    assert result["success"] is False and "Read-only file system" in result["output"]
    assert not Path("/usr/agentfarm-x").exists()
    inside = ok("execute", box, {"command": "mkdir -p d && echo hi > d/f && cat d/f"})
    assert inside["success"] is True and (ctx.root / "d" / "f").read_text() == "hi\n"
    spool = ok("execute", box, {"command": f"ls -A {ctx.spool} | wc -l"})
    assert spool["output"].strip() == "0"  # other processes' output is hidden


def test_sandbox_network_none(ctx: WorkspaceContext) -> None:
    box = _sandboxed(ctx, "none")
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        probe = f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)"
        command = f'python3 -c "{probe}"'
        assert ok("execute", ctx, {"command": command})["success"] is True
        blocked = ok("execute", box, {"command": command})
        assert blocked["success"] is False and blocked["exit_code"] == 1


def test_sandbox_background_kill(ctx: WorkspaceContext) -> None:
    box = _sandboxed(ctx, "open")
    pid = ok("execute", box, {"command": "sleep 60 & sleep 60 &"})["background_process_id"]
    ok("process_signal", box, {"process_id": pid, "signal": "kill"})
    assert ok("process_output", box, {"process_id": pid, "wait_timeout": "5s"})["exit_code"] == 137


def test_sandbox_unavailable(ctx: WorkspaceContext, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_mod, "BWRAP", "/nonexistent/bwrap")
    box = WorkspaceContext(ctx.root, ctx.spool, ctx.chat_id, sandbox=True)
    message = err("execute", box, {"command": "touch ran"})
    assert message == (
        "sandboxing is required by this workspace's template but bubblewrap is unavailable: "
        "/nonexistent/bwrap not found"
    )
    time.sleep(0.1)
    assert not (ctx.root / "ran").exists()
    assert list(ctx.spool.iterdir()) == []
