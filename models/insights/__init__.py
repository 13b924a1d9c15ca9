"""PR insights: a chat's git branch and origin, the pull request found for it (diff status),
external-auth links, and the insights report over them.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
