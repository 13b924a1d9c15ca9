"""Queue management (delete, promote) and message edits against the real farm."""

from __future__ import annotations

import time
from typing import Any

import httpx

from tests.fixtures.farm import Caller, Farm, sse_events

API = "/api/experimental/chats"
LONG_RUN = "[[tokens: 400 delay_ms=20]]"


def is_part(text: str) -> Any:
    return lambda e: e["type"] == "message_part" and e["message_part"]["part"].get("text") == text


def texts(message: dict[str, Any]) -> str:
    return "".join(p.get("text", "") for p in message.get("content", []) if p["type"] == "text")


def history(caller: Caller, chat_id: str) -> list[tuple[str, str]]:
    """(role, text) of the visible messages, oldest first."""
    msgs = reversed(caller.messages(chat_id)["messages"])
    return [(m["role"], texts(m)) for m in msgs]


def wait_until(check: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def running_chat_with_queue(caller: Caller, farm: Farm, *queued: str) -> tuple[str, list[int]]:
    """A chat streaming a long reply, with ``queued`` follow-ups waiting in its queue."""
    chat = caller.create_chat(LONG_RUN)
    sse_events(farm.base_url, caller.token, chat["id"], until=is_part("tok3 "))
    ids = []
    for text in queued:
        sent = caller.send(chat["id"], text)
        assert sent["queued"] is True
        ids.append(sent["queued_message"]["id"])
    return chat["id"], ids


def test_routes_are_in_openapi(farm: Farm) -> None:
    paths = httpx.get(f"{farm.base_url}/openapi.json").json()["paths"]
    for path, method in (
        (f"{API}/{{chat}}/queue/{{queuedMessage}}", "delete"),
        (f"{API}/{{chat}}/queue/{{queuedMessage}}/promote", "post"),
        (f"{API}/{{chat}}/messages/{{message}}", "patch"),
    ):
        assert paths[path][method]["summary"], path


# ---------------------------------------------------------------- delete


def test_delete_queued_message(farm: Farm, caller: Caller) -> None:
    chat_id, (first, second) = running_chat_with_queue(caller, farm, "one", "two")
    resp = caller.http.delete(f"{API}/{chat_id}/queue/{first}")
    assert resp.status_code == 204, resp.text
    assert resp.content == b""
    assert [q["id"] for q in caller.messages(chat_id)["queued_messages"]] == [second]
    events = sse_events(
        farm.base_url,
        caller.token,
        chat_id,
        last_event_id="0-0",
        until=lambda e: (
            e["type"] == "queue_update" and [q["id"] for q in e["queued_messages"]] == [second]
        ),
    )
    updates = [e["queued_messages"] for _, e in events if e["type"] == "queue_update"]
    assert [[q["id"] for q in u] for u in updates] == [[first], [first, second], [second]]
    # Deleting it again is a 404.
    assert caller.http.delete(f"{API}/{chat_id}/queue/{first}").status_code == 404
    caller.http.post(f"{API}/{chat_id}/interrupt")


def test_delete_queued_message_errors(farm: Farm, caller: Caller, other_caller: Caller) -> None:
    chat_id, (queued,) = running_chat_with_queue(caller, farm, "keep me")
    resp = caller.http.delete(f"{API}/{chat_id}/queue/abc")
    assert resp.status_code == 400
    assert resp.json()["message"] == "Invalid queued message ID."
    resp = caller.http.delete(f"{API}/{chat_id}/queue/{queued + 10_000}")
    assert resp.status_code == 404
    assert resp.json()["message"] == "Queued message not found."
    # Another user's chat is hidden; another chat's queued message is not found.
    assert other_caller.http.delete(f"{API}/{chat_id}/queue/{queued}").status_code == 404
    mine = caller.create_chat("[[reply: other chat]]")
    assert caller.http.delete(f"{API}/{mine['id']}/queue/{queued}").status_code == 404
    assert [q["id"] for q in caller.messages(chat_id)["queued_messages"]] == [queued]
    caller.http.post(f"{API}/{chat_id}/interrupt")


# ---------------------------------------------------------------- promote


def test_promote_on_waiting_chat(farm: Farm, caller: Caller) -> None:
    chat_id, (queued,) = running_chat_with_queue(caller, farm, "[[reply: promoted reply]]")
    # Interrupt without promotion: the chat waits with a message still queued.
    assert caller.http.post(f"{API}/{chat_id}/interrupt").status_code == 200
    wait_until(lambda: [r for r, _ in history(caller, chat_id)] == ["user", "assistant"])
    assert caller.chat(chat_id)["status"] == "waiting"
    resp = caller.http.post(f"{API}/{chat_id}/queue/{queued}/promote")
    assert resp.status_code == 200, resp.text
    promoted = resp.json()
    assert promoted["role"] == "user" and promoted["chat_id"] == chat_id
    assert texts(promoted) == "[[reply: promoted reply]]"
    wait_until(lambda: len(history(caller, chat_id)) == 4)
    caller.wait_status(chat_id, "waiting")
    listing = caller.messages(chat_id)
    assert listing["queued_messages"] == []
    assert history(caller, chat_id)[2:] == [
        ("user", "[[reply: promoted reply]]"),
        ("assistant", "promoted reply"),
    ]
    assert listing["messages"][1]["id"] == promoted["id"]


def test_promote_while_running_keeps_partial_first(farm: Farm, caller: Caller) -> None:
    chat_id, (first, second) = running_chat_with_queue(
        caller, farm, "[[reply: not me]]", "[[reply: jumped the queue]]"
    )
    resp = caller.http.post(f"{API}/{chat_id}/queue/{second}/promote")
    assert resp.status_code == 200, resp.text
    promoted = resp.json()
    assert promoted["role"] == "user" and texts(promoted) == "[[reply: jumped the queue]]"
    wait_until(lambda: len(history(caller, chat_id)) >= 4)
    caller.wait_status(chat_id, "waiting")
    msgs = list(reversed(caller.messages(chat_id)["messages"]))
    roles = [m["role"] for m in msgs]
    # The partial assistant step was persisted before the promoted user message; the first
    # queued message stays queued until that run finished, then runs too.
    assert roles[:4] == ["user", "assistant", "user", "assistant"]
    partial = texts(msgs[1])
    assert partial.startswith("tok0 tok1 tok2 tok3") and "tok399" not in partial
    assert msgs[1]["id"] < msgs[2]["id"] == promoted["id"]
    assert texts(msgs[3]) == "jumped the queue"
    wait_until(lambda: len(history(caller, chat_id)) == 6)
    caller.wait_status(chat_id, "waiting")
    assert history(caller, chat_id)[4:] == [("user", "[[reply: not me]]"), ("assistant", "not me")]
    assert first not in [q["id"] for q in caller.messages(chat_id)["queued_messages"]]


def test_promote_errors(farm: Farm, caller: Caller, other_caller: Caller) -> None:
    chat_id, (queued,) = running_chat_with_queue(caller, farm, "stay queued")
    resp = caller.http.post(f"{API}/{chat_id}/queue/x1/promote")
    assert resp.status_code == 400
    assert resp.json()["message"] == "Invalid queued message ID."
    assert caller.http.post(f"{API}/{chat_id}/queue/{queued + 10_000}/promote").status_code == 404
    assert other_caller.http.post(f"{API}/{chat_id}/queue/{queued}/promote").status_code == 404
    caller.http.post(f"{API}/{chat_id}/interrupt")


# ---------------------------------------------------------------- edit


def test_edit_first_message_drops_later_history_and_reruns(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: first answer]]")
    chat_id = chat["id"]
    caller.wait_status(chat_id, "waiting")
    caller.send(chat_id, "[[reply: second answer]]")
    wait_until(lambda: len(history(caller, chat_id)) == 4)
    caller.wait_status(chat_id, "waiting")
    first_id = caller.messages(chat_id)["messages"][-1]["id"]
    resp = caller.http.patch(
        f"{API}/{chat_id}/messages/{first_id}",
        json={"content": [{"type": "text", "text": "[[reply: edited]]"}]},
    )
    assert resp.status_code == 200, resp.text
    edited = resp.json()["message"]
    assert edited["id"] == first_id and texts(edited) == "[[reply: edited]]"
    assert [m["id"] for m in caller.messages(chat_id)["messages"]][-1] == first_id
    wait_until(lambda: len(history(caller, chat_id)) == 2)
    caller.wait_status(chat_id, "waiting")
    assert history(caller, chat_id) == [("user", "[[reply: edited]]"), ("assistant", "edited")]
    # The model saw only the edited history.
    last = [r for r in farm.llm.requests if "[[reply: edited]]" in str(r.get("messages"))][-1]
    prompt = str(last["messages"])
    assert "first answer" not in prompt and "second answer" not in prompt


