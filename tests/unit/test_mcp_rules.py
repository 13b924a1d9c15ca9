"""Pure MCP rules: the token expiry buffer, the plan/explore table for MCP tools, tool
allow/deny lists, icon URLs, and how oversized media is kept out of a tool result."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from mcp_types import CallToolResult, ImageContent, TextContent

from agentfarm.mcp_oauth import needs_refresh
from models.chat.tables import Chat
from models.enums import ChatMode, PlanMode
from models.errors import BadRequest
from models.mcp.rules import clean_icon_url
from models.mcp.tables import MCPServerConfig
from workers.integrations.mcp import results
from workers.integrations.mcp.admin import allowed
from workers.tools.plan_mode import MCPTool, tool_refusal

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def test_tokens_are_refreshed_ten_seconds_before_they_expire() -> None:
    assert needs_refresh(None, NOW) is False  # no expiry given: used as is
    assert needs_refresh(NOW + timedelta(seconds=11), NOW) is False
    assert needs_refresh(NOW + timedelta(seconds=10), NOW) is True
    assert needs_refresh(NOW - timedelta(seconds=1), NOW) is True


def chat(*, plan: bool = False, child: bool = False, explore: bool = False) -> Chat:
    return Chat(
        owner_id=uuid.uuid4(),
        organization_id=uuid.uuid4(),
        plan_mode=PlanMode.PLAN if plan else None,
        parent_chat_id=uuid.uuid4() if child or explore else None,
        mode=ChatMode.EXPLORE if explore else None,
    )


@pytest.mark.parametrize(
    ("kind", "allowed_chats"),
    [
        (MCPTool(admin=False), {"normal", "child"}),
        (MCPTool(admin=True), {"normal", "child", "explore"}),
        (MCPTool(admin=True, allow_in_plan_mode=True), {"normal", "child", "explore", "plan"}),
    ],
)
def test_mcp_tools_in_plan_and_explore_mode(kind: MCPTool, allowed_chats: set[str]) -> None:
    chats = {
        "normal": chat(),
        "child": chat(child=True),
        "explore": chat(explore=True),
        "plan": chat(plan=True),
    }
    usable = {name for name, c in chats.items() if tool_refusal("srv__tool", c, kind) is None}
    assert usable == allowed_chats


def test_deny_list_wins_over_allow_list() -> None:
    server = MCPServerConfig(
        display_name="x", slug="x", url="http://x", tool_allow_list=["a", "b"], tool_deny_list=["b"]
    )
    assert [t for t in ("a", "b", "c") if allowed(server, t)] == ["a"]
    server.tool_allow_list = []
    assert [t for t in ("a", "b", "c") if allowed(server, t)] == ["a", "c"]


def test_icon_urls_are_deployment_relative() -> None:
    assert clean_icon_url(" /icon/github.svg ") == "/icon/github.svg"
    assert clean_icon_url("") == ""
    for bad in ("https://cdn.example/x.png", "//cdn.example/x.png", "icon.png", "data:image/png,x"):
        with pytest.raises(BadRequest):
            clean_icon_url(bad)


def test_oversized_media_is_replaced_by_a_note() -> None:
    huge = "A" * (results.MAX_MEDIA_CHARS + 4)
    answer = CallToolResult(
        content=[
            ImageContent(type="image", data=huge, mime_type="image/png"),
            TextContent(type="text", text="caption"),
        ]
    )
    result, is_error = results.convert(answer)
    assert not is_error and "data" not in result["content"][0]
    assert "over the limit" in result["content"][0]["note"]
    assert not results.has_media(result)
