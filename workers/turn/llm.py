"""The model adapter: one streamed model call, with errors classified as in Coder's chatd.

Providers that speak OpenAI's chat-completions protocol go through the lean direct client
(``workers.turn.openai_wire``), Anthropic through its Messages client
(``workers.turn.anthropic_wire``); every other provider through litellm, which is imported only
when one needs it. Per-chunk work is kept small (no callbacks, no per-chunk logging) because it
runs once per streamed token.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from models import db

# Must be set before litellm is imported: otherwise it fetches its price map from the network
# at import and may swap prices later from a background thread.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import sys
import threading
from types import ModuleType

import httpx
from redis.exceptions import RedisError

from agentfarm.settings import get_settings
from models.enums import LITELLM_PREFIX, ErrorKind
from models.providers.model_options import reasoning_effort_for
from workers.turn import anthropic_wire, openai_wire
from workers.turn.llm_errors import KIND_MESSAGES, LLMError, classify
from workers.turn.stream_parts import (
    StepOutput,
    StreamHooks,
    absorb_chunk,
    absorb_raw,
    anthropic_absorber,
)

_litellm_lock = threading.Lock()


def _litellm() -> ModuleType:
    """litellm, imported on first use: it costs ~130 MB of RSS and seconds of import, and a
    worker whose models all speak OpenAI's protocol (``workers.turn.openai_wire``) never needs
    it."""
    with _litellm_lock:
        loaded = sys.modules.get("litellm")
        if loaded is not None and getattr(loaded, "_agentfarm_ready", False):
            return loaded
        import litellm

        litellm.suppress_debug_info = True
        litellm.telemetry = False
        litellm.disable_hf_tokenizer_download = True
        litellm.turn_off_message_logging = True
        litellm._agentfarm_ready = True
        return litellm


@dataclass
class ResolvedModel:
    """Everything needed to call one model config through litellm."""

    provider: str
    model: str
    api_key: str | None
    base_url: str | None
    context_limit: int
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def litellm_model(self) -> str:
        return f"{LITELLM_PREFIX.get(self.provider, self.provider)}/{self.model}"


def completion_kwargs(model: ResolvedModel, *, first_chunk_timeout: float) -> dict[str, Any]:
    """litellm keyword arguments for a model config (keys, base URL, sampling options)."""
    opts = model.options or {}
    kwargs: dict[str, Any] = {
        "model": model.litellm_model,
        "api_key": model.api_key or None,
        # httpx's read timeout is the longest gap between bytes: it bounds the wait for the
        # first chunk (Coder's 60 s startup guard) and any stall mid-stream.
        "timeout": httpx.Timeout(first_chunk_timeout, connect=10.0),
        "num_retries": 0,
        "max_retries": 0,
        "drop_params": True,
    }
    if model.base_url:
        kwargs["api_base"] = model.base_url
    if opts.get("max_output_tokens"):
        kwargs["max_tokens"] = int(opts["max_output_tokens"])
    for key in ("temperature", "top_p", "top_k", "presence_penalty", "frequency_penalty"):
        if opts.get(key) is not None:
            kwargs[key] = opts[key]
    # Validated per provider when the model config was saved (models.model_options);
    # litellm maps it to each provider's own setting (e.g. Anthropic's thinking budget).
    effort = reasoning_effort_for(model.provider, opts)
    if effort:
        kwargs["reasoning_effort"] = effort
    return kwargs


def stream_step(
    model: ResolvedModel,
    messages: list[dict[str, Any]],
    *,
    tools: list[dict[str, Any]] | None,
    hooks: StreamHooks,
    first_chunk_timeout: float,
    max_output_tokens: int,
) -> StepOutput:
    """Stream one completion, forwarding parts as they arrive; raises LLMError on failure."""
    out = StepOutput()
    got_first = False
    started = time.monotonic()
    close: Callable[[], None] | None = None
    try:
        chunks, absorb, close = _open_stream(model, messages, tools, hooks, first_chunk_timeout,
                                             max_output_tokens)  # fmt: skip
        for chunk in chunks:
            if not got_first:
                got_first = True
                hooks.on_first_chunk(time.monotonic() - started)
            if hooks.should_stop():
                out.stopped = True
                break
            absorb(chunk, out, hooks)
    except LLMError:
        raise
    except Exception as exc:
        if hooks.should_stop():
            out.stopped = True
            return out
        if isinstance(exc, RedisError):
            # Publishing a part failed: our event stream is down, not the provider. Retried
            # like a transient provider failure, under its own message.
            raise LLMError(
                ErrorKind.GENERIC, f"Chat event stream unavailable: {exc}", retryable=True
            ) from exc
        error = classify(exc, provider=model.provider)
        if not got_first and error.kind == ErrorKind.TIMEOUT:
            waited = time.monotonic() - started
            error = LLMError(
                ErrorKind.STARTUP_TIMEOUT,
                f"{KIND_MESSAGES[ErrorKind.STARTUP_TIMEOUT]} No response after {waited:.0f}s.",
                retryable=True,
                provider=model.provider,
            )
        raise error from exc
    finally:
        hooks.set_closer(None)
        if close is not None:
            # Now, not whenever the garbage collector finalises an unfinished generator: its
            # cleanup takes the HTTP pool's lock, and a collection that runs while this thread
            # already holds that lock deadlocks it (seen with the openai SDK's stream).
            close()
    return out


def _open_stream(
    model: ResolvedModel,
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    hooks: StreamHooks,
    first_chunk_timeout: float,
    max_output_tokens: int,
) -> tuple[Iterator[Any], Callable[[Any, StepOutput, StreamHooks], None], Callable[[], None]]:
    """The chunk iterator, its absorber and what closes the stream: a direct wire client
    where one applies (``workers.turn.openai_wire``, ``workers.turn.anthropic_wire``), else
    litellm."""
    if _direct_anthropic(model.provider):
        max_tokens = int((model.options or {}).get("max_output_tokens") or max_output_tokens)
        body = anthropic_wire.request_body(
            model.model, model.options or {}, messages, tools, max_tokens
        )
        events = anthropic_wire.stream(
            anthropic_wire.messages_url(model.base_url),
            model.api_key,
            body,
            timeout=httpx.Timeout(first_chunk_timeout, connect=10.0),
            set_closer=hooks.set_closer,
        )
        return events, anthropic_absorber(), events.close  # type: ignore[attr-defined]
    url = openai_wire.base_url(model.provider, model.base_url)
    if url and get_settings().llm_direct_openai:
        max_tokens = int((model.options or {}).get("max_output_tokens") or max_output_tokens)
        body = openai_wire.request_body(
            model.provider, model.model, model.options or {}, messages, tools, max_tokens
        )
        timeout = httpx.Timeout(first_chunk_timeout, connect=10.0)
        chunks = openai_wire.stream(
            url, model.api_key, body, timeout=timeout, set_closer=hooks.set_closer
        )
        return chunks, absorb_raw, chunks.close  # type: ignore[attr-defined]
    kwargs = completion_kwargs(model, first_chunk_timeout=first_chunk_timeout)
    kwargs.setdefault("max_tokens", max_output_tokens)
    response = _litellm().completion(
        messages=messages,
        tools=tools or None,
        stream=True,
        stream_options={"include_usage": True},
        **kwargs,
    )
    closer = _closer_for(response)
    hooks.set_closer(closer)
    return _chunks(response), absorb_chunk, closer


def _chunks(response: Any) -> Iterator[Any]:
    yield from response


def _direct_anthropic(provider: str) -> bool:
    return provider == "anthropic" and get_settings().llm_direct_anthropic


def _closer_for(response: Any) -> Callable[[], None]:
    def close() -> None:
        inner = getattr(response, "completion_stream", None)
        for target in (inner, getattr(inner, "response", None)):
            closer = getattr(target, "close", None)
            if callable(closer):
                try:
                    closer()
                except Exception:  # noqa: BLE001 - best effort from another thread
                    pass

    return close


def complete_text(
    model: ResolvedModel, messages: list[dict[str, Any]], *, timeout: float, max_tokens: int
) -> str:
    """One short non-streamed completion (titles); raises LLMError."""
    url = openai_wire.base_url(model.provider, model.base_url)
    try:
        if _direct_anthropic(model.provider):
            return anthropic_wire.complete(
                anthropic_wire.messages_url(model.base_url),
                model.api_key,
                anthropic_wire.request_body(
                    model.model, model.options or {}, messages, None, max_tokens, stream=False
                ),
                timeout=httpx.Timeout(timeout, connect=10.0),
            )
        if url and get_settings().llm_direct_openai:
            return openai_wire.complete(
                url,
                model.api_key,
                openai_wire.request_body(
                    model.provider, model.model, model.options or {}, messages, None, max_tokens
                ),
                timeout=httpx.Timeout(timeout, connect=10.0),
            )
        kwargs = completion_kwargs(model, first_chunk_timeout=timeout)
        kwargs["max_tokens"] = max_tokens
        response = _litellm().completion(messages=messages, **kwargs)
    except Exception as exc:
        raise classify(exc, provider=model.provider) from exc
    return response.choices[0].message.content or ""


def needs_litellm() -> bool:
    """Whether an enabled provider is served through litellm (not a direct wire client)."""
    import sqlalchemy as sa

    settings = get_settings()
    direct = sorted(openai_wire.DIRECT_PROVIDERS) if settings.llm_direct_openai else []
    if settings.llm_direct_anthropic:
        direct.append("anthropic")
    with db.get_engine().connect() as conn:
        other = conn.execute(
            sa.text("SELECT 1 FROM chat_providers WHERE enabled AND provider <> ALL(:d) LIMIT 1"),
            {"d": direct},
        ).first()
    return other is not None


def warm_up() -> None:
    """Pay litellm's import and lazy first-call imports at boot — only when an enabled
    provider needs it; otherwise the worker never loads litellm at all."""
    try:
        if not needs_litellm():
            return
        response = _litellm().completion(
            model="openai/warm-up",
            messages=[{"role": "user", "content": "warm up"}],
            mock_response="ok",
            stream=True,
            stream_options={"include_usage": True},
        )
        for _chunk in response:
            pass
    except Exception:
        logging.getLogger("agentfarm.llm").warning("litellm warm-up failed", exc_info=True)
