"""Workspaces and templates: where a chat's files live and on which host, tracked background
processes, tool-call rows of steps, and site settings read by the tool set.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
