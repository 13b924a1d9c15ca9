"""The worker process: actors (``actors``) over the turn (``turn``), tools (``tools``),
subagents (``subagents``) and integrations (``integrations``), with per-process resources in
``runtime`` and their boot in ``boot``. Imports ``agentfarm`` and ``models``; nothing imports
it but the CLI and ``workers.main``.
"""
