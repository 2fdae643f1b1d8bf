"""Settings: the DIBOAS_ prefix, defaults, and a production profile that refuses weak secrets."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from diboas.settings import Settings


def test_environment_variables_use_the_diboas_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIBOAS_PORT", "9123")
    monkeypatch.setenv("DIBOAS_DATABASE_URL", "postgresql://db.internal/diboas")
    settings = Settings()
    assert settings.port == 9123
    assert settings.embedded_database is False


def test_an_empty_database_url_means_embedded() -> None:
    assert Settings(database_url="").embedded_database is True
    assert Settings(database_url="   ").embedded_database is True


def test_production_refuses_default_secrets() -> None:
    with pytest.raises(ValidationError, match="DIBOAS_SECRET_KEY"):
        Settings(env="production", encryption_key=SecretStr("e" * 40))


def test_production_refuses_short_secrets() -> None:
    with pytest.raises(ValidationError, match="DIBOAS_ENCRYPTION_KEY"):
        Settings(
            env="production", secret_key=SecretStr("s" * 40), encryption_key=SecretStr("short")
        )


def test_production_starts_with_strong_secrets() -> None:
    settings = Settings(
        env="production", secret_key=SecretStr("s" * 40), encryption_key=SecretStr("e" * 40)
    )
    assert settings.email_verification_required is True


def test_email_verification_defaults_by_environment() -> None:
    assert Settings(env="development").email_verification_required is False
    assert Settings(env="test", require_email_verification=True).email_verification_required is True


@pytest.mark.parametrize(
    ("field", "value"), [("port", "0"), ("idempotency_ttl_hours", "23"), ("env", "staging")]
)
def test_out_of_range_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, field: str, value: str
) -> None:
    monkeypatch.setenv(f"DIBOAS_{field.upper()}", value)
    with pytest.raises(ValidationError):
        Settings()


def test_previous_secret_keys_come_from_the_environment_as_json_and_verify_after_the_current(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DIBOAS_SECRET_KEY", "n" * 40)
    monkeypatch.setenv("DIBOAS_SECRET_KEY_PREVIOUS", '["' + "o" * 40 + '"]')
    assert Settings().secret_keys == (b"n" * 40, b"o" * 40)


def test_production_refuses_a_short_previous_secret_key() -> None:
    strong = {"secret_key": SecretStr("s" * 40), "encryption_key": SecretStr("e" * 40)}
    Settings(env="production", secret_key_previous=[SecretStr("p" * 40)], **strong)
    with pytest.raises(ValidationError, match="DIBOAS_SECRET_KEY_PREVIOUS"):
        Settings(env="production", secret_key_previous=[SecretStr("short")], **strong)
