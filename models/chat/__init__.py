"""Chats: tables, the state machine (``transitions``: the only code that changes a chat's
status), rules for creating and messaging chats (``rules``), edits, listings and wire shapes,
and attached files. Plain functions over a caller-owned session.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
