"""Data at rest: AES-256-GCM under versioned keys, and keyed fingerprints.

Every key is derived with HKDF-SHA256 from a configured secret, one secret per key version.
Sealed data records the version it was sealed under, so a rotation only adds a version:
new data is sealed under the current one, old rows still open under theirs, and
``diboas keys reseal`` moves every row to the current version so the old one can be dropped.

Fingerprints (HMAC-SHA256) let equal values be found without decrypting anything, e.g. to
refuse linking the same bank account twice. Each version has its own fingerprint key, and a
stored fingerprint records the version it was made under: new ones are made under the current
version, a lookup asks for the value's fingerprint under every configured version (so a value
fingerprinted before a rotation is still found after it), and re-sealing recomputes them
under the current version.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from diboas.kit.errors import DomainError
from diboas.settings import Settings

NONCE_BYTES = 12  # the size GCM is specified for; random per message
KEY_BYTES = 32  # AES-256
_SALT = b"diboas/kit/crypto/v1"
# Every version's fingerprint key is derived with this label: version 1's fingerprints were
# made with it before fingerprints were versioned, and they must keep matching.
_FINGERPRINT_INFO = "hmac-sha256/fingerprint"


class DecryptionError(Exception):
    """The ciphertext cannot be opened: wrong key version, wrong context, or tampered."""


class KeyUnavailableError(DecryptionError, DomainError):
    """Data sealed under a key version this process is not configured with.

    An operator's mistake (a version dropped while rows still use it, or a process deployed
    without the newest key), not the caller's: the data is intact and opens again once the
    version is configured. Rendered as 503 so a request fails clearly and can be retried.
    """

    status_code = 503
    code = "encryption_key_unavailable"


@dataclass(frozen=True, slots=True)
class Sealed:
    """Ciphertext with the key version it was sealed under (store both)."""

    key_version: int
    ciphertext: bytes  # nonce ‖ AES-GCM ciphertext ‖ tag


def _derive(secret: bytes, info: str) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=_SALT, info=info.encode()).derive(
        secret
    )


class KeyRing:
    """Encryption keys by version: seal under ``current``, open under any listed version."""

    def __init__(self, secrets: Mapping[int, str | bytes], *, current: int) -> None:
        if current not in secrets:
            raise ValueError("the current key version must be configured")
        if any(version < 1 for version in secrets):
            raise ValueError("key versions start at 1")
        raw = {v: s.encode() if isinstance(s, str) else bytes(s) for v, s in secrets.items()}
        if any(not secret for secret in raw.values()):
            raise ValueError("an encryption secret cannot be empty")
        self.current = current
        self._aead = {v: AESGCM(_derive(s, f"aes-256-gcm/v{v}")) for v, s in raw.items()}
        self._fingerprint_keys = {v: _derive(s, _FINGERPRINT_INFO) for v, s in raw.items()}

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The platform's key ring: ``DIBOAS_ENCRYPTION_KEY`` as version
        ``DIBOAS_ENCRYPTION_KEY_VERSION`` (current), and ``DIBOAS_ENCRYPTION_KEYS_PREVIOUS``."""
        secrets = tuple(sorted(settings.encryption_keys.items()))
        return _ring(secrets, settings.encryption_key_version)

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version this ring can open."""
        return tuple(sorted(self._aead))

    def can_open(self, key_version: int) -> bool:
        """Whether data sealed (or fingerprinted) under ``key_version`` can be used here."""
        return key_version in self._aead

    def require(self, key_version: int) -> None:
        """Raise ``KeyUnavailableError`` unless ``key_version`` is configured."""
        if not self.can_open(key_version):
            raise KeyUnavailableError(
                f"key version {key_version} is not configured",
                details={"key_version": key_version},
            )

    def encrypt(self, plaintext: bytes, *, context: bytes) -> Sealed:
        """Seal ``plaintext`` under the current key, bound to ``context``.

        The context (e.g. the row's id) is authenticated, not stored: ciphertext copied into
        another row does not open there.
        """
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead[self.current].encrypt(nonce, plaintext, context)
        return Sealed(self.current, nonce + sealed)

    def decrypt(self, sealed: Sealed, *, context: bytes) -> bytes:
        """Open ``sealed`` with the key of its own version."""
        self.require(sealed.key_version)
        if len(sealed.ciphertext) <= NONCE_BYTES:
            raise DecryptionError("ciphertext is too short")
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            return self._aead[sealed.key_version].decrypt(nonce, body, context)
        except InvalidTag:
            raise DecryptionError("ciphertext does not open under its key and context") from None

    def fingerprint(self, value: bytes, *, purpose: str, version: int | None = None) -> bytes:
        """A keyed digest of ``value`` under ``version`` (the current one by default): equal
        values (for one purpose and version) give equal fingerprints."""
        key_version = self.current if version is None else version
        self.require(key_version)
        message = purpose.encode() + b"\x00" + value
        return hmac.new(self._fingerprint_keys[key_version], message, hashlib.sha256).digest()

    def fingerprints(self, value: bytes, *, purpose: str) -> dict[int, bytes]:
        """``value``'s fingerprint under every configured version: what a lookup compares
        stored fingerprints with while a rotation is under way."""
        return {v: self.fingerprint(value, purpose=purpose, version=v) for v in self.versions}


@lru_cache(maxsize=8)
def _ring(secrets: tuple[tuple[int, str], ...], current: int) -> KeyRing:
    # Deriving the keys is cheap but not free, and the settings change only on a restart.
    return KeyRing(dict(secrets), current=current)
