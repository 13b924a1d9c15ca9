"""Subagents: child chats a root chat spawns, messages, waits for and closes (reference §4.2).
``spawn`` creates a child (the ``subagent.spawn`` task), ``control`` runs wait/message/close,
``specs`` holds the tool definitions and limits.

May import: ``workers.tools.calls``/``plan_mode``, ``workers.runtime``, ``agentfarm.tasks``,
``agentfarm.chat_stream``, ``models``.
"""
