"""Static files: read once when the app is built, served from memory under content-hashed
names (``diboas.3f2a9c1e7b.css``), so a new release never meets a stale cached copy and
every copy can be cached for a year, immutable. No file system access per request."""

from __future__ import annotations

import hashlib
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
IMMUTABLE = "public, max-age=31536000, immutable"
_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


@dataclass(frozen=True, slots=True)
class Asset:
    """One static file: its bytes, type and validator."""

    body: bytes
    media_type: str
    etag: str


class Assets:
    """Every file under ``static/``, by logical name (``css/diboas.css``) and hashed name."""

    def __init__(self, root: Path = STATIC_DIR) -> None:
        self._urls: dict[str, str] = {}
        self._files: dict[str, Asset] = {}
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            logical = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest = hashlib.sha256(body).hexdigest()[:12]
            hashed = f"{path.parent.relative_to(root).as_posix()}/{path.stem}.{digest}{path.suffix}"
            hashed = hashed.removeprefix("./")
            media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0]
            self._files[hashed] = Asset(body, media or "application/octet-stream", f'"{digest}"')
            self._urls[logical] = STATIC_PREFIX + hashed

    def url(self, logical: str) -> str:
        """The hashed URL of a static file; an unknown name is a bug in a template."""
        try:
            return self._urls[logical]
        except KeyError:
            raise LookupError(f"no static file {logical!r}") from None

    def names(self) -> list[str]:
        """Every logical name (for tests)."""
        return sorted(self._urls)

    async def serve(self, request: Request) -> Response:
        """GET /static/{hashed name}: the file, cached for a year; 404 for anything else."""
        asset = self._files.get(request.path_params["name"])
        if asset is None:
            return PlainTextResponse("not found", status_code=404)
        headers = {
            "Cache-Control": IMMUTABLE,
            "ETag": asset.etag,
            "X-Content-Type-Options": "nosniff",
        }
        if request.headers.get("if-none-match") == asset.etag:
            return Response(status_code=304, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)
