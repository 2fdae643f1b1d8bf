"""Reading an uploaded payout file with a bound on what is received.

FastAPI reads a form body (spooling files to disk) before any dependency runs, so a route
taking an ``UploadFile`` parameter would take in any amount from anyone, signed in or not.
The payout route therefore declares no body parameter: its access check runs first, then the
body is read here, refused (413) as soon as it passes the limit, and parsed as multipart.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass

from starlette.datastructures import FormData, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import Request

from diboas.business.errors import PayoutFileError, UploadTooLargeError
from diboas.settings import Settings

# Room for the multipart framing (boundaries, part headers) around the file itself.
_FRAMING_BYTES = 16 * 1024

# The request body the OpenAPI schema shows for the route (it declares no body parameter).
OPENAPI_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {
                            "type": "string",
                            "format": "binary",
                            "description": "CSV: recipient_email,amount,currency,note",
                        }
                    },
                }
            }
        },
    }
}


@dataclass(frozen=True, slots=True)
class Upload:
    """The uploaded file's bytes and the name the client gave it."""

    content: bytes
    filename: str | None


async def read_payout_file(request: Request, settings: Settings) -> Upload:
    """The ``file`` part of a multipart body, received up to the configured size only."""
    form = await receive_form(request, settings)
    try:
        return await payout_file(form)
    finally:
        await form.close()


async def receive_form(request: Request, settings: Settings) -> FormData:
    """A multipart form of at most one file, received up to the configured size only (413
    past it) and parsed; the caller closes it. The business pages read their payout upload
    with it too (their CSRF token travels in the same form)."""
    cap = settings.business_payout_max_bytes + _FRAMING_BYTES
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise PayoutFileError("send the file as multipart/form-data in a field named file")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:
        raise UploadTooLargeError(
            "the upload is too large", details={"max_bytes": settings.business_payout_max_bytes}
        )
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > cap:
            raise UploadTooLargeError(
                "the upload is too large",
                details={"max_bytes": settings.business_payout_max_bytes},
            )

    async def replay() -> AsyncGenerator[bytes, None]:
        yield bytes(body)
        yield b""

    try:
        return await MultiPartParser(
            request.headers, replay(), max_files=1, max_fields=4, max_part_size=cap
        ).parse()
    except MultiPartException as error:
        raise PayoutFileError(f"the upload is not a valid form: {error.message}") from None


async def payout_file(form: FormData) -> Upload:
    """The file in the form's ``file`` field."""
    part = form.get("file")
    if not isinstance(part, UploadFile):
        raise PayoutFileError("the form needs the file in a field named file")
    return Upload(await part.read(), part.filename)
