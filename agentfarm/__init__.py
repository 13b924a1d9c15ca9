"""agentfarm's shared base and entry points: settings, logging, metrics, the CLI, the dev farm,
and the packages every process shares (``tasks``, ``chat_stream``, ``integrations``).
"""
