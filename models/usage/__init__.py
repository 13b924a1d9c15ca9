"""Spend: usage limits (per user, group and site) and their check at a step boundary, the
day rollups the scheduler maintains, and the cost reports built on them.

May import: other ``models`` packages and ``agentfarm.settings``.
"""
