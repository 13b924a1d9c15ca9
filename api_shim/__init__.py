"""The HTTP process: Coder's Chats API (routes), auth, the stream relay to WebSocket/SSE
clients. Writes Postgres, sends tasks by name through ``agentfarm.tasks`` after commit,
reads chat streams through ``agentfarm.chat_stream``; never imports ``workers``.
"""
