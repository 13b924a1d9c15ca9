"""Workspace MCP end to end: a ``.mcp.json`` in the workspace names the test server (stdio),
the published ``mcp-server-time`` (stdio), the test server over HTTP and a broken server; the
workspace host discovers them and the scripted model calls their tools as ``<server>__<tool>``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from models import db
from tests.e2e.test_tools import create_workspace, make_template, tool, tool_results, turn
from tests.fixtures.farm import Caller, Farm
from tests.fixtures.mcp_servers import (
    Admin,
    RunningServer,
    offered,
    published_time_server,
    seen,
    stdio_command,
)


def write_mcp_json(directory: str, servers: dict[str, Any]) -> None:
    (Path(directory) / ".mcp.json").write_text(json.dumps({"mcpServers": servers}))


def stdio_entry(argv: list[str], **env: str) -> dict[str, Any]:
    return {"command": argv[0], "args": argv[1:], "env": env}


def discovery(workspace_id: str) -> dict[str, Any]:
    with db.session_scope() as session:
        row = session.execute(
            sa.text("SELECT tools, errors FROM workspace_mcp_discoveries WHERE workspace_id = :w"),
            {"w": workspace_id},
        ).one()
    return {"tools": row.tools, "errors": row.errors}


def test_mcp_json_servers_are_discovered_and_called(
    farm: Farm, mcp_admin: Admin, caller: Caller, mcp_http_server: RunningServer
) -> None:
    _, workspace = create_workspace(caller, make_template(mcp_admin.caller))
    write_mcp_json(
        workspace["directory"],
        {
            "kit": stdio_entry(stdio_command(), FROM_MCP_JSON="kit-env"),
            "clock": stdio_entry(published_time_server()),
            "remote": {"type": "http", "url": mcp_http_server.url, "headers": {"X-Team": "ws"}},
            "broken": {"command": "/bin/false"},
        },
    )
    # A chat bound to the workspace: its first step has the host discover the servers.
    text = (
        tool("kit__whoami")
        + tool("kit__forecast", city="Rome")
        + tool("clock__get_current_time", timezone="UTC")
        + tool("remote__whoami")
        + "ws-marker [[after_tools: done]]"
    )
    chat_id = turn(caller, None, text, workspace_id=workspace["workspace_id"])
    names = set(offered(farm, "ws-marker", ""))
    assert {"kit__echo", "kit__whoami", "clock__get_current_time", "remote__whoami"} <= names
    assert not any(n.startswith("broken__") for n in names)
    found = discovery(workspace["workspace_id"])
    assert [e["server"] for e in found["errors"]] == ["broken"]

    who, forecast, clock, remote = tool_results(caller, chat_id)
    assert not any(r.get("is_error") for r in (who, forecast, clock, remote)), (who, clock)
    assert "mcp_server_config_id" not in who  # a workspace tool, not an admin server's
    kit = seen(who)
    assert kit["cwd"] == workspace["directory"] and kit["from_config"] == "kit-env"
    assert kit["coder_chat_agent"] == "true"
    assert not [k for k in kit["env"] if k.startswith("AGENTFARM_")]
    assert forecast["result"]["structured_content"] == {"city": "Rome", "celsius": 21.5}
    assert "UTC" in json.dumps(clock["result"])
    assert seen(remote)["x_team"] == "ws"


def test_workspace_mcp_tools_are_excluded_in_plan_mode(
    farm: Farm, mcp_admin: Admin, caller: Caller
) -> None:
    _, workspace = create_workspace(caller, make_template(mcp_admin.caller))
    write_mcp_json(workspace["directory"], {"kit": stdio_entry(stdio_command())})
    chat_id = turn(caller, None, "ws-normal [[reply: ok]]", workspace_id=workspace["workspace_id"])
    assert "kit__echo" in offered(farm, "ws-normal", "kit__")
    resp = caller.http.patch(f"/api/experimental/chats/{chat_id}", json={"plan_mode": "plan"})
    assert resp.status_code == 204
    turn(caller, chat_id, tool("kit__echo", text="hi") + "ws-plan [[after_tools: done]]")
    assert offered(farm, "ws-plan", "kit__") == {}
    (refused,) = tool_results(caller, chat_id)
    assert refused["is_error"] is True and "plan mode" in refused["result"]["error"]


@pytest.mark.skipif(
    any(Path(p).resolve().is_relative_to("/tmp") for p in (sys.prefix, __file__)),
    reason=(
        "the sandbox gives tools a private, empty /tmp, and the test MCP server (this "
        "checkout's script and .venv) lives under /tmp here, so it cannot start inside it"
    ),
)
def test_stdio_servers_share_the_sandbox_of_execute(
    farm: Farm, mcp_admin: Admin, caller: Caller
) -> None:
    from workers.tools.sandbox import unavailable_reason

    reason = unavailable_reason("none")
    if reason is not None:
        pytest.skip(f"bubblewrap cannot sandbox on this machine: {reason}")
    template = make_template(mcp_admin.caller, sandbox=True, network_policy="none")
    _, workspace = create_workspace(caller, template)
    write_mcp_json(
        workspace["directory"],
        {
            "kit": stdio_entry(stdio_command()),
            "remote": {"type": "http", "url": "http://127.0.0.1:9/mcp"},
        },
    )
    text = (
        tool("kit__write_file", path="inside.txt", text="from the sandbox")
        + tool("kit__write_file", path="/usr/agentfarm-mcp-x", text="escape")
        + "ws-sandbox [[after_tools: done]]"
    )
    chat_id = turn(caller, None, text, workspace_id=workspace["workspace_id"])
    inside, outside = tool_results(caller, chat_id)
    assert not inside.get("is_error"), inside
    assert (Path(workspace["directory"]) / "inside.txt").read_text() == "from the sandbox"
    assert outside["is_error"] is True and "Read-only file system" in outside["result"]["error"]
    assert not Path("/usr/agentfarm-mcp-x").exists()
    errors = discovery(workspace["workspace_id"])["errors"]
    assert errors == [
        {
            "server": "remote",
            "error": "this workspace's template has no network; HTTP servers are refused",
        }
    ]
