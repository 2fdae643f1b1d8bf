"""A card deposit survives each provider fault with exactly one charge and one credit.

Through the HTTP API and the in-process worker, with the official Stripe SDK talking to a
real local Stripe (localstripe) through a proxy that injects the fault. After each: the
deposit completed once, Stripe holds one PaymentIntent for it (found by the idempotency key
in its metadata), the balance went up by amount − fee exactly once, the saga's steps show
what happened, and ``ledger verify`` finds nothing wrong.
"""

from __future__ import annotations

from decimal import Decimal

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.orchestration.conftest import (
    approved_user,
    assert_ledger_clean,
    card_deposit,
    charges_for,
    final_state,
    states,
    usd_available,
)
from tests.orchestration.fault_proxy import Fault, FaultProxy

CREATE = "POST /v1/payment_intents"
CONFIRM = "POST /v1/payment_intents/pi_"  # …/{id}/confirm


async def _deposit_survives(
    client: httpx.AsyncClient, engine: AsyncEngine, localstripe: str
) -> dict[str, object]:
    account = await approved_user(client, engine)
    deposit = await card_deposit(client, account, "50.00")
    done = await final_state(client, account, str(deposit["id"]))
    assert done["status"] == "completed", done
    charges = await charges_for(localstripe, str(deposit["id"]))
    assert [c["status"] for c in charges] == ["succeeded"], charges  # exactly one charge
    assert charges[0]["amount"] == 5000
    assert await usd_available(client, account) == Decimal("50.00") - Decimal(str(deposit["fee"]))
    await assert_ledger_clean(engine)
    return done


async def test_a_rate_limited_charge_is_tried_again_later(
    faulty_client: httpx.AsyncClient, engine: AsyncEngine, proxy: FaultProxy, localstripe: str
) -> None:
    proxy.plan(CREATE, Fault.STATUS_429, Fault.STATUS_429)
    done = await _deposit_survives(faulty_client, engine, localstripe)
    assert proxy.injected(Fault.STATUS_429) == 2
    assert states(done) == [
        "accepted",
        "provider_requested",
        "retrying",
        "provider_requested",
        "retrying",
        "provider_requested",
        "settled",
    ]


@pytest.mark.parametrize(
    ("where", "fault"),
    [
        (CREATE, Fault.STATUS_500),  # indeterminate: Stripe may have acted
        (CREATE, Fault.SLOW_UNSENT),  # timed out before Stripe saw it
        (CREATE, Fault.LOST_AFTER_SUCCESS),  # created, answer lost: never confirmed
        (CONFIRM, Fault.STATUS_500),
        (CONFIRM, Fault.SLOW_AFTER_SUCCESS),  # charged, answer too late
        (CONFIRM, Fault.LOST_AFTER_SUCCESS),  # charged, connection dropped
    ],
)
async def test_an_ambiguous_outcome_is_parked_and_reconciled(
    faulty_client: httpx.AsyncClient,
    engine: AsyncEngine,
    proxy: FaultProxy,
    localstripe: str,
    where: str,
    fault: Fault,
) -> None:
    proxy.plan(where, fault)
    done = await _deposit_survives(faulty_client, engine, localstripe)
    assert proxy.injected(fault) == 1
    steps = states(done)
    assert steps[:3] == ["accepted", "provider_requested", "ambiguous"], steps
    assert steps[-1] == "settled"
    reconciled = [s for s in done["steps"] if s["state"] == "settled"]  # type: ignore[union-attr]
    charged_before_the_fault = where == CONFIRM and fault is not Fault.STATUS_500
    if charged_before_the_fault:
        # Stripe had charged: reconciliation found the payment and settled from it.
        assert reconciled[0]["detail"]["source"] == "reconciliation"
        assert steps.count("provider_requested") == 1
    else:
        # Stripe had not charged (or not confirmed): the same request went again, same key.
        assert steps.count("provider_requested") == 2, steps
