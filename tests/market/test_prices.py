"""Sandbox prices are a pure function of the instant; the price service caches "now"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from diboas.kit.errors import InvalidRequestError
from diboas.market.prices import PriceService, default_service, price_usd, prices, service_for
from diboas.market.schemas import parse_as_of, usd_text
from diboas.providers.market import PriceUnavailableError, SandboxPriceFeed

START = datetime(2025, 3, 1, tzinfo=UTC)
# Every 7 minutes over two days: every phase of the hourly wave meets the daily one.
INSTANTS = [START + timedelta(minutes=7 * i) for i in range(2 * 24 * 60 // 7)]


async def test_the_same_instant_always_gives_the_same_price() -> None:
    at = datetime(2025, 6, 15, 13, 45, 12, 345678, tzinfo=UTC)
    first = await SandboxPriceFeed().prices_usd(["BTC", "ETH"], at)
    again = await SandboxPriceFeed().prices_usd(["ETH", "BTC"], at)
    assert first == again
    # The same instant written in another time zone is the same instant.
    elsewhere = at.astimezone(timezone(timedelta(hours=-5, minutes=-30)))
    assert await SandboxPriceFeed().prices_usd(["BTC", "ETH"], elsewhere) == first


async def test_past_prices_are_reproducible_across_releases() -> None:
    # Pinned figures: if the model changes, every stored "as of" valuation would change too.
    feed = SandboxPriceFeed()
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert await feed.prices_usd(["BTC", "ETH"], epoch) == {
        "BTC": Decimal("65217.47"),
        "ETH": Decimal("3340.77"),
    }
    noon = datetime(2025, 1, 1, 12, tzinfo=UTC)
    assert await feed.prices_usd(["BTC", "ETH"], noon) == {
        "BTC": Decimal("65217.47"),
        "ETH": Decimal("3093.49"),
    }


@pytest.mark.parametrize("asset", ["USD", "USDC"])
async def test_dollars_are_worth_exactly_one_dollar(asset: str) -> None:
    feed = SandboxPriceFeed()
    for at in INSTANTS[::10]:
        assert (await feed.prices_usd([asset], at))[asset] == Decimal(1)


@pytest.mark.parametrize("asset", ["BTC", "ETH"])
async def test_coins_move_within_their_bounds_in_cents(asset: str) -> None:
    feed = SandboxPriceFeed()
    low, high = feed.bounds(asset)
    seen = [(await feed.prices_usd([asset], at))[asset] for at in INSTANTS]
    assert all(low <= price <= high for price in seen)
    assert all(price == price.quantize(Decimal("0.01")) for price in seen)
    # It does move, across most of its range.
    assert len(set(seen)) > len(seen) // 2
    assert max(seen) - min(seen) > (high - low) / 2


@pytest.mark.parametrize("asset", ["BTC", "ETH"])
async def test_prices_move_smoothly(asset: str) -> None:
    feed = SandboxPriceFeed()
    low, high = feed.bounds(asset)
    for at in INSTANTS[::20]:
        now = (await feed.prices_usd([asset], at))[asset]
        one_second_later = (await feed.prices_usd([asset], at + timedelta(seconds=1)))[asset]
        # Well under a thousandth of the range per second.
        assert abs(one_second_later - now) <= (high - low) / 1000


async def test_bitcoin_and_ether_do_not_move_in_step() -> None:
    feed = SandboxPriceFeed()
    ratios = {
        (await feed.prices_usd(["BTC"], at))["BTC"] / (await feed.prices_usd(["ETH"], at))["ETH"]
        for at in INSTANTS[::12]
    }
    assert len(ratios) > 10


async def test_unknown_assets_and_naive_instants_are_refused() -> None:
    feed = SandboxPriceFeed()
    with pytest.raises(PriceUnavailableError) as refused:
        await feed.prices_usd(["DOGE"], START)
    assert refused.value.status_code == 503 and refused.value.details["asset"] == "DOGE"
    with pytest.raises(ValueError, match="time-zone"):
        await feed.prices_usd(["BTC"], datetime(2025, 1, 1))  # noqa: DTZ001 - the point


class _Clock:
    """A clock the test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


