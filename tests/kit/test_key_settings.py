"""The encryption key's settings: the current version and earlier ones (JSON), read from the
environment into the key ring; production refuses weak earlier keys like the current one."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from diboas.kit.crypto import KeyRing
from diboas.settings import DEFAULT_ENCRYPTION_KEY, Settings

STRONG = {"secret_key": SecretStr("s" * 40), "encryption_key": SecretStr("e" * 40)}


def test_defaults_are_one_version(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DIBOAS_ENCRYPTION_KEY_VERSION", "DIBOAS_ENCRYPTION_KEYS_PREVIOUS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(env="test")
    assert settings.encryption_key_version == 1
    assert settings.encryption_keys == {1: DEFAULT_ENCRYPTION_KEY}
    keys = KeyRing.from_settings(settings)
    assert keys.current == 1 and keys.versions == (1,)


def test_the_environment_configures_a_rotation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIBOAS_ENCRYPTION_KEY", "the-new-secret")
    monkeypatch.setenv("DIBOAS_ENCRYPTION_KEY_VERSION", "2")
    monkeypatch.setenv("DIBOAS_ENCRYPTION_KEYS_PREVIOUS", '{"1": "the-old-secret"}')
    settings = Settings(env="test")
    assert settings.encryption_keys == {1: "the-old-secret", 2: "the-new-secret"}
    keys = KeyRing.from_settings(settings)
    assert keys.current == 2 and keys.versions == (1, 2)
    # Version 1 of this ring is the ring the old secret alone made: what it sealed opens.
    before = KeyRing({1: "the-old-secret"}, current=1).encrypt(b"n", context=b"c")
    assert keys.decrypt(before, context=b"c") == b"n"
    assert keys.encrypt(b"n", context=b"c").key_version == 2
    # The ring is built once per configuration, not on every call.
    assert KeyRing.from_settings(settings) is keys
    assert repr(settings).count("the-old-secret") == 0


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"encryption_key_version": 2, "encryption_keys_previous": {2: "x" * 40}}, "current"),
        ({"encryption_keys_previous": {0: "x" * 40}}, "not 1-32767"),
        ({"encryption_key_version": 0}, "greater than or equal to 1"),
        ({"encryption_key_version": 40_000}, "less than or equal to 32767"),
    ],
)
def test_inconsistent_versions_are_refused(values: dict[str, object], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(env="test", **values)  # type: ignore[arg-type]


@pytest.mark.parametrize("previous", ["short", DEFAULT_ENCRYPTION_KEY])
def test_production_refuses_a_weak_previous_key(previous: str) -> None:
    with pytest.raises(
        ValidationError, match=r"short secrets: DIBOAS_ENCRYPTION_KEYS_PREVIOUS\[1\]"
    ):
        Settings(
            env="production",
            encryption_key_version=2,
            encryption_keys_previous={1: SecretStr(previous)},
            **STRONG,
        )


def test_production_accepts_strong_keys_and_development_any() -> None:
    settings = Settings(
        env="production",
        encryption_key_version=2,
        encryption_keys_previous={1: SecretStr("p" * 40)},
        **STRONG,
    )
    assert KeyRing.from_settings(settings).versions == (1, 2)
    assert Settings(env="development", encryption_keys_previous={7: SecretStr("short")})
