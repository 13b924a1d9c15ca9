"""The scheduler process: one leader (Redis lock) sends the catalog's periodic tasks on their
intervals and does nothing else. Imports ``agentfarm.tasks`` and ``agentfarm.settings``.
"""
