"""CPU per streamed token: the worker's model paths against a raw httpx stream to the same
scripted model server (issue 8 (f), issue 15 goal 5: within 2x of raw).

    .venv/bin/python bench/llm_cpu.py [--calls 40] [--tokens 50]

Every client runs in this process, one after the other, against one in-process scripted
server (its own CPU is in another thread, so ``time.thread_time`` of the calling thread counts
only the client's work). Two protocols, each measured three ways:

- OpenAI chat completions: a raw httpx stream; ``workers.turn.llm.stream_step`` on the direct
  client (``workers/turn/openai_wire.py``, provider openai-compat); the same forced through
  litellm (``AGENTFARM_LLM_DIRECT_OPENAI=false``).
- Anthropic Messages (the scripted server's ``/v1/messages``): a raw httpx stream;
  ``stream_step`` on the direct Messages client (``workers/turn/anthropic_wire.py``, provider
  anthropic); the same forced through litellm (``AGENTFARM_LLM_DIRECT_ANTHROPIC=false``).

Ends with one JSON line: CPU ms per call for each path and each worker path's ratio to raw.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx

from agentfarm.scripted_llm import ScriptedLLMServer


def raw_stream(client: httpx.Client, base_url: str, text: str) -> int:
    """Stream one completion with httpx and parse each SSE chunk; returns tokens seen."""
    body = {
        "model": "scripted",
        "messages": [{"role": "user", "content": text}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    tokens = 0
    with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
        for line in response.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    tokens += 1
    return tokens


def raw_anthropic_stream(client: httpx.Client, base_url: str, text: str) -> int:
    """Stream one Messages reply with httpx and parse each SSE event; returns tokens seen."""
    body = {
        "model": "scripted",
        "max_tokens": 4096,
        "messages": [{"role": "user", "content": text}],
        "stream": True,
    }
    headers = {"anthropic-version": "2023-06-01", "x-api-key": "bench"}
    tokens = 0
    with client.stream("POST", f"{base_url}/messages", json=body, headers=headers) as response:
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            event = json.loads(line[5:])
            if event.get("type") == "content_block_delta" and event["delta"].get("text"):
                tokens += 1
    return tokens


def use_direct_client(direct: bool) -> None:
    """Pick the worker's model path (outside the timed calls: re-reading the settings is not
    part of a step's work)."""
    from agentfarm.settings import get_settings, reset_settings_cache

    os.environ["AGENTFARM_LLM_DIRECT_OPENAI"] = "true" if direct else "false"
    os.environ["AGENTFARM_LLM_DIRECT_ANTHROPIC"] = "true" if direct else "false"
    reset_settings_cache()
    get_settings()


def worker_stream(base_url: str, text: str, provider: str = "openai-compat") -> int:
    from workers.turn.llm import ResolvedModel, stream_step
    from workers.turn.stream_parts import StreamHooks

    model = ResolvedModel(
        provider=provider,
        model="scripted",
        api_key="bench",
        # An Anthropic base URL is the host: litellm and the direct client add /v1/messages.
        base_url=base_url.removesuffix("/v1") if provider == "anthropic" else base_url,
        context_limit=128_000,
    )
    parts: list[int] = []
    hooks = StreamHooks(on_part=lambda part: parts.append(1), should_stop=lambda: False)
    out = stream_step(
        model,
        [{"role": "user", "content": text}],
        tools=None,
        hooks=hooks,
        first_chunk_timeout=30,
        max_output_tokens=4096,
    )
    assert out.text, "no text streamed"
    return len(parts)


def measure(label: str, calls: int, tokens: int, fn) -> dict[str, float]:  # type: ignore[no-untyped-def]
    for _ in range(3):  # warm-up: imports, connection pools, lazy litellm setup
        fn()
    cpu: list[float] = []
    wall: list[float] = []
    for _ in range(calls):
        c0, w0 = time.thread_time(), time.perf_counter()
        fn()
        cpu.append(time.thread_time() - c0)
        wall.append(time.perf_counter() - w0)
    per_call = statistics.median(cpu) * 1000
    return {
        "label": label,
        "cpu_ms_per_call_p50": per_call,
        "cpu_us_per_token": per_call * 1000 / tokens,
        "wall_ms_p50": statistics.median(wall) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=50)
    args = parser.parse_args()
    text = f"[[tokens: {args.tokens}]]"
    with ScriptedLLMServer() as server, httpx.Client(timeout=30) as client:
        url = server.base_url

        def run(label: str, fn):  # type: ignore[no-untyped-def]
            return measure(label, args.calls, args.tokens, fn)

        raw = run("openai raw httpx", lambda: raw_stream(client, url, text))
        raw_a = run("anthropic raw httpx", lambda: raw_anthropic_stream(client, url, text))
        use_direct_client(True)
        ours = run("openai direct client", lambda: worker_stream(url, text))
        ours_a = run("anthropic direct client", lambda: worker_stream(url, text, "anthropic"))
        use_direct_client(False)
        wrapped = run("openai via litellm", lambda: worker_stream(url, text))
        wrapped_a = run("anthropic via litellm", lambda: worker_stream(url, text, "anthropic"))
    print(f"{args.calls} calls x {args.tokens} tokens, CPU of the calling thread")
    print(f"{'client':<30} {'CPU ms/call p50':>16} {'CPU us/token':>13} {'wall ms p50':>12}")
    for row in (raw, ours, wrapped, raw_a, ours_a, wrapped_a):
        print(
            f"{row['label']:<30} {row['cpu_ms_per_call_p50']:>16.2f} "
            f"{row['cpu_us_per_token']:>13.1f} {row['wall_ms_p50']:>12.2f}"
        )
    figures: dict[str, float] = {"tokens": args.tokens, "calls": args.calls}
    for name, row, base in (
        ("openai_direct", ours, raw),
        ("openai_litellm", wrapped, raw),
        ("anthropic_direct", ours_a, raw_a),
        ("anthropic_litellm", wrapped_a, raw_a),
    ):
        ratio = row["cpu_ms_per_call_p50"] / base["cpu_ms_per_call_p50"]
        print(f"{row['label']} / raw = {ratio:.2f}x (target <= 2x)")
        figures[f"{name}_cpu_ms"] = round(row["cpu_ms_per_call_p50"], 3)
        figures[f"{name}_x_raw"] = round(ratio, 2)
    figures["openai_raw_cpu_ms"] = round(raw["cpu_ms_per_call_p50"], 3)
    figures["anthropic_raw_cpu_ms"] = round(raw_a["cpu_ms_per_call_p50"], 3)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
