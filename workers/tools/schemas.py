"""JSON schemas (OpenAI function-calling style) of the workspace tools, and a small validator."""

from __future__ import annotations

from typing import Any

from workers.tools.base import ToolError

_DURATION = "Go duration string such as 500ms, 30s or 1m30s"

EXECUTE = {
    "type": "object",
    "properties": {
        "command": {"type": "string", "description": "Shell command, run with sh -c."},
        "timeout": {
            "type": "string",
            "description": f"How long to wait for a foreground command ({_DURATION}); default "
            "10s, at most 4h. On timeout the command keeps running in the background.",
        },
        "workdir": {
            "type": "string",
            "description": "Working directory inside the workspace; default its root.",
        },
        "run_in_background": {
            "type": "boolean",
            "description": "Start the command and return at once with a background_process_id. "
            "A trailing & does the same.",
        },
    },
    "required": ["command"],
}
PROCESS_OUTPUT = {
    "type": "object",
    "properties": {
        "process_id": {"type": "string", "description": "Id of a tracked process."},
        "wait_timeout": {
            "type": "string",
            "description": f"How long to wait for the process to end ({_DURATION}); default "
            "10s; 0s returns a snapshot at once.",
        },
    },
    "required": ["process_id"],
}
PROCESS_LIST: dict[str, Any] = {"type": "object", "properties": {}}
PROCESS_SIGNAL = {
    "type": "object",
    "properties": {
        "process_id": {"type": "string", "description": "Id of a tracked process."},
        "signal": {
            "type": "string",
            "enum": ["terminate", "kill"],
            "description": "terminate sends SIGTERM, kill sends SIGKILL, to the process group.",
        },
    },
    "required": ["process_id", "signal"],
}
READ_FILE = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "File path (absolute or workspace-relative)."},
        "offset": {"type": "integer", "description": "1-based line to start at; default 1."},
        "limit": {"type": "integer", "description": "Most lines to return; default 2000."},
    },
    "required": ["path"],
}
WRITE_FILE = {
    "type": "object",
    "properties": {
        "path": {"type": "string", "description": "File path (absolute or workspace-relative)."},
        "content": {"type": "string", "description": "The complete new file content."},
    },
    "required": ["path", "content"],
}
EDIT_FILES = {
    "type": "object",
    "properties": {
        "edits": {
            "type": "array",
            "description": "Edits, applied in order; all of them apply or none does.",
            "items": {
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "Absolute path of the file."},
                    "old_text": {"type": "string", "description": "Exact text to replace."},
                    "new_text": {"type": "string", "description": "Replacement; must differ."},
                    "replace_all": {
                        "type": "boolean",
                        "description": "Replace every occurrence instead of exactly one.",
                    },
                },
                "required": ["path", "old_text", "new_text"],
            },
        }
    },
    "required": ["edits"],
}

_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "boolean": (bool,),
    "integer": (int,),
    "number": (int, float),
    "object": (dict,),
    "array": (list,),
}


def validate(schema: dict[str, Any], value: Any, where: str = "arguments") -> None:
    """Check ``value`` against the subset of JSON schema used above; raise :class:`ToolError`.

    Unknown properties are allowed (models add extras such as ``model_intent``).
    """
    kind = schema.get("type")
    if kind is not None:
        ok = isinstance(value, _TYPES[kind])
        if kind in ("integer", "number") and isinstance(value, bool):
            ok = False
        if kind == "integer" and isinstance(value, float) and value.is_integer():
            ok = True
        if not ok:
            raise ToolError(f"{where} must be of type {kind}")
    if "enum" in schema and value not in schema["enum"]:
        quoted = [f'"{v}"' for v in schema["enum"]]
        allowed = " or ".join(quoted) if len(quoted) <= 2 else "one of " + ", ".join(quoted)
        raise ToolError(f"{where} must be {allowed}")
    if kind == "object":
        for name in schema.get("required", []):
            if value.get(name) is None:
                raise ToolError(f"{_join(where, name)} is required")
        for name, sub in schema.get("properties", {}).items():
            if value.get(name) is not None:
                validate(sub, value[name], _join(where, name))
    elif kind == "array" and "items" in schema:
        for index, item in enumerate(value):
            validate(schema["items"], item, f"{where}[{index}]")


def _join(where: str, name: str) -> str:
    return name if where == "arguments" else f"{where}.{name}"
