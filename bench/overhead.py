"""Farm overhead (issue 8 (b)): from ``POST …/messages`` to the first ``message_part`` at a
connected SSE client, minus the model's own time to first token.

    make run   # in another terminal
    .venv/bin/python bench/overhead.py [--turns 200] [--turns-per-chat 10]

The model's time to first token is measured in the same run, straight against the farm's
scripted model server (its URL is the provider's base URL) with a raw streaming request for
the same reply, so what remains is the farm's own share: the API, the queue hop, the worker's
take phase and prompt, the model client, the Redis stream and the relay.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench import farmlib

REPLY = "[[reply: pong]]"


def model_url(http: httpx.Client) -> str:
    providers = http.get("/api/experimental/chats/providers").json()
    rows = providers if isinstance(providers, list) else providers.get("providers", [])
    for row in rows:
        if row.get("provider") == "openai-compat" and row.get("base_url"):
            return str(row["base_url"]).rstrip("/")
    raise SystemExit("no openai-compat provider with a base URL (is this `make run`?)")


def model_ttft(url: str, samples: int) -> list[float]:
    body = {
        "model": "scripted",
        "messages": [{"role": "user", "content": REPLY}],
        "stream": True,
    }
    out = []
    with httpx.Client(timeout=30) as client:
        for _ in range(samples):
            started = time.perf_counter()
            with client.stream("POST", f"{url}/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if line.startswith("data:") and '"content"' in line:
                        out.append(time.perf_counter() - started)
                        break
    return out


def one_turn(http: httpx.Client, args: argparse.Namespace, chat_id: str) -> float:
    """Seconds from the POST to the first message_part on an already open SSE stream."""
    opened = threading.Event()
    first: list[float] = []

    def listen() -> None:
        headers = {"Coder-Session-Token": farmlib.token(args), "Accept": "text/event-stream"}
        with httpx.Client(base_url=args.api, headers=headers, timeout=60) as sse:
            with sse.stream("GET", f"/api/experimental/chats/{chat_id}/stream") as response:
                opened.set()
                for line in response.iter_lines():
                    if line == "event: message_part":
                        first.append(time.perf_counter())
                        return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    opened.wait(10)
    time.sleep(0.05)  # the relay has subscribed
    sent = time.perf_counter()
    http.post(f"/api/experimental/chats/{chat_id}/messages", json=farmlib.say(REPLY))
    listener.join(30)
    farmlib.wait_idle(http, chat_id)
    if not first:
        raise SystemExit("no message_part arrived")
    return first[0] - sent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    farmlib.farm_args(parser)
    parser.add_argument("--turns", type=int, default=200)
    parser.add_argument("--turns-per-chat", type=int, default=10)
    args = parser.parse_args()
    with farmlib.client(args) as http:

        def new_chat() -> str:
            chat_id = http.post("/api/experimental/chats", json=farmlib.say(REPLY)).json()["id"]
            farmlib.wait_idle(http, str(chat_id))
            return str(chat_id)

        chat_id = new_chat()
        for _ in range(5):  # warm-up
            one_turn(http, args, chat_id)
        totals = []
        for turn in range(args.turns):
            if turn % args.turns_per_chat == 0:
                # A fresh chat now and then (untimed): a prompt that grows by two messages a
                # turn would make this a measure of prompt size, which the model's TTFT,
                # measured on a one-message prompt, does not account for.
                chat_id = new_chat()
            totals.append(one_turn(http, args, chat_id))
        ttft = model_ttft(model_url(http), args.turns)
    model = statistics.median(ttft)
    overhead = [t - model for t in totals]
    p50, p99, worst = farmlib.percentiles(overhead)
    t50, t99, _ = farmlib.percentiles(totals)
    print(f"{args.turns} turns; model TTFT p50 {model * 1000:.2f} ms (measured directly)")
    print(f"{'':<34} {'p50':>9} {'p99':>9} {'max':>9}")
    print(f"{'POST -> first message_part':<34} {t50 * 1000:>7.2f}ms {t99 * 1000:>7.2f}ms")
    print(
        f"{'farm overhead (minus model TTFT)':<34} {p50 * 1000:>7.2f}ms {p99 * 1000:>7.2f}ms "
        f"{worst * 1000:>7.2f}ms   (targets: p50 < 10 ms, p99 < 50 ms)"
    )
    print(
        json.dumps(
            {"overhead_p50_ms": round(p50 * 1000, 2), "overhead_p99_ms": round(p99 * 1000, 2)}
        )
    )


if __name__ == "__main__":
    main()
