"""The chat event stream, shared by both sides: stream keys, entry ids, encoding and the events
(``events``), the writer workers and the API append with (``writer``), and the reader the API
relays to WebSocket/SSE clients from (``reader``). One Redis stream per chat; Postgres stays
the truth.

May import: ``models`` (wire shapes), ``agentfarm.metrics``. Never a process package.
"""
