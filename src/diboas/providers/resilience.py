"""Calling providers safely: timeouts, retries with backoff and jitter (retryable errors
only), a circuit breaker per provider, health checks, and failover to the next healthy
provider. Provider idempotency keys are derived from the caller's own key, so a retried call
is the same call to the provider."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Generic, TypeVar

import structlog
from prometheus_client import Gauge

log = structlog.get_logger(__name__)
T = TypeVar("T")
P = TypeVar("P")

PROVIDER_HEALTH = Gauge(
    "provider_health", "1 while a provider's health check passes, else 0.", ["provider"]
)


class ProviderError(Exception):
    """A provider refused or failed. ``retryable`` says whether the same call may succeed later."""

    def __init__(
        self,
        message: str,
        *,
        provider: str = "",
        retryable: bool = False,
        code: str = "provider_error",
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
        self.code = code


class ProviderTimeoutError(ProviderError):
    """No answer in time. The provider may or may not have acted: the outcome is ambiguous."""

    def __init__(self, message: str, *, provider: str = "") -> None:
        super().__init__(message, provider=provider, retryable=True, code="provider_timeout")


class CircuitOpenError(ProviderError):
    """The provider failed too often recently; calls are not attempted until it cools down."""

    def __init__(self, provider: str) -> None:
        super().__init__(
            f"{provider} is temporarily unavailable",
            provider=provider,
            retryable=True,
            code="circuit_open",
        )


def derive_idempotency_key(request_key: str, step: str) -> str:
    """The provider-side key for one step of a request: stable across retries, distinct per step."""
    return hashlib.sha256(f"{request_key}:{step}".encode()).hexdigest()[:48]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a retryable failure is tried again."""

    attempts: int = 3
    base_delay: float = 0.1
    max_delay: float = 2.0
    timeout: float = 10.0

    def delay(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(max, base·2^attempt)] (AWS architecture blog)."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))  # noqa: S311


class BreakerState(StrEnum):
    """Closed: calls flow. Open: calls refused. Half-open: one trial call decides."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass
class CircuitBreaker:
    """Opens after ``failure_threshold`` consecutive failures; after ``reset_after`` seconds
    lets one trial call through, which closes it on success or reopens it on failure."""

    name: str
    failure_threshold: int = 5
    reset_after: float = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_at: float | None = None
    _trial_in_flight: bool = field(default=False, repr=False)

    @property
    def state(self) -> BreakerState:
        if self.opened_at is None:
            return BreakerState.CLOSED
        if self.clock() - self.opened_at >= self.reset_after:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """Whether a call may be attempted now (claims the half-open trial if it is one)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial_in_flight = False

    def record_failure(self) -> None:
        self._trial_in_flight = False
        self.failures += 1
        if self.failures >= self.failure_threshold or self.opened_at is not None:
            self.opened_at = self.clock()


async def call(
    name: str,
    operation: Callable[[], Awaitable[T]],
    *,
    policy: RetryPolicy,
    breaker: CircuitBreaker | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``operation`` with a timeout, retrying retryable failures with jittered backoff.

    Non-retryable errors are raised at once. A timeout is retryable only because every call
    carries its idempotency key: the provider answers the retry with the first outcome.
    """
    last: ProviderError | None = None
    for attempt in range(policy.attempts):
        if breaker is not None and not breaker.allow():
            raise CircuitOpenError(name)
        try:
            result = await asyncio.wait_for(operation(), timeout=policy.timeout)
        except TimeoutError:
            last = ProviderTimeoutError(
                f"{name} did not answer within {policy.timeout}s", provider=name
            )
        except ProviderError as exc:
            last = exc
        else:
            if breaker is not None:
                breaker.record_success()
            return result
        if breaker is not None:
            breaker.record_failure()
        if not last.retryable:
            raise last
        log.info(
            "provider call failed; retrying", provider=name, attempt=attempt + 1, error=last.code
        )
        if attempt + 1 < policy.attempts:
            await sleep(policy.delay(attempt))
    assert last is not None  # noqa: S101 - the loop ran at least once
    raise last


@dataclass
class ProviderSlot(Generic[P]):
    """One implementation of an interface with its breaker and last known health."""

    name: str
    implementation: P
    breaker: CircuitBreaker
    healthy: bool = True


class Failover(Generic[P]):
    """Implementations of one interface in order of preference; calls go to the first
    healthy one whose breaker is closed, and move on to the next on a retryable failure."""

    def __init__(
        self, slots: Sequence[ProviderSlot[P]], *, policy: RetryPolicy | None = None
    ) -> None:
        if not slots:
            raise ValueError("a failover needs at least one provider")
        self.slots = list(slots)
        self.policy = policy or RetryPolicy()

    async def run(self, operation: Callable[[P], Awaitable[T]]) -> tuple[str, T]:
        """(the provider that answered, its answer)."""
        errors: list[ProviderError] = []
        candidates = [s for s in self.slots if s.healthy] or self.slots
        for slot in candidates:
            bound = functools.partial(operation, slot.implementation)
            try:
                result = await call(slot.name, bound, policy=self.policy, breaker=slot.breaker)
            except ProviderError as exc:
                errors.append(exc)
                if not exc.retryable:
                    raise
                log.warning("failing over", provider=slot.name, error=exc.code)
                continue
            return slot.name, result
        raise errors[-1]

    async def check_health(self, probe: Callable[[P], Awaitable[bool]]) -> dict[str, bool]:
        """Run every provider's health probe; export ``provider_health{provider}``."""
        report: dict[str, bool] = {}
        for slot in self.slots:
            try:
                ok = bool(
                    await asyncio.wait_for(probe(slot.implementation), timeout=self.policy.timeout)
                )
            except Exception:  # noqa: BLE001 - a probe that fails in any way means unhealthy
                ok = False
            slot.healthy = ok
            PROVIDER_HEALTH.labels(slot.name).set(1 if ok else 0)
            report[slot.name] = ok
        return report
