"""Web security: the signed session cookie, CSRF tokens and the headers every page carries.

The browser session *is* an identity session: signing in through the web creates a row in
``auth_sessions`` exactly like ``POST /api/v1/auth/login`` (so it is listed and revocable
with the others), and the cookie names that session, signed with a key derived from
``DIBOAS_SECRET_KEY``. Every request checks the session in the database (one query, as the
API does for its tokens), so sign-out, revocation and a password change end it at once.

Cookies are HttpOnly and SameSite=Lax. They are Secure (and take the ``__Host-`` prefix,
which forbids a Domain attribute and so keeps sibling subdomains from planting them) in
production and on any https request. In development and test over plain http they are not
Secure: a browser would store a Secure cookie from http://127.0.0.1 but never send it back on
plain http, and the development server speaks only http. Production runs behind TLS, and
refuses nothing here: a production request that arrives over http simply gets Secure cookies
its browser will not return.

CSRF: a signed double-submit token. A random nonce lives in its own HttpOnly cookie; each
form carries ``HMAC(key, nonce | session id)``. A cross-site page can neither read the
nonce nor compute the HMAC, and the token is bound to the session, so a token lifted from one
session is worthless in another. SameSite=Lax is the second line, not the only one.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from diboas.settings import Settings

SESSION_COOKIE = "diboas_session"
CSRF_COOKIE = "diboas_csrf"
CSRF_FIELD = "csrf_token"
_HOST_PREFIX = "__Host-"

# No inline script anywhere (every script is a file served by the platform), no inline
# style attribute either; forms post only to this origin; nobody may frame the pages.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    )
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class WebKeys:
    """HMAC keys for the web, derived from the platform's secret keys (one per purpose).

    The current secret key signs; every key of ``DIBOAS_SECRET_KEY_PREVIOUS`` still verifies,
    so rotating the secret signs nobody out and fails no form already on a screen.
    """

    def __init__(self, settings: Settings) -> None:
        secrets_ = settings.secret_keys
        self._sessions = [_derive(s, b"diboas-web-session-cookie") for s in secrets_]
        self._csrfs = [_derive(s, b"diboas-web-csrf-token") for s in secrets_]

    def sign_session(self, session_id: uuid.UUID, user_id: uuid.UUID) -> str:
        """The cookie value naming an identity session."""
        body = f"{session_id.hex}.{user_id.hex}"
        return f"{body}.{_b64(_mac(self._sessions[0], body))}"

    def open_session(self, value: str | None) -> tuple[uuid.UUID, uuid.UUID] | None:
        """(session id, user id) from a cookie this platform signed, else None."""
        if not value or len(value) > 200:
            return None
        parts = value.split(".")
        if len(parts) != 3:  # session id . user id . MAC
            return None
        body = f"{parts[0]}.{parts[1]}"
        try:
            presented = _unb64(parts[2])
            if not _any_key_signed(self._sessions, body, presented):
                return None
            return uuid.UUID(hex=parts[0]), uuid.UUID(hex=parts[1])
        except (ValueError, binascii.Error):
            return None

    def csrf_token(self, nonce: str, session_id: uuid.UUID | None) -> str:
        """The form token for a CSRF nonce, bound to the session (or to being signed out)."""
        return _b64(_mac(self._csrfs[0], _csrf_message(nonce, session_id)))

    def csrf_valid(self, nonce: str | None, session_id: uuid.UUID | None, token: object) -> bool:
        """True when ``token`` is the one this nonce and session give (under any live key)."""
        if not nonce or not isinstance(token, str) or not token:
            return False
        try:
            presented = _unb64(token)
        except (ValueError, binascii.Error):
            return False
        return _any_key_signed(self._csrfs, _csrf_message(nonce, session_id), presented)


def _derive(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _mac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def _csrf_message(nonce: str, session_id: uuid.UUID | None) -> str:
    binding = session_id.hex if session_id is not None else "signed-out"
    return f"{nonce}|{binding}"


def _any_key_signed(keys: list[bytes], message: str, presented: bytes) -> bool:
    # Every key is tried (no early exit), each compared in constant time.
    matches = [hmac.compare_digest(_mac(key, message), presented) for key in keys]
    return any(matches)


def new_csrf_nonce() -> str:
    """A fresh random nonce for the CSRF cookie."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    """Names and attributes of the web cookies for one request."""

    secure: bool

    @classmethod
    def of(cls, request: Request, settings: Settings) -> CookiePolicy:
        return cls(secure=settings.env == "production" or request.url.scheme == "https")

    def name(self, base: str) -> str:
        return _HOST_PREFIX + base if self.secure else base

    def read(self, request: Request, base: str) -> str | None:
        return request.cookies.get(self.name(base))

    def set(self, response: Response, base: str, value: str) -> None:
        # A browser-session cookie (no Max-Age): closing the browser ends it on this device;
        # the server-side session keeps its own expiry and can be revoked at any time.
        response.set_cookie(
            self.name(base), value, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def clear(self, response: Response, base: str) -> None:
        response.delete_cookie(
            self.name(base), path="/", secure=self.secure, httponly=True, samesite="lax"
        )


def add_page_headers(response: Response, *, secure: bool, private: bool) -> None:
    """The security headers of every web page; personal pages are never stored by caches."""
    for name, value in PAGE_HEADERS.items():
        response.headers[name] = value
    if secure:
        response.headers["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"
    if private:
        response.headers["Cache-Control"] = "no-store"
