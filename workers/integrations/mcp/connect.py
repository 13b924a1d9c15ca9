"""One MCP client connection through the official SDK, with timeouts, from synchronous code.

Actors run in worker threads without an event loop; each operation opens a connection, does
its work and closes it inside ``asyncio.run`` (a stdio server is started and stopped with it).
Every failure (spawn, connect, handshake, timeout, protocol error) becomes
:class:`MCPUnavailable` with a one-line reason.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import IO, Any, TypeVar

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.sse import sse_client
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

T = TypeVar("T")

# OpenAI-style function names: the model is only offered tools whose full name fits.
TOOL_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")


class MCPUnavailable(Exception):
    """The server could not be reached or did not answer in time (message: the reason)."""


@dataclass(frozen=True)
class HttpTarget:
    url: str
    transport: str = "streamable_http"  # or "sse"
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StdioTarget:
    params: StdioServerParameters
    errlog: IO[str] | None = None  # where the server's stderr goes


Target = HttpTarget | StdioTarget


@asynccontextmanager
async def _client(target: Target, timeout: float) -> AsyncIterator[Client]:
    if isinstance(target, StdioTarget):
        transport: Any = (
            stdio_client(target.params, errlog=target.errlog)  # type: ignore[arg-type]
            if target.errlog is not None
            else stdio_client(target.params)
        )
        async with Client(transport, read_timeout_seconds=timeout, cache=None) as client:
            yield client
        return
    if target.transport == "sse":
        transport = sse_client(
            target.url, headers=dict(target.headers), timeout=timeout, sse_read_timeout=timeout
        )
        async with Client(transport, read_timeout_seconds=timeout, cache=None) as client:
            yield client
        return
    http = httpx2.AsyncClient(headers=dict(target.headers), timeout=httpx2.Timeout(timeout))
    async with http:
        transport = streamable_http_client(target.url, http_client=http)
        async with Client(transport, read_timeout_seconds=timeout, cache=None) as client:
            yield client


def _reason(exc: BaseException) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, httpx2.HTTPStatusError):
        # Not the URL: an admin's URL may carry a key in its query string.
        return f"HTTP {exc.response.status_code}"
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _run(target: Target, timeout: float, work: Callable[[Client], Awaitable[T]]) -> T:
    async def main() -> T:
        with anyio.fail_after(timeout):
            async with _client(target, timeout) as client:
                return await work(client)

    try:
        return asyncio.run(main())
    except Exception as exc:
        raise MCPUnavailable(_reason(exc)) from exc


def list_tools(target: Target, *, timeout: float) -> list[dict[str, Any]]:
    """The server's tools as ``{name, description, input_schema}`` (every page)."""

    async def work(client: Client) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(100):  # a paginator that never ends cannot hang us
            page = await client.list_tools(cursor=cursor)
            tools += [
                {
                    "name": t.name,
                    "description": t.description or "",
                    "input_schema": t.input_schema or {"type": "object", "properties": {}},
                }
                for t in page.tools
            ]
            cursor = page.next_cursor
            if not cursor:
                break
        return tools

    return _run(target, timeout, work)


def call_tool(
    target: Target, name: str, arguments: dict[str, Any], *, timeout: float
) -> CallToolResult:
    """Call one tool; a tool-level failure comes back as ``is_error``, not an exception."""

    async def work(client: Client) -> CallToolResult:
        return await client.call_tool(name, arguments, read_timeout_seconds=timeout)

    return _run(target, timeout, work)
