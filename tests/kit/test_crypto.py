"""AES-256-GCM under versioned keys (kit/crypto): round trips, binding to a context, tamper
detection, rotation by adding a version, fingerprints per version that survive rotation."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from diboas.kit.crypto import NONCE_BYTES, DecryptionError, KeyRing, KeyUnavailableError, Sealed
from diboas.settings import Settings

CONTEXT = b"bank_accounts:1:2"


def test_a_round_trip_under_the_settings_key() -> None:
    keys = KeyRing.from_settings(Settings(env="test"))
    sealed = keys.encrypt(b"000123456789", context=CONTEXT)
    assert sealed.key_version == 1
    assert b"000123456789" not in sealed.ciphertext
    assert len(sealed.ciphertext) == NONCE_BYTES + len(b"000123456789") + 16  # GCM tag
    assert keys.decrypt(sealed, context=CONTEXT) == b"000123456789"


def test_each_encryption_uses_a_fresh_nonce() -> None:
    keys = KeyRing({1: "secret-one"}, current=1)
    first, second = (keys.encrypt(b"same", context=CONTEXT) for _ in range(2))
    assert first.ciphertext != second.ciphertext


def test_another_context_another_key_or_a_flipped_bit_does_not_open() -> None:
    keys = KeyRing({1: "secret-one"}, current=1)
    sealed = keys.encrypt(b"000123456789", context=CONTEXT)
    with pytest.raises(DecryptionError):
        keys.decrypt(sealed, context=b"bank_accounts:9:2")
    with pytest.raises(DecryptionError):
        KeyRing({1: "secret-two"}, current=1).decrypt(sealed, context=CONTEXT)
    tampered = bytearray(sealed.ciphertext)
    tampered[-1] ^= 1
    with pytest.raises(DecryptionError):
        keys.decrypt(Sealed(1, bytes(tampered)), context=CONTEXT)
    with pytest.raises(DecryptionError):
        keys.decrypt(Sealed(1, b"short"), context=CONTEXT)


def test_rotation_adds_a_version_and_old_rows_still_open() -> None:
    old = KeyRing({1: "secret-one"}, current=1)
    sealed_v1 = old.encrypt(b"111122223333", context=CONTEXT)
    rotated = KeyRing({1: "secret-one", 2: "secret-two"}, current=2)
    sealed_v2 = rotated.encrypt(b"444455556666", context=CONTEXT)
    assert sealed_v2.key_version == 2 and rotated.versions == (1, 2)
    assert rotated.decrypt(sealed_v1, context=CONTEXT) == b"111122223333"
    assert rotated.decrypt(sealed_v2, context=CONTEXT) == b"444455556666"
    # A ring that lacks the row's version says so instead of guessing: a clear 503, not a bug.
    with pytest.raises(KeyUnavailableError, match="version 2") as refused:
        old.decrypt(sealed_v2, context=CONTEXT)
    assert refused.value.status_code == 503 and refused.value.details == {"key_version": 2}
    assert refused.value.code == "encryption_key_unavailable"
    assert isinstance(refused.value, DecryptionError)
    # Fingerprints are made under the current version; the old version's still match, so a
    # value fingerprinted before the rotation is found by asking under every version.
    before = old.fingerprint(b"x", purpose="p")
    assert rotated.fingerprint(b"x", purpose="p", version=1) == before
    assert rotated.fingerprint(b"x", purpose="p") != before
    assert rotated.fingerprints(b"x", purpose="p") == {
        1: before,
        2: rotated.fingerprint(b"x", purpose="p"),
    }
    with pytest.raises(KeyUnavailableError):
        old.fingerprint(b"x", purpose="p", version=2)
    assert old.can_open(1) and not old.can_open(2) and rotated.can_open(2)


def test_version_one_fingerprints_match_those_stored_before_versioning() -> None:
    # Fingerprints in bank_accounts were made before they recorded a version; version 1 must
    # keep producing exactly them (computed by the earlier kit/crypto for this secret).
    keys = KeyRing({1: "secret-one", 2: "secret-two"}, current=2)
    digest = keys.fingerprint(b"011000015:000123456789", purpose="bank_account", version=1)
    assert digest.hex() == "3bbfb484d830b43b9a839d9d28cb3dfe277055660acdb58e336136a34eefe758"


def test_fingerprints_are_keyed_and_separate_purposes() -> None:
    keys = KeyRing({1: "secret-one"}, current=1)
    assert keys.fingerprint(b"011000015:1234", purpose="bank_account") == keys.fingerprint(
        b"011000015:1234", purpose="bank_account"
    )
    assert keys.fingerprint(b"011000015:1234", purpose="bank_account") != keys.fingerprint(
        b"011000015:1235", purpose="bank_account"
    )
    assert keys.fingerprint(b"a", purpose="one") != keys.fingerprint(b"a", purpose="two")
    other = KeyRing({1: "secret-two"}, current=1)
    assert keys.fingerprint(b"a", purpose="one") != other.fingerprint(b"a", purpose="one")


def test_the_key_comes_from_the_settings_secret() -> None:
    one = KeyRing.from_settings(Settings(env="test", encryption_key=SecretStr("a" * 40)))
    two = KeyRing.from_settings(Settings(env="test", encryption_key=SecretStr("b" * 40)))
    sealed = one.encrypt(b"x", context=CONTEXT)
    with pytest.raises(DecryptionError):
        two.decrypt(sealed, context=CONTEXT)


@pytest.mark.parametrize(
    ("secrets", "current", "problem"),
    [
        ({1: "s"}, 2, "must be configured"),
        ({0: "s", 1: "t"}, 1, "start at 1"),
        ({1: ""}, 1, "cannot be empty"),
    ],
)
def test_a_misconfigured_ring_is_refused(
    secrets: dict[int, str], current: int, problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        KeyRing(secrets, current=current)
