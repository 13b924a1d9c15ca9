"""LLM providers and model configs: the admin's providers and their keys, users' own keys and
the key policy that picks one, model call options, pricing and per-message costs.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
