"""SMS: the Twilio adapter against a local server implementing Twilio's Messages API and its
errors, and the sandbox that writes files and refuses Twilio's documented test numbers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from diboas.providers.resilience import ProviderError, ProviderTimeoutError
from diboas.providers.sms import (
    SANDBOX_REFUSALS,
    SandboxSmsSender,
    TwilioConfig,
    TwilioSmsSender,
    sms_sender,
)
from diboas.settings import Settings
from tests.providers.fakes import twilio as twilio_fake
from tests.providers.fakes.server import LocalServer

TO = "+14155550123"


@pytest.fixture(scope="session")
def twilio_state() -> twilio_fake.TwilioState:
    return twilio_fake.TwilioState()


@pytest.fixture(scope="session")
def twilio_url(twilio_state: twilio_fake.TwilioState) -> Iterator[str]:
    with LocalServer(twilio_fake.create_app(twilio_state)) as url:
        yield url


@pytest.fixture(autouse=True)
def _no_leftover_faults(twilio_state: twilio_fake.TwilioState) -> Iterator[None]:
    yield
    twilio_state.faults.clear()


def twilio(url: str, **overrides: object) -> TwilioSmsSender:
    values: dict[str, object] = {
        "account_sid": twilio_fake.ACCOUNT_SID,
        "auth_token": SecretStr(twilio_fake.AUTH_TOKEN),
        "from_number": twilio_fake.FROM_NUMBER,
        "base_url": url,
        "timeout": 0.5,
        **overrides,
    }
    return TwilioSmsSender(TwilioConfig(**values))  # type: ignore[arg-type]


# --- Twilio adapter ---


async def test_twilio_send_returns_the_message_sid(
    twilio_url: str, twilio_state: twilio_fake.TwilioState
) -> None:
    sid = await twilio(twilio_url).send(TO, "Your diBoaS code is 123456")
    assert sid.startswith("SM") and len(sid) == 34
    message = twilio_state.messages[sid]
    assert (message["to"], message["from"], message["body"]) == (
        TO,
        twilio_fake.FROM_NUMBER,
        "Your diBoaS code is 123456",
    )
    request = twilio_state.requests[-1]
    assert request["path"] == f"/2010-04-01/Accounts/{twilio_fake.ACCOUNT_SID}/Messages.json"
    assert request["headers"]["content-type"] == "application/x-www-form-urlencoded"
    assert request["form"] == {
        "To": TO,
        "From": twilio_fake.FROM_NUMBER,
        "Body": "Your diBoaS code is 123456",
    }


@pytest.mark.parametrize(
    ("to", "code"),
    [
        ("+15005550001", "21211"),
        ("+15005550002", "21612"),
        ("+15005550003", "21408"),
        ("+15005550004", "21610"),
        ("+15005550009", "21614"),
        ("0123", "21211"),
    ],
)
async def test_twilio_refused_numbers_are_not_retryable(
    twilio_url: str, to: str, code: str
) -> None:
    with pytest.raises(ProviderError) as refused:
        await twilio(twilio_url).send(to, "hello")
    assert (refused.value.retryable, refused.value.code, refused.value.provider) == (
        False,
        code,
        "twilio",
    )


async def test_twilio_bad_credentials_are_not_retryable(twilio_url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await twilio(twilio_url, auth_token=SecretStr("wrong")).send(TO, "hello")
    assert (refused.value.retryable, refused.value.code) == (False, "20003")
    assert "401" in str(refused.value)


async def test_twilio_unowned_from_number_is_not_retryable(twilio_url: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await twilio(twilio_url, from_number="+15005550007").send(TO, "hello")
    assert (refused.value.retryable, refused.value.code) == (False, "21606")


@pytest.mark.parametrize(("status", "code"), [(429, "20429"), (500, "20500"), (503, "20503")])
async def test_twilio_rate_limit_and_server_errors_are_retryable(
    twilio_url: str, twilio_state: twilio_fake.TwilioState, status: int, code: str
) -> None:
    twilio_state.faults.fail_next(status, retry_after=3 if status == 429 else None)
    with pytest.raises(ProviderError) as failed:
        await twilio(twilio_url).send(TO, "hello")
    assert (failed.value.retryable, failed.value.code) == (True, code)
    # The next attempt goes through: the failure was the vendor's, not the request's.
    assert (await twilio(twilio_url).send(TO, "hello")).startswith("SM")


async def test_twilio_no_answer_in_time_is_a_timeout(
    twilio_url: str, twilio_state: twilio_fake.TwilioState
) -> None:
    twilio_state.faults.delay_next(1.5)
    with pytest.raises(ProviderTimeoutError) as slow:
        await twilio(twilio_url).send(TO, "hello")
    assert slow.value.retryable


# --- sandbox ---


async def test_sandbox_writes_the_message_to_the_outbox(tmp_path: Path) -> None:
    sender = sms_sender(Settings(env="test", data_dir=tmp_path))
    assert isinstance(sender, SandboxSmsSender)
    sid = await sender.send(TO, "Your diBoaS code is 654321")
    written = json.loads((tmp_path / "sms-outbox" / f"{sid}.json").read_text())
    assert (written["sid"], written["to"], written["body"]) == (
        sid,
        TO,
        "Your diBoaS code is 654321",
    )
    assert sid.startswith("SM")


@pytest.mark.parametrize(
    ("to", "code"),
    [
        *((number, str(code)) for number, (code, _) in SANDBOX_REFUSALS.items()),
        ("555-0100", "21211"),
    ],
)
async def test_sandbox_refuses_twilios_test_numbers(tmp_path: Path, to: str, code: str) -> None:
    with pytest.raises(ProviderError) as refused:
        await SandboxSmsSender(Settings(env="test", data_dir=tmp_path)).send(to, "hello")
    assert (refused.value.retryable, refused.value.code) == (False, code)
    assert not (tmp_path / "sms-outbox").exists()


async def test_sandbox_and_twilio_refuse_the_same_numbers_alike(
    tmp_path: Path, twilio_url: str
) -> None:
    sandbox = SandboxSmsSender(Settings(env="test", data_dir=tmp_path))
    for number in SANDBOX_REFUSALS:
        outcomes = []
        for sender in (sandbox, twilio(twilio_url)):
            with pytest.raises(ProviderError) as refused:
                await sender.send(number, "hello")
            outcomes.append((refused.value.code, refused.value.retryable))
        assert outcomes[0] == outcomes[1], number


def test_the_factory_picks_twilio_when_configured(twilio_url: str) -> None:
    config = TwilioConfig(
        account_sid=twilio_fake.ACCOUNT_SID,
        auth_token=SecretStr(twilio_fake.AUTH_TOKEN),
        from_number=twilio_fake.FROM_NUMBER,
        base_url=twilio_url,
    )
    chosen = sms_sender(
        Settings(
            env="test",
            sms_provider="twilio",
            twilio_account_sid=config.account_sid,
            twilio_auth_token=config.auth_token,
            twilio_from_number=config.from_number,
            twilio_base_url=config.base_url,
        )
    )
    assert isinstance(chosen, TwilioSmsSender)
    with pytest.raises(ValueError, match="DIBOAS_TWILIO_ACCOUNT_SID"):
        sms_sender(Settings(env="test", sms_provider="twilio"))
    with pytest.raises(ValidationError):
        Settings(env="test", sms_provider="vonage")
