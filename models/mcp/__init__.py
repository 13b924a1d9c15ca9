"""MCP server configs: admin-registered servers, users' OAuth tokens for them, discovered tools
of workspaces' ``.mcp.json`` servers, and which servers a chat uses.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
