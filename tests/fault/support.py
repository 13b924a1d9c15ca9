"""What the fault tests share: scripted turns, transcript checks and a resuming SSE client."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from websockets.exceptions import WebSocketException
from websockets.sync.client import connect

from workers.tools.calls import INTERRUPTED

TOOL = "list_templates"  # a platform tool: one cheap query, runs on any worker


def tool_turn(final: str, *, rounds: int, delay_ms: int = 0) -> str:
    """A turn of ``rounds`` tool rounds (one ``list_templates`` call each) and a final reply:
    ``rounds + 1`` model steps."""
    text = f"[[delay_ms: {delay_ms}]] " if delay_ms else ""
    for n in range(1, rounds + 1):
        text += f"[[tool{n if n > 1 else ''}: {TOOL} {{}}]] "
    return text + f"[[after_tools: {final}]]"


TRANSCRIPT_SQL = sa.text(
    """
    SELECT chat_id, id, role::text AS role, step_key, content, deleted FROM chat_messages
     WHERE chat_id = ANY(:ids) AND role <> 'system' ORDER BY chat_id, id
    """
)


def transcripts(conn: Connection, chat_ids: list[Any]) -> dict[str, list[Any]]:
    """Every non-system message of each chat, in insertion order."""
    out: dict[str, list[Any]] = {str(c): [] for c in chat_ids}
    for row in conn.execute(TRANSCRIPT_SQL, {"ids": list(chat_ids)}):
        out[str(row.chat_id)].append(row)
    return out


def check_transcript(rows: list[Any], turns: list[tuple[str, str]], *, rounds: int) -> int:
    """Assert the chat holds exactly these turns, each ``(user text, final reply)``: the user
    message, ``rounds`` × (assistant tool call, its tool result), the final reply — nothing
    duplicated, nothing lost, unique step keys. Returns how many tool results say the call
    was interrupted by a worker failure (a crashed call is never silently run again)."""
    shape = [(r.role, _summary(r)) for r in rows]
    expected_len = len(turns) * (2 + 2 * rounds)
    assert len(rows) == expected_len, f"{len(rows)} messages, expected {expected_len}: {shape}"
    assert not any(r.deleted for r in rows), shape
    keys = [r.step_key for r in rows if r.step_key is not None]
    assert len(keys) == len(set(keys)), f"duplicate step keys: {keys}"
    interrupted = 0
    it = iter(rows)
    for user_text, final in turns:
        user = next(it)
        assert (user.role, _texts(user)) == ("user", [user_text]), shape
        for _ in range(rounds):
            call, result = next(it), next(it)
            calls = [p for p in call.content if p.get("type") == "tool-call"]
            assert call.role == "assistant" and [c["tool_name"] for c in calls] == [TOOL], shape
            assert call.step_key is not None
            (part,) = result.content
            assert result.role == "tool" and part["tool_call_id"] == calls[0]["tool_call_id"]
            assert result.step_key == f"{call.step_key}:tool:{part['tool_call_id']}"
            if part.get("is_error"):
                assert part["result"] == {"error": INTERRUPTED}, part
                interrupted += 1
            else:
                assert isinstance(part["result"], dict) and "error" not in part["result"], part
        reply = next(it)
        assert (reply.role, _texts(reply)) == ("assistant", [final]), shape
        assert not any(p.get("type") == "tool-call" for p in reply.content), shape
    return interrupted


def _texts(row: Any) -> list[str]:
    return [p["text"] for p in row.content if p.get("type") == "text"]


def _summary(row: Any) -> str:
    kinds = ",".join(p.get("type", "?") for p in row.content)
    return f"{row.step_key}:{kinds}"


def describe(seconds: list[float]) -> str:
    """``n=…, p50=…, max=…`` of a list of durations (for the printed reports)."""
    if not seconds:
        return "n=0"
    return (
        f"n={len(seconds)} p50={statistics.median(seconds):.2f}s "
        f"mean={statistics.fmean(seconds):.2f}s max={max(seconds):.2f}s"
    )


def is_final_status(event: dict[str, Any]) -> bool:
    return event["type"] == "status" and event["status"]["status"] in ("waiting", "error")


@dataclass
class ResumingStream:
    """An SSE client of one chat that starts from the beginning of the event stream
    (``Last-Event-ID: 0-0``) and, whenever its connection breaks, reconnects with the id of
    the last event it got, until ``until(event)``. ``hang_up()`` makes it drop its
    connection on the next event and stay away until ``come_back()``."""

    base_url: str
    token: str
    chat_id: str
    until: Callable[[dict[str, Any]], bool] = is_final_status
    timeout: float = 120
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    connects: int = 0  # connections answered 200
    breaks: int = 0  # connections that ended in an error
    done: bool = False
    failure: BaseException | None = None
    _hang_up: threading.Event = field(default_factory=threading.Event)
    _away: threading.Event = field(default_factory=threading.Event)
    _back: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> ResumingStream:
        self._thread = threading.Thread(target=self._run, name="sse-client", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self.failure is not None:
            raise self.failure
        assert self.done, f"stream not finished; last events: {self.events[-3:]}"

    @property
    def last_id(self) -> str:
        return self.events[-1][0] if self.events else "0-0"

    def count(self, predicate: Callable[[dict[str, Any]], bool]) -> int:
        return sum(1 for _, e in self.events if predicate(e))

    def hang_up(self, timeout: float = 10) -> None:
        self._hang_up.set()
        assert self._away.wait(timeout), "the client did not hang up"

    def come_back(self) -> None:
        self._back.set()

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while not self.done and time.monotonic() < deadline:
                try:
                    self._read_once()
                except httpx.HTTPError:
                    self.breaks += 1
                if self._away.is_set() and not self._back.wait(self.timeout):
                    return
                if not self.done:
                    time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.failure = exc

    def _read_once(self) -> None:
        headers = {
            "Coder-Session-Token": self.token,
            "Accept": "text/event-stream",
            "Last-Event-ID": self.last_id,
        }
        url = f"{self.base_url}/api/experimental/chats/{self.chat_id}/stream"
        with (
            httpx.Client(timeout=httpx.Timeout(10, read=30)) as client,
            client.stream("GET", url, headers=headers) as resp,
        ):
            if resp.status_code != 200:
                resp.read()
                return
            self.connects += 1
            entry_id = ""
            for line in resp.iter_lines():
                if line.startswith("id: "):
                    entry_id = line[4:]
                elif line.startswith("data: "):
                    event = json.loads(line[6:])
                    self.events.append((entry_id, event))
                    if self.until(event):
                        self.done = True
                        return
                    if self._hang_up.is_set():
                        self._hang_up.clear()
                        self._away.set()
                        return


@dataclass
class ResumingSocket:
    """A WebSocket client of one chat's stream (Coder's protocol, which has no event ids):
    whenever its connection breaks it reconnects with ``after_id`` = the id of the last
    message it got, and so receives a fresh snapshot (status, the parts of the step in
    flight, the messages after that id) and then live events; it stops after a frame that
    carries a final status (the snapshot's messages follow its status in the same frame)."""

    base_url: str
    token: str
    chat_id: str
    timeout: float = 120
    messages: list[dict[str, Any]] = field(default_factory=list)  # every message event
    connects: int = 0  # connections opened
    breaks: int = 0  # connections that ended in an error
    error_frames: int = 0  # {"type": "error"} frames (the relay failed)
    done: bool = False
    failure: BaseException | None = None
    _thread: threading.Thread | None = None

    def start(self) -> ResumingSocket:
        self._thread = threading.Thread(target=self._run, name="ws-client", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float) -> None:
        assert self._thread is not None
        self._thread.join(timeout)
        if self.failure is not None:
            raise self.failure
        assert self.done, f"socket not finished; last messages: {self.messages[-2:]}"

    @property
    def after_id(self) -> int:
        return max((m["id"] for m in self.messages), default=0)

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.timeout
            while not self.done and time.monotonic() < deadline:
                try:
                    self._read_once()
                except (OSError, TimeoutError, WebSocketException):
                    self.breaks += 1
                if not self.done:
                    time.sleep(0.1)
        except BaseException as exc:  # noqa: BLE001 - reported by join()
            self.failure = exc

    def _read_once(self) -> None:
        url = self.base_url.replace("http://", "ws://", 1)
        url += f"/api/experimental/chats/{self.chat_id}/stream"
        if self.messages:
            url += f"?after_id={self.after_id}"
        headers = {"Coder-Session-Token": self.token}
        with connect(url, additional_headers=headers, open_timeout=10) as ws:
            self.connects += 1
            while True:
                frame = json.loads(ws.recv(timeout=30))
                if frame["type"] == "error":
                    self.error_frames += 1
                if frame["type"] != "data":
                    continue
                final = False
                for event in frame["data"]:
                    if event["type"] == "message":
                        self.messages.append(event["message"])
                    final = final or is_final_status(event)
                if final:
                    self.done = True
                    return
