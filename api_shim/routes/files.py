"""``/api/experimental/chats/files``: upload and download chat files (reference §1.8).

Registered before the chats router so ``files`` is never taken for a chat id.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from api_shim.deps import CurrentUser, DbSession, require_agents_access
from models.chat import file_types as ft
from models.chat.files import ChatFile
from models.errors import BadRequest, Forbidden, NotFound, PayloadTooLarge
from models.identity.tables import OrganizationMember

router = APIRouter(prefix="/api/experimental/chats/files", tags=["files"])

CACHE_CONTROL = "private, max-age=31536000, immutable"


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(
        "File too large.", detail=f"Maximum file size is {ft.MAX_FILE_SIZE} bytes."
    )


async def _read_capped(request: Request) -> bytes:
    """The body, read as a stream and abandoned as soon as it exceeds the cap."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > ft.MAX_FILE_SIZE:
        raise _too_large()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > ft.MAX_FILE_SIZE:
            raise _too_large()
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "",
    status_code=201,
    summary="Upload a file (raw body; Content-Type and Content-Disposition describe it)",
)
async def upload_file(
    request: Request, user: CurrentUser, session: DbSession, organization: str | None = None
) -> dict[str, Any]:
    require_agents_access(user)
    if not organization:
        raise BadRequest("Missing organization query parameter.")
    try:
        org_id = uuid.UUID(organization)
    except ValueError:
        raise BadRequest("Invalid organization ID.") from None
    member = await run_in_threadpool(session.get, OrganizationMember, (org_id, user.id))
    if member is None:
        raise Forbidden("You are not a member of the specified organization.")
    mimetype = ft.declared_type(request.headers.get("content-type"))
    if mimetype not in ft.ALLOWED_TYPES:
        raise BadRequest(
            "Unsupported file type.", detail="Allowed types: " + ", ".join(ft.ALLOWED_TYPES)
        )
    data = await _read_capped(request)
    name = ft.filename_from_disposition(request.headers.get("content-disposition"))
    if not name and mimetype in ft.FILENAME_REQUIRED:
        raise BadRequest("Filename is required.")
    if not ft.content_matches(mimetype, data):
        raise BadRequest("File content type does not match Content-Type header.")

    def store() -> uuid.UUID:
        row = ChatFile(
            owner_id=user.id, organization_id=org_id, name=name, mimetype=mimetype, data=data
        )
        session.add(row)
        session.commit()
        return row.id

    return {"id": str(await run_in_threadpool(store))}


@router.get("/{file}", summary="Download a file")
def download_file(file: str, user: CurrentUser, session: DbSession) -> Response:
    try:
        file_id = uuid.UUID(file)
    except ValueError:
        raise BadRequest("Invalid file ID.") from None
    row = session.get(ChatFile, file_id)
    # [inferred] Visibility: only the uploader sees a file (the reference leaves owner vs.
    # organization visibility open; owner-only is the safe choice).
    if row is None or row.owner_id != user.id:
        raise NotFound("Resource not found or you do not have access to this resource")
    return Response(
        content=row.data,
        headers={
            "Content-Type": row.mimetype,
            "Content-Disposition": ft.content_disposition(row.mimetype, row.name),
            "Cache-Control": CACHE_CONTROL,
        },
    )
