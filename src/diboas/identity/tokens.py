"""Access tokens (short-lived JWTs, HS256, with a key id) and opaque refresh tokens.

Verification fails closed: only HS256 is accepted (so `alg: none` and algorithm confusion are
refused), the key is chosen by `kid` among the configured keys, and audience, issuer, expiry
and required claims are all checked.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache

import jwt

from diboas.settings import Settings

ALGORITHM = "HS256"
AUDIENCE = "diboas-api"
ISSUER = "diboas"
DERIVED_KID_PREFIX = "derived-"


class InvalidTokenError(Exception):
    """The token cannot be trusted (any reason; the caller answers 401 without details)."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    """What a verified access token says."""

    user_id: uuid.UUID
    session_id: uuid.UUID
    role: str
    expires_at: datetime


def signing_keys(settings: Settings) -> tuple[str, dict[str, bytes]]:
    """(current key id, every verifying key by id)."""
    if settings.jwt_signing_keys:
        keys = {
            kid: key.get_secret_value().encode() for kid, key in settings.jwt_signing_keys.items()
        }
        current = settings.jwt_current_kid or sorted(keys)[-1]
        if current not in keys:
            raise ValueError(f"DIBOAS_JWT_CURRENT_KID {current!r} is not among the signing keys")
        return current, keys
    # Derived from the secret keys: the current one signs, the previous ones still verify, and
    # each key's id names its secret (by a keyed digest), so a rotation fails no live token.
    current, derived = _derived_keys(settings.secret_keys)
    return current, dict(derived)


@lru_cache(maxsize=8)
def _derived_keys(secrets: tuple[bytes, ...]) -> tuple[str, tuple[tuple[str, bytes], ...]]:
    # Two HMACs per secret, once per set of secrets rather than on every verification.
    derived = tuple(
        (_derived_kid(secret), _keyed(secret, b"diboas-jwt-signing")) for secret in secrets
    )
    return _derived_kid(secrets[0]), derived


def _keyed(secret: bytes, purpose: bytes) -> bytes:
    return hmac.new(secret, purpose, hashlib.sha256).digest()


def _derived_kid(secret: bytes) -> str:
    return DERIVED_KID_PREFIX + _keyed(secret, b"diboas-jwt-key-id")[:6].hex()


def issue_access_token(
    settings: Settings,
    *,
    user_id: uuid.UUID,
    session_id: uuid.UUID,
    role: str,
    now: datetime | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    kid, keys = signing_keys(settings)
    issued = now or datetime.now(UTC)
    ttl = settings.access_token_ttl_seconds
    claims = {
        "sub": str(user_id),
        "sid": str(session_id),
        "role": role,
        "aud": AUDIENCE,
        "iss": ISSUER,
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=ttl),
        "jti": uuid.uuid4().hex,
    }
    token = jwt.encode(claims, keys[kid], algorithm=ALGORITHM, headers={"kid": kid})
    return token, ttl


def verify_access_token(settings: Settings, token: str) -> AccessClaims:
    """The claims of a valid access token, or InvalidTokenError."""
    _, keys = signing_keys(settings)
    try:
        header = jwt.get_unverified_header(token)
        key = keys.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise InvalidTokenError("unknown key or algorithm")
        claims = jwt.decode(
            token,
            key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "sid", "aud", "iss", "role"]},
        )
        return AccessClaims(
            user_id=uuid.UUID(claims["sub"]),
            session_id=uuid.UUID(claims["sid"]),
            role=str(claims["role"]),
            expires_at=datetime.fromtimestamp(claims["exp"], tz=UTC),
        )
    except (jwt.PyJWTError, ValueError, KeyError, TypeError) as exc:
        raise InvalidTokenError(str(exc)) from exc


def new_opaque_token() -> tuple[str, bytes]:
    """A random token for the client and the SHA-256 digest kept in the database."""
    token = secrets.token_urlsafe(32)
    return token, token_digest(token)


def token_digest(token: str) -> bytes:
    """The stored form of an opaque token."""
    return hashlib.sha256(token.encode()).digest()
