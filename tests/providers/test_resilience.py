"""Retries, timeouts, the circuit breaker, failover and health — on real coroutines."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from diboas.providers.resilience import (
    BreakerState,
    CircuitBreaker,
    CircuitOpenError,
    Failover,
    ProviderError,
    ProviderSlot,
    ProviderTimeoutError,
    RetryPolicy,
    call,
    derive_idempotency_key,
)

FAST = RetryPolicy(attempts=3, base_delay=0.0, max_delay=0.0, timeout=0.2)


class Flaky:
    """Fails ``failures`` times with the given error, then answers."""

    def __init__(
        self, failures: int, error: ProviderError | None = None, hang: bool = False
    ) -> None:
        self.failures, self.error, self.hang, self.calls = failures, error, hang, 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            if self.hang:
                await asyncio.sleep(10)
            raise self.error or ProviderError("boom", retryable=True)
        return "ok"


async def test_retryable_failures_are_retried_until_success() -> None:
    flaky = Flaky(2)
    assert await call("p", flaky, policy=FAST) == "ok"
    assert flaky.calls == 3


async def test_non_retryable_failures_are_not_retried() -> None:
    flaky = Flaky(1, ProviderError("card declined", retryable=False, code="card_declined"))
    with pytest.raises(ProviderError, match="declined"):
        await call("p", flaky, policy=FAST)
    assert flaky.calls == 1


async def test_a_hung_call_times_out_and_is_retried() -> None:
    flaky = Flaky(1, hang=True)
    assert await call("p", flaky, policy=FAST) == "ok"
    always_hangs = Flaky(99, hang=True)
    with pytest.raises(ProviderTimeoutError):
        await call("p", always_hangs, policy=FAST)
    assert always_hangs.calls == 3


def test_backoff_is_jittered_and_capped() -> None:
    policy = RetryPolicy(base_delay=0.1, max_delay=1.0)
    delays = [policy.delay(10) for _ in range(200)]
    assert all(0 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 100  # jitter: not one fixed delay


def test_circuit_opens_then_half_opens_then_closes() -> None:
    now = [0.0]
    breaker = CircuitBreaker("p", failure_threshold=2, reset_after=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    now[0] = 10.0
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # exactly one trial call
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN  # the trial failed: open again
    now[0] = 20.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED


async def test_an_open_circuit_refuses_without_calling() -> None:
    breaker = CircuitBreaker("p", failure_threshold=1, reset_after=60)
    flaky = Flaky(99)
    with pytest.raises(CircuitOpenError):
        await call("p", flaky, policy=FAST, breaker=breaker)
    assert flaky.calls == 1  # the first failure opened it; no further calls were made


async def test_failover_moves_to_the_next_provider_on_retryable_failure() -> None:
    down = ProviderSlot("primary", Flaky(99), CircuitBreaker("primary", failure_threshold=1))
    up = ProviderSlot("secondary", Flaky(0), CircuitBreaker("secondary"))
    failover = Failover([down, up], policy=FAST)
    name, result = await failover.run(lambda impl: impl())
    assert (name, result) == ("secondary", "ok")


async def test_failover_does_not_hide_a_business_refusal() -> None:
    declined = ProviderSlot(
        "primary", Flaky(1, ProviderError("declined", retryable=False)), CircuitBreaker("primary")
    )
    other = ProviderSlot("secondary", Flaky(0), CircuitBreaker("secondary"))
    with pytest.raises(ProviderError, match="declined"):
        await Failover([declined, other], policy=FAST).run(lambda impl: impl())
    assert other.implementation.calls == 0


async def test_health_checks_export_a_gauge_and_steer_failover() -> None:
    primary = ProviderSlot("hc-primary", Flaky(0), CircuitBreaker("hc-primary"))
    secondary = ProviderSlot("hc-secondary", Flaky(0), CircuitBreaker("hc-secondary"))
    failover = Failover([primary, secondary], policy=FAST)

    async def probe(impl: Flaky) -> bool:
        if impl is primary.implementation:
            raise ConnectionError("unreachable")
        return True

    assert await failover.check_health(probe) == {"hc-primary": False, "hc-secondary": True}
    assert REGISTRY.get_sample_value("provider_health", {"provider": "hc-primary"}) == 0
    assert REGISTRY.get_sample_value("provider_health", {"provider": "hc-secondary"}) == 1
    name, _ = await failover.run(lambda impl: impl())
    assert name == "hc-secondary"
    assert primary.implementation.calls == 0


def test_derived_idempotency_keys_are_stable_and_distinct_per_step() -> None:
    assert derive_idempotency_key("abc", "charge") == derive_idempotency_key("abc", "charge")
    assert derive_idempotency_key("abc", "charge") != derive_idempotency_key("abc", "refund")
    assert derive_idempotency_key("abc", "charge") != derive_idempotency_key("abd", "charge")
