"""The SDK client connection (``workers.integrations.mcp.connect``) and result conversion
against real MCP servers: the test server over stdio, streamable HTTP and SSE, and the published
``mcp-server-time`` over stdio."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mcp import StdioServerParameters

from tests.fixtures.mcp_servers import (
    RunningServer,
    published_time_server,
    stdio_command,
)
from workers.integrations.mcp import connect, results
from workers.integrations.mcp.workspace_config import ServerSpec, read_config, target

TEST_TOOLS = {"echo", "forecast", "pixel", "documents", "whoami", "arguments", "write_file"}


def stdio(argv: list[str]) -> connect.StdioTarget:
    return connect.StdioTarget(StdioServerParameters(command=argv[0], args=argv[1:]))


def test_every_result_kind_over_stdio() -> None:
    server = stdio(stdio_command())
    listed = connect.list_tools(server, timeout=30)
    assert {t["name"] for t in listed} == TEST_TOOLS
    echo = next(t for t in listed if t["name"] == "echo")
    assert echo["input_schema"]["required"] == ["text"]

    text, failed = results.convert(connect.call_tool(server, "echo", {"text": "hi"}, timeout=30))
    assert not failed and text["content"] == [{"type": "text", "text": "echo: hi"}]

    forecast, _ = results.convert(
        connect.call_tool(server, "forecast", {"city": "Oslo"}, timeout=30)
    )
    assert forecast["structured_content"] == {"city": "Oslo", "celsius": 21.5}

    image, _ = results.convert(connect.call_tool(server, "pixel", {}, timeout=30))
    assert (
        image["content"][0]["type"] == "image" and image["content"][0]["mime_type"] == "image/png"
    )
    assert results.has_media(image) and not results.has_media(forecast)

    docs, _ = results.convert(connect.call_tool(server, "documents", {}, timeout=30))
    assert docs["content"] == [
        {
            "type": "resource",
            "uri": "file:///notes.txt",
            "mime_type": "text/plain",
            "text": "the notes",
        },
        {"type": "resource_link", "uri": "file:///big.bin", "name": "big.bin"},
    ]

    error, failed = results.convert(
        connect.call_tool(server, "forecast", {"city": "Atlantis"}, timeout=30)
    )
    assert failed and "city not found: Atlantis" in error["error"]


def test_headers_reach_the_server_over_http_and_sse(
    mcp_http_server: RunningServer,
    mcp_sse_server: RunningServer,
) -> None:
    for server, transport in ((mcp_http_server, "streamable_http"), (mcp_sse_server, "sse")):
        remote = connect.HttpTarget(server.url, transport, {"X-Api-Key": "k-1", "X-Team": "blue"})
        answer, _ = results.convert(connect.call_tool(remote, "whoami", {}, timeout=30))
        seen = answer["structured_content"] if "structured_content" in answer else None
        seen = seen or json.loads(answer["content"][0]["text"])
        assert seen["x_api_key"] == "k-1" and seen["x_team"] == "blue"
        assert any(h.get("x-team") == "blue" for h in server.headers_seen())


def test_unreachable_and_broken_servers_give_a_reason(tmp_path: Path) -> None:
    with pytest.raises(connect.MCPUnavailable, match="ConnectError|connect"):
        connect.list_tools(connect.HttpTarget("http://127.0.0.1:9/mcp"), timeout=5)
    with pytest.raises(connect.MCPUnavailable):
        connect.list_tools(stdio(["/bin/sh", "-c", "echo not json; exit 3"]), timeout=10)
    with pytest.raises(connect.MCPUnavailable, match="timed out"):
        connect.list_tools(stdio(["/bin/sh", "-c", "sleep 30"]), timeout=1)


def test_published_time_server_over_stdio() -> None:
    server = stdio(published_time_server())
    names = {t["name"] for t in connect.list_tools(server, timeout=60)}
    assert {"get_current_time", "convert_time"} <= names
    answer, failed = results.convert(
        connect.call_tool(server, "get_current_time", {"timezone": "Europe/Paris"}, timeout=60)
    )
    assert not failed
    assert "Europe/Paris" in json.dumps(answer)


def test_mcp_json_entries(tmp_path: Path) -> None:
    (tmp_path / ".mcp.json").write_text(
        json.dumps(
            {
                "mcpServers": {
                    "local": {"command": "srv", "args": ["--x"], "env": {"A": "1"}},
                    "remote": {"type": "http", "url": "http://127.0.0.1:1/mcp", "headers": {}},
                    "events": {"type": "sse", "url": "http://127.0.0.1:1/sse"},
                    "bad name": {"command": "x"},
                    "nothing": {"type": "stdio"},
                    "odd": {"type": "carrier-pigeon"},
                }
            }
        )
    )
    specs, errors, digest = read_config(tmp_path)
    assert [(s.name, s.kind) for s in specs] == [
        ("local", "stdio"),
        ("remote", "http"),
        ("events", "sse"),
    ]
    assert {e["server"] for e in errors} == {"bad name", "nothing", "odd"}
    assert len(digest) == 64
    assert read_config(tmp_path / "missing") == ([], [], "")
    (tmp_path / ".mcp.json").write_text("{not json")
    _, errors, _ = read_config(tmp_path)
    assert errors[0]["server"] == ".mcp.json"


def test_stdio_server_runs_as_a_workspace_process(tmp_path: Path) -> None:
    """Scrubbed environment plus the entry's env, in the workspace directory."""
    spool = tmp_path / "spool"
    spool.mkdir()
    root = tmp_path / "ws"
    root.mkdir()
    argv = stdio_command()
    spec = ServerSpec("t", "stdio", argv[0], tuple(argv[1:]), {"FROM_MCP_JSON": "yes"})
    where = {"root": root, "spool": spool, "sandboxed": False, "network": "open"}
    answer, _ = results.convert(connect.call_tool(target(spec, **where), "whoami", {}, timeout=30))
    seen = answer.get("structured_content") or json.loads(answer["content"][0]["text"])
    assert seen["cwd"] == str(root) and seen["from_config"] == "yes"
    assert seen["coder_chat_agent"] == "true"
    assert not [k for k in seen["env"] if k.startswith(("AGENTFARM_", "PYTEST"))]
