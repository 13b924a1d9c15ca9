"""Worker-side integrations: PR-insight ingestion from git providers (``insights``) and MCP
tools, admin servers and workspace ``.mcp.json`` servers (``mcp``).

May import: ``workers.runtime``, ``agentfarm.integrations``/``tasks``/``chat_stream``,
``models``.
"""
