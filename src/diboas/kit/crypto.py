"""Data at rest: AES-256-GCM under versioned keys, and keyed fingerprints.

Every key is derived with HKDF-SHA256 from a configured secret, one secret per key version.
Sealed data records the version it was sealed under, so a rotation only adds a version:
new data is sealed under the current one, old rows still open under theirs, and a background
re-sealing pass retires the old version once no row uses it.

Fingerprints (HMAC-SHA256) let equal values be found without decrypting anything, e.g. to
refuse linking the same bank account twice. They must stay comparable across rotations, so
they are keyed from one fixed version (``fingerprint_version``); re-keying them means
recomputing every stored fingerprint.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from diboas.settings import Settings

NONCE_BYTES = 12  # the size GCM is specified for; random per message
KEY_BYTES = 32  # AES-256
_SALT = b"diboas/kit/crypto/v1"


class DecryptionError(Exception):
    """The ciphertext cannot be opened: wrong key version, wrong context, or tampered."""


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

    def __init__(
        self,
        secrets: Mapping[int, str | bytes],
        *,
        current: int,
        fingerprint_version: int = 1,
    ) -> None:
        if current not in secrets or fingerprint_version not in secrets:
            raise ValueError("the current and fingerprint key versions must be configured")
        if any(version < 1 for version in secrets):
            raise ValueError("key versions start at 1")
        raw = {v: s.encode() if isinstance(s, str) else bytes(s) for v, s in secrets.items()}
        if any(not secret for secret in raw.values()):
            raise ValueError("an encryption secret cannot be empty")
        self.current = current
        self._aead = {v: AESGCM(_derive(s, f"aes-256-gcm/v{v}")) for v, s in raw.items()}
        self._fingerprint_key = _derive(raw[fingerprint_version], "hmac-sha256/fingerprint")

    @classmethod
    def from_settings(cls, settings: Settings) -> KeyRing:
        """The platform's key ring: version 1 from ``DIBOAS_ENCRYPTION_KEY``."""
        return cls({1: settings.encryption_key.get_secret_value()}, current=1)

    @property
    def versions(self) -> tuple[int, ...]:
        """Every version this ring can open."""
        return tuple(sorted(self._aead))

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
        aead = self._aead.get(sealed.key_version)
        if aead is None:
            raise DecryptionError(f"key version {sealed.key_version} is not configured")
        if len(sealed.ciphertext) <= NONCE_BYTES:
            raise DecryptionError("ciphertext is too short")
        nonce, body = sealed.ciphertext[:NONCE_BYTES], sealed.ciphertext[NONCE_BYTES:]
        try:
            return aead.decrypt(nonce, body, context)
        except InvalidTag:
            raise DecryptionError("ciphertext does not open under its key and context") from None

    def fingerprint(self, value: bytes, *, purpose: str) -> bytes:
        """A keyed digest of ``value``: equal values (for one purpose) give equal fingerprints."""
        message = purpose.encode() + b"\x00" + value
        return hmac.new(self._fingerprint_key, message, hashlib.sha256).digest()