async def test_now_is_one_cached_snapshot_until_it_expires() -> None:
    clock = _Clock(START)
    cached = PriceService(SandboxPriceFeed(), cache_seconds=3600, clock=clock)
    first = await cached.prices()
    clock.at = START + timedelta(minutes=30)
    again = await cached.prices()
    assert again == first
    assert {p.as_of for p in first} == {START}

    uncached = PriceService(SandboxPriceFeed(), cache_seconds=0, clock=clock)
    clock.at = START + timedelta(hours=2)
    later = await uncached.price_usd("BTC")
    assert later.as_of == START + timedelta(hours=2)
    assert later.price_usd == (await SandboxPriceFeed().prices_usd(["BTC"], clock.at))["BTC"]


async def test_a_past_instant_bypasses_the_cache_and_is_answered_in_utc() -> None:
    service = PriceService(SandboxPriceFeed(), cache_seconds=3600, clock=_Clock(START))
    await service.prices()
    at = datetime(2024, 2, 29, 23, 59, tzinfo=timezone(timedelta(hours=2)))
    price = await service.price_usd("ETH", at)
    assert price.as_of == at and price.as_of.tzinfo == UTC
    assert price.price_usd == (await SandboxPriceFeed().prices_usd(["ETH"], at))["ETH"]
    as_of, values = await service.prices_for(["BTC", "USD", "BTC"], at)
    assert as_of == at and set(values) == {"BTC", "USD"}


async def test_an_asset_the_feed_does_not_price_is_unavailable_now_too() -> None:
    service = PriceService(SandboxPriceFeed(), clock=_Clock(START))
    with pytest.raises(PriceUnavailableError):
        await service.prices_for(["BTC", "XYZ"])


async def test_module_functions_use_the_process_wide_sandbox() -> None:
    listed = await prices(START)
    assert [p.asset for p in listed] == ["BTC", "ETH", "EUR", "USD", "USDC"]
    btc = await price_usd("BTC", START)
    assert btc in listed
    # An app handed no feed prices from its exchange venues (tests/market/test_one_source.py).
    assert service_for({}) is not default_service()
    feed = SandboxPriceFeed()
    services: dict[str, object] = {"price_feed": feed}
    own = service_for(services)
    assert own.feed is feed and service_for(services) is own


def test_usd_text_keeps_cents_and_finer_digits() -> None:
    assert usd_text(Decimal(1)) == "1.00"
    assert usd_text(Decimal("65000.5")) == "65000.50"
    assert usd_text(Decimal("0.999812")) == "0.999812"


NOW = datetime(2025, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-05-01T11:00:00Z", datetime(2025, 5, 1, 11, tzinfo=UTC)),
        ("2025-05-01T13:30:00+02:00", datetime(2025, 5, 1, 11, 30, tzinfo=UTC)),
        ("2025-05-01T12:00:00.000000+00:00", NOW),
    ],
)
def test_as_of_accepts_iso_instants_with_a_zone(text: str, expected: datetime) -> None:
    parsed = parse_as_of(text, now=NOW)
    assert parsed == expected and parsed is not None and parsed.tzinfo == UTC


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2025-05-01T12:00:00.000001Z", "future"),
        ("2025-05-01T11:00:00", "time zone"),
        ("2025-05-01", "time zone"),
        ("yesterday", "ISO 8601"),
        ("", "ISO 8601"),
        ("2025-13-01T00:00:00Z", "ISO 8601"),
        ("2025-05-01T11:00:00 00:00", "ISO 8601"),
        ("2025-05-01T11:00:00Z\x00", "ISO 8601"),
        ("0001-01-01T00:00:00+05:00", "out of range"),
    ],
)
def test_as_of_refuses_anything_else(text: str, problem: str) -> None:
    with pytest.raises(InvalidRequestError, match=problem) as refused:
        parse_as_of(text, now=NOW)
    assert refused.value.status_code == 422 and refused.value.details == {"field": "as_of"}


def test_no_as_of_means_now() -> None:
    assert parse_as_of(None) is None


@pytest.mark.parametrize(
    "text",
    [
        "2025-05-01T11:00:00\x00Z",
        "20250501T110000Z",
        "2025-05-01T11:00:00+00:00:00",
        "2025-05-01T11Z",
    ],
)
def test_as_of_takes_only_the_rfc_3339_form(text: str) -> None:
    with pytest.raises(InvalidRequestError, match="ISO 8601"):
        parse_as_of(text, now=NOW)
