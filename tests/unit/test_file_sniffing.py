"""Chat file upload rules: declared types, filenames, content sniffing, Content-Disposition."""

from __future__ import annotations

import pytest

from models.chat import file_types as ft

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 16
GIF = b"GIF89a\x01\x00\x01\x00"
WEBP = b"RIFF\x10\x00\x00\x00WEBPVP8 "
PDF = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (PNG, "image/png"),
        (JPEG, "image/jpeg"),
        (GIF, "image/gif"),
        (b"GIF87a....", "image/gif"),
        (WEBP, "image/webp"),
        (PDF, "application/pdf"),
        (b"RIFF\x10\x00\x00\x00WAVE", None),
        (b"hello", None),
        (b"", None),
    ],
)
def test_sniff_image(data: bytes, expected: str | None) -> None:
    assert ft.sniff_image(data) == expected


@pytest.mark.parametrize(
    ("declared", "data", "ok"),
    [
        ("image/png", PNG, True),
        ("image/jpeg", PNG, False),
        ("image/gif", GIF, True),
        ("image/webp", WEBP, True),
        ("image/webp", b"RIFF\x10\x00\x00\x00WAVE", False),
        ("application/pdf", PDF, True),
        ("application/pdf", b"%PD", False),
        ("application/json", b'{"a": [1, 2]}', True),
        ("application/json", b"\xef\xbb\xbf[1]", True),
        ("application/json", b"{a: 1}", False),
        ("application/json", b"", False),
        ("text/plain", "héllo\n".encode(), True),
        ("text/plain", b"", True),
        ("text/plain", b'{"json": "is text too"}', True),
        ("text/markdown", b"# Title\n", True),
        ("text/csv", b"a,b\n1,2\n", True),
        ("text/plain", b"nul\x00inside", False),
        ("text/plain", b"\xff\xfe bad utf-8", False),
        ("text/plain", PNG, False),
        ("application/octet-stream", b"x", False),
    ],
)
def test_content_matches(declared: str, data: bytes, ok: bool) -> None:
    assert ft.content_matches(declared, data) is ok


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, "application/octet-stream"),
        ("", "application/octet-stream"),
        ("IMAGE/PNG", "image/png"),
        ("text/plain; charset=utf-8", "text/plain"),
    ],
)
def test_declared_type(header: str | None, expected: str) -> None:
    assert ft.declared_type(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, ""),
        ("attachment", ""),
        ('attachment; filename="x.png"', "x.png"),
        ("attachment; filename=plain.txt", "plain.txt"),
        ("attachment; filename*=UTF-8''na%C3%AFve%20file.md", "naïve file.md"),
        ('attachment; filename="../../etc/passwd"', "passwd"),
        ('inline; filename="C:\\\\dir\\\\a.csv"', "a.csv"),
    ],
)
def test_filename_from_disposition(header: str | None, expected: str) -> None:
    assert ft.filename_from_disposition(header) == expected


def test_allowed_types_and_filename_rules() -> None:
    assert ft.ALLOWED_TYPES == (
        "image/png",
        "image/jpeg",
        "image/gif",
        "image/webp",
        "application/json",
        "application/pdf",
        "text/csv",
        "text/markdown",
        "text/plain",
    )
    assert set(ft.FILENAME_REQUIRED) == {"text/plain", "text/markdown", "text/csv",
                                         "application/json"}  # fmt: skip
    assert ft.MAX_FILE_SIZE == 10_485_760


@pytest.mark.parametrize(
    ("mimetype", "name", "expected"),
    [
        ("image/png", "a.png", 'inline; filename="a.png"'),
        ("application/pdf", "r.pdf", 'inline; filename="r.pdf"'),
        ("text/plain", "", "inline"),
        ("application/json", "d.json", 'attachment; filename="d.json"'),
        ("text/csv", 'w"x.csv', "inline; filename=\"w_x.csv\"; filename*=UTF-8''w%22x.csv"),
        ("image/gif", "ü.gif", "inline; filename=\"_.gif\"; filename*=UTF-8''%C3%BC.gif"),
    ],
)  # fmt: skip
def test_content_disposition(mimetype: str, name: str, expected: str) -> None:
    assert ft.content_disposition(mimetype, name) == expected


# ---------------------------------------------------------------- files in the model prompt


def test_file_parts_in_the_prompt() -> None:
    import uuid

    from models.chat.files import ChatFile
    from models.chat.tables import ChatMessage
    from models.enums import MessageRole
    from workers.turn.prompt import MAX_INLINE_FILE_BYTES, to_llm_messages

    pdf = ChatFile(id=uuid.uuid4(), name="r.pdf", mimetype="application/pdf", data=PDF)
    big = ChatFile(id=uuid.uuid4(), name="big.md", mimetype="text/markdown", data=b"x" * 70_000)
    gone = uuid.uuid4()
    parts = [
        {"type": "text", "text": "read"},
        {"type": "file", "file_id": str(pdf.id), "media_type": "application/pdf", "name": "r.pdf"},
        {"type": "file", "file_id": str(big.id), "media_type": "text/markdown", "name": "big.md"},
        {"type": "file", "file_id": str(gone), "media_type": "text/plain", "name": "old.txt"},
    ]
    row = ChatMessage(id=1, chat_id=uuid.uuid4(), role=MessageRole.USER, content=parts)
    (msg,) = to_llm_messages([row], files={pdf.id: pdf, big.id: big})
    text = msg["content"]
    assert isinstance(text, str)  # no images: plain string content
    assert text.startswith(
        f"read\n\n[file: r.pdf (application/pdf, {len(PDF)} bytes)]\n\n[file: big.md]\n"
    )
    assert "x" * MAX_INLINE_FILE_BYTES + "\n[truncated: 70000 bytes in total]" in text
    assert text.endswith("[file: old.txt (no longer available)]")
