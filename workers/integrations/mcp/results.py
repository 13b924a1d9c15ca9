"""An MCP ``CallToolResult`` as the JSON tool result a chat stores and the model reads.

Shape [inferred; Coder converts to its own tool-result content types]:
``{"content": [block, …], "structured_content": {…}?}`` where a block is one of
``{type: text, text}``, ``{type: image|audio, mime_type, data}`` (base64),
``{type: resource, uri, mime_type?, text | blob}`` and
``{type: resource_link, uri, name, title?, description?, mime_type?}``. A failed call becomes
``{"error": <its text>}`` with ``is_error``. Binary data larger than ``MAX_MEDIA_CHARS`` is
replaced by a note, so one screenshot cannot swamp the context.
"""

from __future__ import annotations

from typing import Any

from mcp_types import (
    AudioContent,
    BlobResourceContents,
    CallToolResult,
    EmbeddedResource,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

MAX_MEDIA_CHARS = 1024 * 1024  # base64 characters kept per image, audio clip or blob
MAX_TEXT_CHARS = 256 * 1024


def _data(mime_type: str | None, data: str, kind: str) -> dict[str, Any]:
    block: dict[str, Any] = {"type": kind, "mime_type": mime_type or "application/octet-stream"}
    if len(data) > MAX_MEDIA_CHARS:
        block["note"] = f"{kind} omitted: {len(data)} base64 characters is over the limit"
    else:
        block["data"] = data
    return block


def _text(text: str) -> str:
    if len(text) <= MAX_TEXT_CHARS:
        return text
    return text[:MAX_TEXT_CHARS] + f"\n… [truncated: {len(text)} characters]"


def _block(item: Any) -> dict[str, Any]:
    if isinstance(item, TextContent):
        return {"type": "text", "text": _text(item.text)}
    if isinstance(item, ImageContent):
        return _data(item.mime_type, item.data, "image")
    if isinstance(item, AudioContent):
        return _data(item.mime_type, item.data, "audio")
    if isinstance(item, EmbeddedResource):
        res = item.resource
        block: dict[str, Any] = {"type": "resource", "uri": str(res.uri)}
        if res.mime_type:
            block["mime_type"] = res.mime_type
        if isinstance(res, TextResourceContents):
            block["text"] = _text(res.text)
        elif isinstance(res, BlobResourceContents):
            if len(res.blob) > MAX_MEDIA_CHARS:
                block["note"] = f"blob omitted: {len(res.blob)} base64 characters"
            else:
                block["blob"] = res.blob
        return block
    if isinstance(item, ResourceLink):
        link: dict[str, Any] = {"type": "resource_link", "uri": str(item.uri), "name": item.name}
        for key in ("title", "description", "mime_type"):
            if getattr(item, key, None):
                link[key] = getattr(item, key)
        return link
    return {"type": str(getattr(item, "type", "unknown"))}


def convert(result: CallToolResult) -> tuple[dict[str, Any], bool]:
    """``(stored tool result, is_error)`` of one MCP call."""
    blocks = [_block(item) for item in result.content]
    if result.is_error:
        text = "\n".join(b.get("text", "") for b in blocks if b["type"] == "text").strip()
        return {"error": text or "the MCP tool reported an error"}, True
    out: dict[str, Any] = {"content": blocks}
    if result.structured_content is not None:
        out["structured_content"] = result.structured_content
    return out, False


def has_media(result: Any) -> bool:
    """Whether a stored result carries an image or audio clip (the part's ``is_media``)."""
    content = result.get("content") if isinstance(result, dict) else None
    return isinstance(content, list) and any(
        isinstance(b, dict) and b.get("type") in ("image", "audio") and "data" in b for b in content
    )
