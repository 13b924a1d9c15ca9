"""The chat event stream, shared by both sides: stream keys and entry ids, event encoding, the
writer workers and the API append with (``events``), and the reader the API relays to
WebSocket/SSE clients from (``reader``). One Redis stream per chat; Postgres stays the truth.

May import: ``models`` (wire shapes), ``agentfarm.metrics``. Never a process package.
"""