def test_edit_while_running_clears_queue_and_reruns(farm: Farm, caller: Caller) -> None:
    chat_id, _ = running_chat_with_queue(caller, farm, "[[reply: dropped]]")
    first_id = caller.messages(chat_id)["messages"][-1]["id"]
    resp = caller.http.patch(
        f"{API}/{chat_id}/messages/{first_id}",
        json={"content": [{"type": "text", "text": "[[reply: restarted]]"}]},
    )
    assert resp.status_code == 200, resp.text
    assert caller.messages(chat_id)["queued_messages"] == []
    wait_until(lambda: history(caller, chat_id)[-1:] == [("assistant", "restarted")])
    caller.wait_status(chat_id, "waiting")
    assert history(caller, chat_id) == [
        ("user", "[[reply: restarted]]"),
        ("assistant", "restarted"),
    ]


def test_edit_errors(farm: Farm, caller: Caller) -> None:
    chat = caller.create_chat("[[reply: hi]]")
    chat_id = chat["id"]
    caller.wait_status(chat_id, "waiting")
    user_msg, assistant_msg = (m["id"] for m in reversed(caller.messages(chat_id)["messages"]))
    body = {"content": [{"type": "text", "text": "changed"}]}
    for bad in ("abc", "0", "-3"):
        resp = caller.http.patch(f"{API}/{chat_id}/messages/{bad}", json=body)
        assert resp.status_code == 400
        assert resp.json()["message"] == "Invalid chat message ID."
    resp = caller.http.patch(f"{API}/{chat_id}/messages/{assistant_msg}", json=body)
    assert resp.status_code == 400
    assert resp.json()["message"] == "Only user messages can be edited."
    other = caller.create_chat("[[reply: other]]")
    resp = caller.http.patch(f"{API}/{other['id']}/messages/{user_msg}", json=body)
    assert resp.status_code == 404
    assert resp.json() == {
        "message": "Chat message not found.",
        "detail": "Message does not belong to this chat.",
    }
    resp = caller.http.patch(f"{API}/{chat_id}/messages/{user_msg}", json={"content": []})
    assert resp.status_code == 400
    assert resp.json()["message"] == "Content is required."
    assert history(caller, chat_id) == [("user", "[[reply: hi]]"), ("assistant", "hi")]
    caller.wait_status(other["id"], "waiting")
