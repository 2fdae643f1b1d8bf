"""Periodic provider health checks, exported as ``provider_health{provider}`` (1/0).

The API process runs them in the background (it serves ``/metrics``), every
``DIBOAS_PROVIDER_HEALTH_INTERVAL_SECONDS``. A probe is a cheap authenticated call that
proves the provider answers for us: Stripe reads the account balance, SMTP says hello
(EHLO/NOOP) without sending anything. Sandboxes run in process and are probed for what they
depend on (the payments sandbox keeps its state under the data folder).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiosmtplib
import structlog

from diboas.providers.exchange import Exchange
from diboas.providers.exchange_routing import venue_answers, venue_slots
from diboas.providers.payments import payment_provider
from diboas.providers.resilience import PROVIDER_HEALTH
from diboas.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Probe:
    """One provider's health check."""

    provider: str
    check: Callable[[], Awaitable[bool]]


def probes(settings: Settings) -> list[Probe]:
    """The checks for the providers the settings configure."""
    return [_card_payments(settings), _email(settings), *_exchanges(settings)]


def _exchanges(settings: Settings) -> list[Probe]:
    # Each venue quotes its first market (the same probe routing uses to skip a sick venue).
    return [_venue(slot.name, slot.implementation) for slot in venue_slots(settings).slots]


def _venue(name: str, venue: Exchange) -> Probe:
    return Probe(name, lambda: venue_answers(venue))


def _card_payments(settings: Settings) -> Probe:
    if settings.stripe_api_key is None:
        folder = Path(settings.data_dir) / "sandbox" / "payments"
        return Probe("payments-sandbox", lambda: _writable(folder))

    async def stripe_answers() -> bool:
        provider = payment_provider(settings, method="card")
        try:
            healthy = getattr(provider, "healthy", None)
            return bool(healthy is not None and await healthy())
        finally:
            close = getattr(provider, "aclose", None)
            if close is not None:
                await close()

    return Probe("stripe", stripe_answers)


def _email(settings: Settings) -> Probe:
    if settings.email_provider != "smtp":
        return Probe("email-sandbox", lambda: _writable(Path(settings.data_dir) / "outbox"))

    async def smtp_answers() -> bool:
        client = aiosmtplib.SMTP(
            hostname=settings.smtp_host,
            port=settings.smtp_port,
            timeout=settings.smtp_timeout_seconds,
            start_tls=settings.smtp_starttls,
            tls_context=ssl.create_default_context() if settings.smtp_starttls else None,
        )
        try:
            await client.connect()
            await client.noop()
        except (TimeoutError, aiosmtplib.SMTPException, OSError):
            return False
        finally:
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        return True

    return Probe("smtp", smtp_answers)


async def _writable(folder: Path) -> bool:
    def check() -> bool:
        folder.mkdir(parents=True, exist_ok=True)
        return folder.is_dir()

    try:
        return await asyncio.to_thread(check)
    except OSError:
        return False


async def check_all(checks: list[Probe], *, seconds_each: float) -> dict[str, bool]:
    """Run every probe (each bounded by ``seconds_each``) and export the results."""

    async def run(probe: Probe) -> bool:
        try:
            async with asyncio.timeout(seconds_each):
                return await probe.check()
        except Exception:  # any failure of a probe means "not healthy"
            log.warning("provider health check failed", provider=probe.provider, exc_info=True)
            return False

    results = await asyncio.gather(*(run(probe) for probe in checks))
    health = {probe.provider: ok for probe, ok in zip(checks, results, strict=True)}
    for provider, ok in health.items():
        PROVIDER_HEALTH.labels(provider).set(1 if ok else 0)
    return health


async def keep_checking(settings: Settings) -> None:
    """Check every provider now and then every interval, until cancelled."""
    checks = probes(settings)
    while True:
        await check_all(checks, seconds_each=settings.provider_health_timeout_seconds)
        await asyncio.sleep(settings.provider_health_interval_seconds)
