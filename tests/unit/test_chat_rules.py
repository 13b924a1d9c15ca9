"""Pure rules: request validation, titles, costs, error classification and wire shapes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import litellm
import pytest

from models.chat import rules as chat_rules
from models.chat import wire
from models.chat.tables import ChatMessage
from models.enums import BusyBehavior, ClientType, ErrorKind, MessageRole, PlanMode
from models.errors import BadRequest
from models.providers import costs
from workers.turn.llm import LLMError, classify
from workers.turn.prompt import to_llm_messages
from workers.turn.titles import normalize_title


def rejected(fn: Any, *args: Any) -> dict[str, Any]:
    """The error body a request would get back (asserting it is a 400)."""
    with pytest.raises(BadRequest) as info:
        fn(*args)
    assert info.value.status_code == 400
    return info.value.body()


# ---------------------------------------------------------------- parse_input_parts


@pytest.mark.parametrize("content", [None, [], "", {}])
def test_empty_content_is_required(content: Any) -> None:
    assert rejected(chat_rules.parse_input_parts, content) == {
        "message": "Content is required.",
        "detail": "Content cannot be empty.",
    }


@pytest.mark.parametrize("text", ["", "   ", "\n\t ", None])
def test_blank_text_part_is_rejected(text: Any) -> None:
    assert rejected(chat_rules.parse_input_parts, [{"type": "text", "text": text}]) == {
        "message": "content[0].text cannot be empty."
    }


def test_blank_text_reports_its_index() -> None:
    parts = [{"type": "text", "text": "hello"}, {"type": "text", "text": "  "}]
    assert rejected(chat_rules.parse_input_parts, parts)["message"] == (
        "content[1].text cannot be empty."
    )


def test_unknown_part_type_is_not_supported() -> None:
    parts = [{"type": "text", "text": "hi"}, {"type": "x"}]
    assert rejected(chat_rules.parse_input_parts, parts) == {
        "message": 'content[1].type "x" is not supported.'
    }


def test_null_part_type_is_reported_as_empty() -> None:
    assert rejected(chat_rules.parse_input_parts, [{"type": None}]) == {
        "message": 'content[0].type "" is not supported.'
    }


def test_part_types_match_case_insensitively_after_trimming() -> None:
    parts = chat_rules.parse_input_parts(
        [
            {"type": " TEXT ", "text": "look here"},
            {"type": "File-Reference", "file_name": "a.py", "start_line": 1, "end_line": 2},
        ]
    )
    assert parts == [
        {"type": "text", "text": "look here"},
        {
            "type": "file-reference",
            "file_name": "a.py",
            "start_line": 1,
            "end_line": 2,
            "content": "",
        },
    ]


def test_text_is_stored_untrimmed() -> None:
    assert chat_rules.parse_input_parts([{"type": "text", "text": "  hi\n"}]) == [
        {"type": "text", "text": "  hi\n"}
    ]


@pytest.mark.parametrize("name", [None, "", "   "])
def test_file_reference_needs_a_file_name(name: Any) -> None:
    part: dict[str, Any] = {"type": "file-reference", "start_line": 1, "end_line": 1}
    if name is not None:
        part["file_name"] = name
    assert rejected(chat_rules.parse_input_parts, [part]) == {
        "message": "content[0].file_name cannot be empty for file-reference."
    }


@pytest.mark.parametrize("file_id", [None, str(uuid.uuid4())])
def test_file_part_references_a_missing_file(file_id: Any) -> None:
    parts = [{"type": "text", "text": "see"}, {"type": "file", "file_id": file_id}]
    assert rejected(chat_rules.parse_input_parts, parts) == {
        "message": "content[1].file_id references a file that does not exist."
    }


# ---------------------------------------------------------------- fallback_title


def text(value: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": value}]


def test_fallback_title_keeps_short_text() -> None:
    assert chat_rules.fallback_title(text("  Fix   the\nlogin bug ")) == "Fix the login bug"


def test_fallback_title_six_words_exactly_has_no_ellipsis() -> None:
    assert chat_rules.fallback_title(text("one two three four five six")) == (
        "one two three four five six"
    )


def test_fallback_title_cuts_after_six_words_with_ellipsis() -> None:
    assert chat_rules.fallback_title(text("one two three four five six seven eight")) == (
        "one two three four five six…"
    )


def test_fallback_title_is_capped_at_80_runes() -> None:
    word = "é" * 20  # multi-byte runes: the cap counts characters, not bytes
    title = chat_rules.fallback_title(text(" ".join([word] * 6)))
    assert len(title) == 80
    assert title == " ".join([word] * 6)[:80]


@pytest.mark.parametrize("parts", [[], text("   \n ")])
def test_fallback_title_of_nothing_is_new_chat(parts: list[dict[str, Any]]) -> None:
    assert chat_rules.fallback_title(parts) == "New Chat"


def test_fallback_title_includes_file_reference_text() -> None:
    parts = chat_rules.parse_input_parts(
        [
            {"type": "text", "text": "Explain"},
            {
                "type": "file-reference",
                "file_name": "src/app.py",
                "start_line": 3,
                "end_line": 7,
                "content": "x = compute()",
            },
        ]
    )
    assert (
        chat_rules.fallback_title(parts) == "Explain [file-reference] src/app.py:3-7 x = compute()"
    )


def test_fallback_title_of_a_lone_file_reference() -> None:
    parts = [
        {
            "type": "file-reference",
            "file_name": "a.go",
            "start_line": 1,
            "end_line": 2,
            "content": "",
        }
    ]
    assert chat_rules.fallback_title(parts) == "[file-reference] a.go:1-2"


# ---------------------------------------------------------------- labels and enums


def test_labels_none_means_empty() -> None:
    assert chat_rules.validate_labels(None) == {}


def test_valid_labels_pass_through() -> None:
    labels = {f"k{i}": f"v{i}" for i in range(50)}
    assert chat_rules.validate_labels(labels) == labels


def test_more_than_50_labels_are_invalid() -> None:
    body = rejected(chat_rules.validate_labels, {f"k{i}": "v" for i in range(51)})
    assert body["message"] == "Invalid labels."
    assert body["validations"] == [{"field": "labels", "detail": "At most 50 labels are allowed."}]


def test_empty_label_key_and_value_are_invalid() -> None:
    body = rejected(chat_rules.validate_labels, {"": "x", "team": " "})
    assert body["message"] == "Invalid labels."
    fields = [v["field"] for v in body["validations"]]
    assert fields == ["labels.", "labels.team"]
    assert all(v["detail"] for v in body["validations"])


def test_labels_must_be_an_object() -> None:
    body = rejected(chat_rules.validate_labels, ["a", "b"])
    assert body["message"] == "Invalid labels."
    assert body["validations"][0]["field"] == "labels"


def test_busy_behavior() -> None:
    assert chat_rules.parse_busy_behavior(None) is BusyBehavior.QUEUE
    assert chat_rules.parse_busy_behavior("") is BusyBehavior.QUEUE
    assert chat_rules.parse_busy_behavior("interrupt") is BusyBehavior.INTERRUPT
    assert rejected(chat_rules.parse_busy_behavior, "later") == {
        "message": "Invalid busy_behavior value.",
        "detail": 'Must be "queue" or "interrupt".',
    }


def test_plan_mode() -> None:
    assert chat_rules.parse_plan_mode(None) is None
    assert chat_rules.parse_plan_mode("") is None
    assert chat_rules.parse_plan_mode("plan") is PlanMode.PLAN
    assert rejected(chat_rules.parse_plan_mode, "build") == {"message": "Invalid plan_mode value."}


def test_client_type() -> None:
    assert chat_rules.parse_client_type(None) is ClientType.API
    assert chat_rules.parse_client_type("ui") is ClientType.UI
    assert chat_rules.parse_client_type("api") is ClientType.API
    assert rejected(chat_rules.parse_client_type, "cli") == {"message": "Invalid client_type."}


# ---------------------------------------------------------------- model-written titles


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ('"Fix the login bug"', "Fix the login bug"),
        ("`Refactor   the\n parser`", "Refactor the parser"),
        ("  'Add retries'  ", "Add retries"),
        ("Summarize the report.", "Summarize the report"),
        ('"Fix the login bug."', "Fix the login bug"),
        ('"Fix the login bug".', "Fix the login bug"),
        ("", ""),
    ],
)
def test_normalize_title(raw: str, expected: str) -> None:
    assert normalize_title(raw) == expected


def test_normalize_title_cuts_to_80_runes() -> None:
    assert normalize_title("ü" * 200) == "ü" * 80


# ---------------------------------------------------------------- costs


PRICED = {
    "cost": {
        "input_price_per_million_tokens": 3,
        "output_price_per_million_tokens": "15",
    }
}


@pytest.mark.parametrize(
    "options", [None, {}, {"cost": {}}, {"cost": {"input_price_per_million_tokens": ""}}]
)
def test_unpriced_model_has_no_cost(options: Any) -> None:
    assert costs.cost_micros(options, {"input_tokens": 1000, "output_tokens": 10}) is None


def test_zero_price_is_a_zero_cost_not_unpriced() -> None:
    options = {"cost": {"input_price_per_million_tokens": 0}}
    assert costs.cost_micros(options, {"input_tokens": 1000, "output_tokens": 10}) == 0


def test_cost_is_input_plus_output() -> None:
    # USD per 1M tokens × tokens = micro-dollars.
    usage = {"input_tokens": 1000, "output_tokens": 200}
    assert costs.cost_micros(PRICED, usage) == 1000 * 3 + 200 * 15


def test_missing_output_price_counts_as_zero() -> None:
    options = {"cost": {"input_price_per_million_tokens": 2}}
    assert costs.cost_micros(options, {"input_tokens": 10, "output_tokens": 99}) == 20


def test_cache_reads_are_priced_separately() -> None:
    options = {"cost": {**PRICED["cost"], "cache_read_price_per_million_tokens": 0.3}}
    usage = {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 100}
    # 6,000 uncached input at 3 + 4,000 cached at 0.3 + 100 output at 15.
    assert costs.cost_micros(options, usage) == 18_000 + 1_200 + 1_500


def test_cache_reads_without_a_cache_price_bill_as_input() -> None:
    usage = {"input_tokens": 10_000, "cache_read_tokens": 4_000, "output_tokens": 100}
    assert costs.cost_micros(PRICED, usage) == 30_000 + 1_500


def test_cache_writes_are_priced_when_set() -> None:
    options = {"cost": {**PRICED["cost"], "cache_write_price_per_million_tokens": 3.75}}
    usage = {"input_tokens": 100, "cache_creation_tokens": 1_000, "output_tokens": 0}
    assert costs.cost_micros(options, usage) == 300 + 3_750


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [(1, 0), (2, 1), (3, 1), (5, 1), (6, 2), (10, 3)],
)
def test_cost_rounds_half_up_to_whole_micros(tokens: int, expected: int) -> None:
    options = {"cost": {"input_price_per_million_tokens": "0.25"}}
    # 0.25, 0.5, 0.75, 1.25, 1.5, 2.5 micro-dollars
    assert costs.cost_micros(options, {"input_tokens": tokens}) == expected


# ---------------------------------------------------------------- error classification


class HTTPFailure(Exception):
    def __init__(self, status_code: int, message: str = "request failed"):
        super().__init__(message)
        self.status_code = status_code


def kind_of(exc: BaseException) -> tuple[ErrorKind, bool]:
    error = classify(exc, provider="openai")
    assert isinstance(error, LLMError)
    return error.kind, error.retryable


def test_rate_limit_is_retryable() -> None:
    exc = litellm.RateLimitError(message="slow down", llm_provider="openai", model="x")
    error = classify(exc, provider="openai")
    assert (error.kind, error.retryable, error.status_code) == (ErrorKind.RATE_LIMIT, True, 429)
    assert error.message.startswith("The model provider is rate limiting requests.")
    assert error.event_payload() == {
        "message": error.message,
        "kind": "rate_limit",
        "retryable": True,
        "provider": "openai",
        "status_code": 429,
    }


@pytest.mark.parametrize("status", [503, 529])
def test_overloaded_statuses_are_retryable(status: int) -> None:
    assert kind_of(HTTPFailure(status)) == (ErrorKind.OVERLOADED, True)


def test_litellm_service_unavailable_is_overloaded() -> None:
    exc = litellm.ServiceUnavailableError(message="busy", llm_provider="anthropic", model="x")
    assert kind_of(exc) == (ErrorKind.OVERLOADED, True)


@pytest.mark.parametrize(
    "exc",
    [
        HTTPFailure(500),
        HTTPFailure(502),
        litellm.InternalServerError(message="boom", llm_provider="openai", model="x"),
        litellm.BadGatewayError(message="bad gateway", llm_provider="openai", model="x"),
    ],
)
def test_server_errors_are_generic_and_retryable(exc: BaseException) -> None:
    assert kind_of(exc) == (ErrorKind.GENERIC, True)


def test_unauthorized_is_auth_and_final() -> None:
    exc = litellm.AuthenticationError(message="bad key", llm_provider="openai", model="x")
    assert kind_of(exc) == (ErrorKind.AUTH, False)
    assert kind_of(HTTPFailure(401)) == (ErrorKind.AUTH, False)


def test_bad_request_is_config_and_final() -> None:
    exc = litellm.BadRequestError(message="unknown parameter", model="x", llm_provider="openai")
    assert kind_of(exc) == (ErrorKind.CONFIG, False)
    assert kind_of(HTTPFailure(400)) == (ErrorKind.CONFIG, False)


@pytest.mark.parametrize(
    "exc",
    [
        litellm.Timeout(message="read timed out", model="x", llm_provider="openai"),
        httpx.ReadTimeout("read timed out"),
        TimeoutError(),
    ],
)
def test_timeouts_are_retryable(exc: BaseException) -> None:
    assert kind_of(exc) == (ErrorKind.TIMEOUT, True)


def test_context_length_exceeded_text_is_final() -> None:
    kind, retryable = kind_of(RuntimeError("This model's context length exceeded the limit"))
    assert retryable is False
    assert kind is ErrorKind.CONFIG


def test_connection_reset_text_is_retryable() -> None:
    assert kind_of(ConnectionError("connection reset by peer")) == (ErrorKind.GENERIC, True)


def test_unknown_failures_are_final() -> None:
    assert kind_of(ValueError("something odd")) == (ErrorKind.GENERIC, False)


def test_classify_keeps_an_already_classified_error() -> None:
    error = LLMError(ErrorKind.CONFIG, "no model", retryable=False)
    assert classify(error) is error


# ---------------------------------------------------------------- prompt building


def row(role: MessageRole, *parts: dict[str, Any], msg_id: int = 1) -> ChatMessage:
    return ChatMessage(id=msg_id, chat_id=uuid.uuid4(), role=role, content=list(parts))


def test_to_llm_messages_openai_shapes() -> None:
    rows = [
        row(MessageRole.SYSTEM, {"type": "text", "text": "You are helpful."}),
        row(
            MessageRole.USER,
            {"type": "text", "text": "What does this do?"},
            {
                "type": "file-reference",
                "file_name": "main.py",
                "start_line": 1,
                "end_line": 1,
                "content": "print(1)",
            },
        ),
        row(
            MessageRole.ASSISTANT,
            {"type": "reasoning", "text": "the user wants..."},
            {"type": "text", "text": "Let me look."},
            {
                "type": "tool-call",
                "tool_call_id": "call_1",
                "tool_name": "read_file",
                "args": {"path": "main.py"},
            },
            {"type": "tool-call", "tool_call_id": "call_2", "tool_name": "ls"},
        ),
        row(
            MessageRole.TOOL,
            {"type": "tool-result", "tool_call_id": "call_1", "result": {"text": "print(1)"}},
            {"type": "tool-result", "tool_call_id": "call_2", "result": "a.py b.py"},
        ),
        row(MessageRole.ASSISTANT, {"type": "text", "text": "It prints 1."}),
    ]
    assert to_llm_messages(rows) == [
        {"role": "system", "content": "You are helpful."},
        {
            "role": "user",
            "content": "What does this do?\n[file-reference] main.py:1-1\nprint(1)",
        },
        {
            "role": "assistant",
            "content": "Let me look.",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path":"main.py"}'},
                },
                {"id": "call_2", "type": "function", "function": {"name": "ls", "arguments": "{}"}},
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"text":"print(1)"}'},
        {"role": "tool", "tool_call_id": "call_2", "content": "a.py b.py"},
        {"role": "assistant", "content": "It prints 1."},
    ]


def test_assistant_with_only_tool_calls_has_null_content() -> None:
    (msg,) = to_llm_messages(
        [
            row(
                MessageRole.ASSISTANT,
                {"type": "tool-call", "tool_call_id": "c", "tool_name": "t", "args": {}},
            )
        ]
    )
    assert msg["content"] is None
    assert msg["tool_calls"][0]["function"] == {"name": "t", "arguments": "{}"}


# ---------------------------------------------------------------- wire JSON


def test_message_json_omits_empty_optional_keys() -> None:
    msg = ChatMessage(
        id=7,
        chat_id=uuid.UUID(int=1),
        role=MessageRole.ASSISTANT,
        content=[],
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    )
    assert wire.message_json(msg) == {
        "id": 7,
        "chat_id": "00000000-0000-0000-0000-000000000001",
        "created_at": "2026-01-02T03:04:05Z",
        "role": "assistant",
    }


def test_message_json_includes_only_set_usage_fields() -> None:
    user = uuid.uuid4()
    config = uuid.uuid4()
    msg = ChatMessage(
        id=8,
        chat_id=uuid.uuid4(),
        role=MessageRole.ASSISTANT,
        content=[{"type": "text", "text": "hi"}],
        created_by=user,
        model_config_id=config,
        input_tokens=12,
        output_tokens=3,
        context_limit=128_000,
        created_at=datetime(2026, 1, 2, tzinfo=UTC),
    )
    out = wire.message_json(msg)
    assert out["content"] == [{"type": "text", "text": "hi"}]
    assert out["created_by"] == str(user)
    assert out["model_config_id"] == str(config)
    assert out["usage"] == {"input_tokens": 12, "output_tokens": 3, "context_limit": 128_000}


def test_ts_is_rfc3339_utc_with_z() -> None:
    assert wire.ts(None) is None
    assert wire.ts(datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)) == "2026-05-06T07:08:09Z"
    # Naive values are taken as UTC; other offsets are converted.
    assert wire.ts(datetime(2026, 5, 6, 7, 8, 9)) == "2026-05-06T07:08:09Z"
    plus_two = timezone(timedelta(hours=2))
    assert wire.ts(datetime(2026, 5, 6, 1, 0, 0, 250000, tzinfo=plus_two)) == (
        "2026-05-05T23:00:00.250000Z"
    )
    parsed = datetime.fromisoformat(wire.ts(datetime.now(UTC)))  # type: ignore[arg-type]
    assert parsed.utcoffset() == timedelta(0)
