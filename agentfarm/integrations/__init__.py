"""Outside services both the API and the workers call: the GitHub REST client (PR insights)
and web push (VAPID keys, deferring and delivering notifications).

May import: ``agentfarm.tasks``, ``agentfarm.chat_stream``, ``models``, the base modules.
"""
