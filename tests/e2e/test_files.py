"""Chat files: upload, download, sniffing, file parts in messages, linking and the model."""

from __future__ import annotations

import base64
import struct
import time
import uuid
import zlib
from typing import Any

import pytest

from tests.fixtures.farm import Caller, Farm

FILES = "/api/experimental/chats/files"
CHATS = "/api/experimental/chats"
MISMATCH = "File content type does not match Content-Type header."


def tiny_png() -> bytes:
    """A valid 1×1 RGB PNG."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\xff\x00\x00")  # filter byte + one red pixel
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def tiny_gif() -> bytes:
    """A valid 1×1 GIF89a with a two-colour global palette."""
    screen = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0)
    palette = b"\x00\x00\x00\xff\xff\xff"
    image = b"," + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
    data = b"\x02\x02\x44\x01\x00"  # LZW min code size 2, one sub-block, terminator
    return screen + palette + image + data + b";"


@pytest.fixture
def org_id(farm: Farm) -> str:
    from models import db
    from models.identity.bootstrap import default_organization

    with db.session_scope() as session:
        return str(default_organization(session).id)


def upload(
    who: Caller,
    org: str | None,
    data: bytes,
    content_type: str | None,
    filename: str | None = None,
) -> Any:
    headers = {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    if filename is not None:
        headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    url = FILES if org is None else f"{FILES}?organization={org}"
    return who.http.post(url, content=data, headers=headers)


def upload_ok(who: Caller, org: str, data: bytes, content_type: str, filename: str) -> str:
    resp = upload(who, org, data, content_type, filename)
    assert resp.status_code == 201, resp.text
    return str(resp.json()["id"])


def test_upload_and_download_a_png(caller: Caller, other_caller: Caller, org_id: str) -> None:
    png = tiny_png()
    resp = upload(caller, org_id, png, "image/png; charset=binary", "pixel.png")
    assert resp.status_code == 201, resp.text
    body = resp.json()
    assert set(body) == {"id"}
    file_id = str(uuid.UUID(body["id"]))

    got = caller.http.get(f"{FILES}/{file_id}")
    assert got.status_code == 200
    assert got.content == png
    assert got.headers["content-type"] == "image/png"
    assert got.headers["content-length"] == str(len(png))
    assert got.headers["content-disposition"] == 'inline; filename="pixel.png"'
    assert got.headers["cache-control"] == "private, max-age=31536000, immutable"

    assert other_caller.http.get(f"{FILES}/{file_id}").status_code == 404
    assert caller.http.get(f"{FILES}/{uuid.uuid4()}").status_code == 404
    bad = caller.http.get(f"{FILES}/not-a-uuid")
    assert bad.status_code == 400 and bad.json()["message"] == "Invalid file ID."


def test_filename_star_and_attachment_disposition(caller: Caller, org_id: str) -> None:
    resp = caller.http.post(
        f"{FILES}?organization={org_id}",
        content=b'{"a": 1}',
        headers={
            "Content-Type": "application/json",
            "Content-Disposition": "attachment; filename*=UTF-8''d%C3%A4ta.json",
        },
    )
    assert resp.status_code == 201, resp.text
    got = caller.http.get(f"{FILES}/{resp.json()['id']}")
    assert got.headers["content-type"] == "application/json"
    assert got.headers["content-disposition"] == (
        "attachment; filename=\"d_ta.json\"; filename*=UTF-8''d%C3%A4ta.json"
    )


@pytest.mark.parametrize(
    ("data", "content_type", "filename", "status", "message"),
    [
        (tiny_png(), "image/jpeg", "x.jpg", 400, MISMATCH),
        (b"not a pdf", "application/pdf", "x.pdf", 400, MISMATCH),
        (b"{nope", "application/json", "x.json", 400, MISMATCH),
        (b"a\x00b", "text/plain", "x.txt", 400, MISMATCH),
        (b"hello", "text/plain", None, 400, "Filename is required."),
        (b"MZ\x90\x00", "application/x-msdownload", "x.exe", 400, "Unsupported file type."),
        (b"raw", None, "x.bin", 400, "Unsupported file type."),
    ],
)  # fmt: skip
def test_upload_rejections(
    caller: Caller,
    org_id: str,
    data: bytes,
    content_type: str | None,
    filename: str | None,
    status: int,
    message: str,
) -> None:
    resp = upload(caller, org_id, data, content_type, filename)
    assert resp.status_code == status, resp.text
    assert resp.json()["message"] == message
    if message == "Unsupported file type.":
        assert resp.json()["detail"].startswith("Allowed types: image/png, image/jpeg")


def test_upload_over_10_mib_is_413(caller: Caller, org_id: str) -> None:
    resp = upload(caller, org_id, b"a" * (10 * 1024 * 1024 + 1), "text/plain", "big.txt")
    assert resp.status_code == 413, resp.text
    assert resp.json() == {
        "message": "File too large.",
        "detail": "Maximum file size is 10485760 bytes.",
    }
    # Exactly the limit is fine.
    ok = upload(caller, org_id, b"a" * (10 * 1024 * 1024), "text/plain", "max.txt")
    assert ok.status_code == 201, ok.text


def test_chunked_upload_over_10_mib_is_413(caller: Caller, org_id: str) -> None:
    """Without a Content-Length the cap is enforced while the body streams in."""
    chunks = iter([b"a" * (1024 * 1024)] * 10 + [b"a"])
    resp = caller.http.post(
        f"{FILES}?organization={org_id}",
        content=chunks,
        headers={"Content-Type": "text/plain", "Content-Disposition": "attachment; filename=b"},
    )
    assert resp.status_code == 413, resp.text
    assert resp.json()["message"] == "File too large."


def test_upload_organization_parameter(caller: Caller, org_id: str) -> None:
    missing = upload(caller, None, tiny_png(), "image/png", "p.png")
    assert missing.status_code == 400
    assert missing.json()["message"] == "Missing organization query parameter."
    invalid = upload(caller, "nope", tiny_png(), "image/png", "p.png")
    assert invalid.status_code == 400 and invalid.json()["message"] == "Invalid organization ID."
    foreign = upload(caller, str(uuid.uuid4()), tiny_png(), "image/png", "p.png")
    assert foreign.status_code == 403


def test_file_part_in_a_new_chat_lists_files(
    caller: Caller, other_caller: Caller, org_id: str
) -> None:
    file_id = upload_ok(caller, org_id, tiny_png(), "image/png", "shot.png")
    resp = caller.http.post(
        CHATS,
        json={
            "content": [
                {"type": "text", "text": "[[reply: nice picture]]"},
                {"type": "file", "file_id": file_id},
            ]
        },
    )
    assert resp.status_code == 201, resp.text
    chat = resp.json()
    assert "warnings" not in chat
    (meta,) = chat["files"]
    assert meta["id"] == file_id
    assert meta["owner_id"] == str(caller.user_id)
    assert meta["organization_id"] == org_id
    assert meta["name"] == "shot.png"
    assert meta["mime_type"] == "image/png"
    assert meta["created_at"].endswith("Z")
    assert caller.chat(chat["id"])["files"] == [meta]

    messages = caller.messages(chat["id"])["messages"]
    user_parts = next(m for m in messages if m["role"] == "user")["content"]
    assert user_parts[1] == {
        "type": "file",
        "file_id": file_id,
        "media_type": "image/png",
        "name": "shot.png",
    }

    # Someone else's file id is "missing" for them.
    stolen = other_caller.http.post(
        CHATS,
        json={"content": [{"type": "text", "text": "hi"}, {"type": "file", "file_id": file_id}]},
    )
    assert stolen.status_code == 400
    assert stolen.json()["message"] == "content[1].file_id references a file that does not exist."


def test_image_file_reaches_the_model_as_an_image_part(
    farm: Farm, caller: Caller, org_id: str
) -> None:
    gif = tiny_gif()
    file_id = upload_ok(caller, org_id, gif, "image/gif", "dot.gif")
    notes = upload_ok(caller, org_id, b"line one\nline two", "text/plain", "notes.txt")
    marker = f"marker-{uuid.uuid4().hex}"
    chat = caller.create_chat("[[reply: first]]")
    caller.wait_status(chat["id"], "waiting")
    sent = caller.http.post(
        f"{CHATS}/{chat['id']}/messages",
        json={
            "content": [
                {"type": "text", "text": f"[[reply: seen]] {marker}"},
                {"type": "file", "file_id": file_id},
                {"type": "file", "file_id": notes},
            ]
        },
    )
    assert sent.status_code == 200, sent.text
    assert "warnings" not in sent.json()
    caller.wait_status(chat["id"], "waiting")

    def carries_marker(request: dict[str, Any]) -> bool:
        last = request["messages"][-1]
        return isinstance(last["content"], list) and any(
            marker in p.get("text", "") for p in last["content"]
        )

    deadline = time.monotonic() + 10
    while not (hits := [r for r in list(farm.llm.requests) if carries_marker(r)]):
        assert time.monotonic() < deadline, "no model request carried the marker"
        time.sleep(0.05)
    content = hits[-1]["messages"][-1]["content"]
    assert content[0]["type"] == "text"
    assert marker in content[0]["text"]
    assert "[file: notes.txt]\nline one\nline two" in content[0]["text"]
    assert content[1] == {
        "type": "image_url",
        "image_url": {"url": "data:image/gif;base64," + base64.b64encode(gif).decode()},
    }
    assert [f["id"] for f in caller.chat(chat["id"])["files"]] == [file_id, notes]


def test_linking_cap_skips_the_batch_with_a_warning(caller: Caller, org_id: str) -> None:
    ids = [upload_ok(caller, org_id, f"n{i}".encode(), "text/plain", f"{i}.txt") for i in range(51)]
    chat = caller.create_chat("[[reply: ok]]")
    parts = [{"type": "text", "text": "[[reply: many]]"}]
    parts += [{"type": "file", "file_id": i} for i in ids]
    resp = caller.http.post(f"{CHATS}/{chat['id']}/messages", json={"content": parts})
    assert resp.status_code == 200, resp.text
    assert resp.json()["warnings"] == [
        "file linking skipped: batch of 51 file(s) would exceed limit of 50"
    ]
    assert caller.chat(chat["id"])["files"] == []  # all or nothing

    # A batch within the cap links; referencing linked files again changes nothing.
    again = caller.http.post(
        f"{CHATS}/{chat['id']}/messages",
        json={"content": [{"type": "file", "file_id": i} for i in ids[:2]]},
    )
    assert again.status_code == 200 and "warnings" not in again.json()
    assert [f["id"] for f in caller.chat(chat["id"])["files"]] == ids[:2]
