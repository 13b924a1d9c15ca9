"""The API process reads each chat's event stream once, whatever the number of its clients:
every client gets every event, in order, and the reader goes away with the last client."""

from __future__ import annotations

import threading
import time
from typing import Any

from tests.fixtures.farm import Caller, Farm, sse_events


def _feed(chat_id: str) -> Any:
    from agentfarm.chat_stream.reader import _hubs

    feeds = [hub.feeds.get(f"chat:{chat_id}:events") for hub in list(_hubs.values())]
    return next((f for f in feeds if f is not None), None)


def test_clients_of_one_chat_share_one_reader(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: warm]]")
    caller.wait_status(chat["id"], "waiting")
    clients = 6
    results: list[list[tuple[str, dict[str, Any]]]] = [[] for _ in range(clients)]

    def listen_live(i: int) -> None:
        seen: list[tuple[str, dict[str, Any]]] = []
        results[i] = seen

        def until(event: dict[str, Any]) -> bool:
            seen.append(("", event))
            parts = [e for _, e in seen if e["type"] == "message_part"]
            return (
                bool(parts)
                and event["type"] == "status"
                and (event["status"]["status"] == "waiting")
            )

        events = sse_events(farm.base_url, caller.token, chat["id"], until=until)
        results[i] = events

    threads = [threading.Thread(target=listen_live, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        feed = _feed(chat["id"])
        if feed is not None and len(feed.subscribers) == clients:
            break
        time.sleep(0.05)
    feed = _feed(chat["id"])
    assert feed is not None and len(feed.subscribers) == clients  # one reader, six clients
    caller.send(chat["id"], "[[tokens: 12 delay_ms=10]]")
    for t in threads:
        t.join(30)
    live = [
        [(i, e["message_part"]["part"]["text"]) for i, e in events if e["type"] == "message_part"]
        for events in results
    ]
    assert all(len(parts) == 12 for parts in live), [len(p) for p in live]
    assert all(parts == live[0] for parts in live)  # same entries, same order, same ids
    assert "".join(text for _, text in live[0]) == " ".join(f"tok{n}" for n in range(12))
    deadline = time.monotonic() + 10
    while _feed(chat["id"]) is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _feed(chat["id"]) is None  # the last client left: no reader any more
