"""The direct streaming path for providers that speak OpenAI's chat-completions protocol
(openai, openai-compat, openrouter): one pooled httpx client, SSE lines decoded with
``json.loads``, nothing else per chunk.

Why: litellm's stream wrapper builds several pydantic objects and runs its logging and cost
bookkeeping for every chunk; measured with ``bench/llm_cpu.py`` it cost ~40 ms of CPU for a
50-token answer against ~1 ms for a raw stream — on the worker's hottest loop. litellm still
serves every other provider (Anthropic, Bedrock, Google, Azure, Vercel), the non-streamed
title calls, and the price list; ``AGENTFARM_LLM_DIRECT_OPENAI=false`` sends everything
through litellm again.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from typing import Any

import httpx

from models.providers.model_options import reasoning_effort_for

# Providers on this path and their API base when the provider row sets none.
DIRECT_PROVIDERS: dict[str, str | None] = {
    "openai": "https://api.openai.com/v1",
    "openai-compat": None,  # a base URL is required (the provider row has it)
    "openrouter": "https://openrouter.ai/api/v1",
}
SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty")

_client: httpx.Client | None = None
_client_lock = threading.Lock()


class ProviderHTTPError(Exception):
    """A non-2xx answer (or an in-stream error object); ``status_code`` drives classify()."""

    def __init__(self, status_code: int | None, message: str):
        super().__init__(message)
        self.status_code = status_code


def base_url(provider: str, configured: str | None) -> str | None:
    if provider not in DIRECT_PROVIDERS:
        return None
    return (configured or DIRECT_PROVIDERS[provider] or "").rstrip("/") or None


def client() -> httpx.Client:
    """The process's pooled client (thread-safe; one per worker process)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = httpx.Client(
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
                http2=False,
            )
        return _client


def request_body(
    provider: str,
    model: str,
    options: dict[str, Any],
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    max_tokens: int,
) -> dict[str, Any]:
    """The chat-completions request, with the model config's sampling and reasoning options."""
    body: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    # OpenAI's reasoning models take only max_completion_tokens; compatible servers and
    # OpenRouter take max_tokens.
    body["max_completion_tokens" if provider == "openai" else "max_tokens"] = max_tokens
    if tools:
        body["tools"] = tools
    for key in SAMPLING:
        if options.get(key) is not None:
            body[key] = options[key]
    if provider != "openai" and options.get("top_k") is not None:
        body["top_k"] = options["top_k"]
    effort = reasoning_effort_for(provider, options)
    if effort:
        if provider == "openrouter":
            body["reasoning"] = {"effort": effort}
        else:
            body["reasoning_effort"] = effort
    return body


def stream(
    url: str,
    api_key: str | None,
    body: dict[str, Any],
    *,
    timeout: httpx.Timeout,
    set_closer: Callable[[Callable[[], None] | None], None],
) -> Iterator[dict[str, Any]]:
    """POST the request and yield each decoded SSE chunk; raises ProviderHTTPError."""
    headers = {"Accept": "text/event-stream"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    # closing(): stopping this generator closes the response now, not at garbage collection.
    with closing(sse_data(f"{url}/chat/completions", headers, body, timeout, set_closer)) as sse:
        for data in sse:
            if data == "[DONE]":
                return
            chunk = json.loads(data)
            if isinstance(chunk, dict) and chunk.get("error"):
                raise ProviderHTTPError(_status_of(chunk["error"]), message_of(chunk["error"]))
            yield chunk


def sse_data(
    url: str,
    headers: dict[str, str],
    body: dict[str, Any],
    timeout: httpx.Timeout,
    set_closer: Callable[[Callable[[], None] | None], None],
) -> Generator[str, None, None]:
    """POST ``body`` on the pooled client and yield the ``data:`` payload of each server-sent
    event (shared by the direct wire clients); raises ProviderHTTPError on an error status.
    The response closes when the caller stops iterating, or from another thread through
    the closer handed to ``set_closer`` (interrupts)."""
    http = client()
    request = http.build_request("POST", url, json=body, headers=headers, timeout=timeout)
    response = http.send(request, stream=True)
    set_closer(response.close)
    try:
        if response.status_code >= 400:
            response.read()
            raise ProviderHTTPError(response.status_code, error_text(response))
        for line in response.iter_lines():
            if line.startswith("data:"):
                yield line[5:].strip()
    finally:
        response.close()


def complete(url: str, api_key: str | None, body: dict[str, Any], *, timeout: httpx.Timeout) -> str:
    """One non-streamed completion (titles, proposals); returns the text."""
    body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = client().post(f"{url}/chat/completions", json=body, headers=headers, timeout=timeout)
    if response.status_code >= 400:
        raise ProviderHTTPError(response.status_code, error_text(response))
    payload = response.json()
    choices = payload.get("choices") or [{}]
    return str((choices[0].get("message") or {}).get("content") or "")


def error_text(response: httpx.Response) -> str:
    try:
        payload = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:300]}"
    error = payload.get("error") if isinstance(payload, dict) else None
    message = message_of(error) if error is not None else str(payload)[:300]
    return f"HTTP {response.status_code}: {message}"


def message_of(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("type") or error)[:300]
    return str(error)[:300]


def _status_of(error: Any) -> int | None:
    code = error.get("code") if isinstance(error, dict) else None
    return code if isinstance(code, int) else None
