"""No-op tool round trip: step → tool.run → next step, against a running farm.

Run `make run` (or any farm), then:

    .venv/bin/python bench/tool_roundtrip.py --token "$(cat .agentfarm/admin-token)"

Each turn asks the scripted model for one tool call and a final answer. From the persisted
messages' timestamps (all written by the farm's own clock):

- fan-out + tool + fan-in: the assistant message with the call → the tool result message;
- next step: the tool result → the final assistant message (pickup, scripted model, persist).

Two tools: ``list_templates`` (platform tool, default queue) and ``process_list`` (workspace
tool, on the workspace host's queue; the script creates a template and a workspace first).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import uuid
from datetime import datetime

import httpx


def ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def wait_waiting(client: httpx.Client, chat_id: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get(f"/api/experimental/chats/{chat_id}").json()["status"] in (
            "waiting",
            "error",
        ):
            return
        time.sleep(0.01)
    raise SystemExit(f"chat {chat_id} did not finish in {timeout}s")


def one_turn(client: httpx.Client, chat_id: str, tool: str) -> tuple[float, float]:
    directive = f"[[tool: {tool} {{}}]] [[after_tools: done]]"
    client.post(
        f"/api/experimental/chats/{chat_id}/messages",
        json={"content": [{"type": "text", "text": directive}]},
    ).raise_for_status()
    wait_waiting(client, chat_id)
    msgs = client.get(f"/api/experimental/chats/{chat_id}/messages?limit=3").json()["messages"]
    final, result, call = msgs[0], msgs[1], msgs[2]
    assert (call["role"], result["role"], final["role"]) == ("assistant", "tool", "assistant")
    return ts(result["created_at"]) - ts(call["created_at"]), ts(final["created_at"]) - ts(
        result["created_at"]
    )


def setup_chat(client: httpx.Client, with_workspace: bool) -> str:
    chat = client.post(
        "/api/experimental/chats", json={"content": [{"type": "text", "text": "[[reply: ready]]"}]}
    ).json()
    wait_waiting(client, chat["id"])
    if with_workspace:
        template = client.post(
            "/api/v2/organizations/default/templates",
            json={"name": f"bench-{uuid.uuid4().hex[:8]}", "description": "bench"},
        ).json()
        create = json.dumps({"template_id": template["id"]})
        client.post(
            f"/api/experimental/chats/{chat['id']}/messages",
            json={"content": [{"type": "text", "text": f"[[tool: create_workspace {create}]]"}]},
        ).raise_for_status()
        wait_waiting(client, chat["id"])
    return chat["id"]


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--api", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("--turns", type=int, default=30)
    args = parser.parse_args()
    client = httpx.Client(
        base_url=args.api, headers={"Coder-Session-Token": args.token}, timeout=30
    )
    print(f"{args.turns} turns per tool against {args.api}\n")
    print(f"{'tool':<16}{'call→result p50':>17}{'p99':>9}{'result→next p50':>18}{'p99':>9}")
    for tool, needs_workspace in (("list_templates", False), ("process_list", True)):
        chat_id = setup_chat(client, needs_workspace)
        one_turn(client, chat_id, tool)  # warm-up
        rows = [one_turn(client, chat_id, tool) for _ in range(args.turns)]
        hop, nxt = [r[0] for r in rows], [r[1] for r in rows]
        print(
            f"{tool:<16}{pct(hop, 0.5):>14.1f} ms{pct(hop, 0.99):>6.1f} ms"
            f"{pct(nxt, 0.5):>15.1f} ms{pct(nxt, 0.99):>6.1f} ms"
        )
        total = [a + b for a, b in rows]
        print(f"{'':<16}round trip (call persisted → answer persisted) "
              f"p50 {statistics.median(total) * 1000:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
