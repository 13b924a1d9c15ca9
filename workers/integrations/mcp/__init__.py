"""MCP tools for chats, through the official ``mcp`` SDK (reference §6.2, §6.3).

- ``connect``: one SDK client connection (streamable HTTP, SSE or stdio) with timeouts.
- ``results``: MCP tool results (text, images, audio, structured content, resources) as the
  JSON tool results the chat stores.
- ``admin``: admin MCP servers: auth headers (OAuth2 refresh), cached tool lists, offering
  ``<slug>__<tool>`` and forwarding calls (on the default queue).
- ``workspace``: a workspace's ``.mcp.json``: discovery and calls on the workspace host, stdio
  servers under the same isolation as ``execute``.
"""
