"""Upload rules for chat files (reference §1.8): allowed types, size cap and content sniffing.

Pure functions only, so they are unit-testable without a database.
"""

from __future__ import annotations

import email.message
import json
from urllib.parse import quote

MAX_FILE_SIZE = 10 * 1024 * 1024  # 10 MiB

IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp")
TEXT_TYPES = ("text/plain", "text/markdown", "text/csv", "application/json")
ALLOWED_TYPES = (*IMAGE_TYPES, "application/json", "application/pdf", "text/csv",
                 "text/markdown", "text/plain")  # fmt: skip

# [inferred] Which types need a filename is not in the reference. Text-like files reach the
# model as a block headed by their name, so they need one; images and PDFs do not.
FILENAME_REQUIRED = TEXT_TYPES

# Served inline (images, PDF, text); anything else would be an attachment.
INLINE_TYPES = (*IMAGE_TYPES, "application/pdf", "text/plain", "text/markdown", "text/csv")


def declared_type(header: str | None) -> str:
    """The Content-Type without parameters, lower-cased; ``application/octet-stream`` if absent."""
    value = (header or "").split(";", 1)[0].strip().lower()
    return value or "application/octet-stream"


def filename_from_disposition(header: str | None) -> str:
    """The filename of a Content-Disposition header (``filename`` or RFC 2231 ``filename*``),
    without any directory part; ``""`` when there is none."""
    if not header:
        return ""
    msg = email.message.Message()
    msg["content-disposition"] = header
    name = msg.get_filename() or ""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(ch for ch in name if ch.isprintable()).strip()


def sniff_image(data: bytes) -> str | None:
    """The type magic bytes identify (PNG, JPEG, GIF, WebP, PDF), or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def is_text(data: bytes) -> bool:
    """Valid UTF-8 without NUL bytes."""
    if b"\x00" in data:
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def content_matches(declared: str, data: bytes) -> bool:
    """Whether the bytes are what the declared type says. Text types accept any UTF-8 text
    (refinements of text/plain such as CSV or Markdown cannot be told apart); JSON must parse."""
    if declared in IMAGE_TYPES or declared == "application/pdf":
        return sniff_image(data) == declared
    if declared == "application/json":
        if not is_text(data):
            return False
        try:
            json.loads(data.decode("utf-8-sig"))
        except ValueError:
            return False
        return True
    if declared in TEXT_TYPES:
        return is_text(data)
    return False


def content_disposition(mimetype: str, name: str) -> str:
    """``inline``/``attachment`` with the filename quoted per RFC 6266 (an ASCII fallback plus
    ``filename*`` when the name is not plain ASCII)."""
    kind = "inline" if mimetype in INLINE_TYPES else "attachment"
    if not name:
        return kind
    fallback = "".join(ch if 32 <= ord(ch) < 127 and ch not in '"\\' else "_" for ch in name)
    value = f'{kind}; filename="{fallback}"'
    if fallback != name:
        value += f"; filename*=UTF-8''{quote(name, safe='')}"
    return value
