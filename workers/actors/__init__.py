"""Dramatiq actors: thin shells, one per task of ``agentfarm.tasks.catalog``, that bind the log
context, call one plain function and record metrics. Nothing else imports them but
``workers.main``.
"""
