"""Deployment-wide state: site config and user config tables, system prompts, the config
version that invalidates worker caches, storable-text rules and the audit log.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
