"""Who may do what: users, organizations, groups, API tokens, site roles and RBAC checks, and
the first-start bootstrap of the owner account.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
