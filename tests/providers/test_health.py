"""Provider health checks against the real things: localstripe and an SMTP sink answer
(1), a closed port does not (0); the gauge ``provider_health{provider}`` says so."""

from __future__ import annotations

import socket
from pathlib import Path

from aiosmtpd.controller import Controller
from prometheus_client import REGISTRY
from pydantic import SecretStr

from diboas.providers.health import check_all, probes
from diboas.settings import Settings
from tests.providers.conftest import LOCALSTRIPE_API_KEY


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _gauge(provider: str) -> float | None:
    return REGISTRY.get_sample_value("provider_health", {"provider": provider})


class _Sink:
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802 - aiosmtpd's hook name
        return "250 OK"


async def test_live_providers_are_healthy_and_unreachable_ones_are_not(localstripe: str) -> None:
    sink_port = _closed_port()
    sink = Controller(_Sink(), hostname="127.0.0.1", port=sink_port)
    sink.start()
    try:
        live = Settings(
            env="test",
            stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY),
            stripe_api_base=localstripe,
            email_provider="smtp",
            smtp_host="127.0.0.1",
            smtp_port=sink_port,
            smtp_starttls=False,
        )
        assert await check_all(probes(live), seconds_each=5) == {
            "stripe": True,
            "smtp": True,
            "sandbox-binance": True,  # the default venues quote in process
            "sandbox-coinbase": True,
        }
        assert (_gauge("stripe"), _gauge("smtp")) == (1.0, 1.0)
    finally:
        sink.stop()

    dead = Settings(
        env="test",
        stripe_api_key=SecretStr(LOCALSTRIPE_API_KEY),
        stripe_api_base=f"http://127.0.0.1:{_closed_port()}",
        email_provider="smtp",
        smtp_host="127.0.0.1",
        smtp_port=_closed_port(),
        smtp_starttls=False,
    )
    health = await check_all(probes(dead), seconds_each=5)
    assert (health["stripe"], health["smtp"]) == (False, False)
    assert (_gauge("stripe"), _gauge("smtp")) == (0.0, 0.0)


async def test_sandboxes_are_healthy_while_their_data_folder_is_usable(tmp_path: Path) -> None:
    usable = Settings(env="test", data_dir=str(tmp_path / "data"))
    health = await check_all(probes(usable), seconds_each=5)
    assert (health["payments-sandbox"], health["email-sandbox"]) == (True, True)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the data folder should be")
    health = await check_all(probes(Settings(env="test", data_dir=str(blocked))), seconds_each=5)
    assert (health["payments-sandbox"], health["email-sandbox"]) == (False, False)
    assert _gauge("payments-sandbox") == 0.0


async def test_an_exchange_venue_that_does_not_answer_is_unhealthy() -> None:
    settings = Settings(
        env="test",
        exchange_venues="binance",
        exchange_binance_api_url=f"http://127.0.0.1:{_closed_port()}",
        exchange_timeout_seconds=2,
    )
    health = await check_all(probes(settings), seconds_each=5)
    assert health["binance"] is False
    assert _gauge("binance") == 0.0
