"""CPU per streamed token: the worker's model path against a raw httpx stream to the same
scripted model server (issue 8 (f): target within 2x of raw).

    .venv/bin/python bench/llm_cpu.py [--calls 40] [--tokens 50]

Both clients run in this process, one after the other, against one in-process scripted
server (its own CPU is in another thread, so ``time.thread_time`` of the calling thread counts
only the client's work). The litellm path is ``workers.turn.llm.stream_step`` exactly as a chat
step calls it (parts forwarded to a no-op hook, usage collected): once on the direct
OpenAI-wire client the worker uses for OpenAI-protocol providers (``workers/openai_wire.py``)
and once forced through litellm's stream wrapper (``AGENTFARM_LLM_DIRECT_OPENAI=false``, what
Anthropic/Bedrock/Google/Azure models still take).
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


def use_direct_client(direct: bool) -> None:
    """Pick the worker's model path (outside the timed calls: re-reading the settings is not
    part of a step's work)."""
    from agentfarm.settings import get_settings, reset_settings_cache

    os.environ["AGENTFARM_LLM_DIRECT_OPENAI"] = "true" if direct else "false"
    reset_settings_cache()
    get_settings()


def worker_stream(base_url: str, text: str) -> int:
    from workers.turn.llm import ResolvedModel, StreamHooks, stream_step

    model = ResolvedModel(
        provider="openai-compat",
        model="scripted",
        api_key="bench",
        base_url=base_url,
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
        raw = measure("raw httpx stream", args.calls, args.tokens,
                      lambda: raw_stream(client, server.base_url, text))  # fmt: skip
        use_direct_client(True)
        ours = measure("worker path, direct client", args.calls, args.tokens,
                       lambda: worker_stream(server.base_url, text))  # fmt: skip
        use_direct_client(False)
        wrapped = measure("worker path via litellm", args.calls, args.tokens,
                          lambda: worker_stream(server.base_url, text))  # fmt: skip
    print(f"{args.calls} calls x {args.tokens} tokens, CPU of the calling thread")
    print(f"{'client':<30} {'CPU ms/call p50':>16} {'CPU us/token':>13} {'wall ms p50':>12}")
    for row in (raw, ours, wrapped):
        print(
            f"{row['label']:<30} {row['cpu_ms_per_call_p50']:>16.2f} "
            f"{row['cpu_us_per_token']:>13.1f} {row['wall_ms_p50']:>12.2f}"
        )
    for row in (ours, wrapped):
        ratio = row["cpu_ms_per_call_p50"] / raw["cpu_ms_per_call_p50"]
        print(f"{row['label']} / raw = {ratio:.2f}x (target <= 2x)")


if __name__ == "__main__":
    main()
