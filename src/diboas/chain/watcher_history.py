"""Chain deposits in the user's transaction history, kept by the deposit watcher.

Each transfer to a user's deposit address gets one ``crypto_deposit`` transaction (domain: the
one the watcher credits, asset and amount of the transfer), linked from its ``chain_deposits``
row, written in the same database transaction as the watcher's own step:

- seen: ``pending``, its metadata carrying the chain, tx hash, log index, block, the
  confirmations so far (refreshed once per scan by one statement) and those required;
- credited: ``completed`` in the transaction that posts the ledger entry;
- orphaned by a reorganisation: still ``pending`` with ``chain_status: orphaned`` — the chain
  may mine it again (then it is the same row again: deposits are unique by chain, tx hash and
  log index, and so is their link), so it is not shown as failed.

Organisations' deposit addresses have no user history (their treasury shows the balance).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.banking import repository as transactions
from diboas.banking.repository import NewTransaction
from diboas.chain import repository
from diboas.chain.repository import DepositRow, WalletRow
from diboas.kit.ids import uuid7, uuid7_time

TYPE = "crypto_deposit"

_LINK = text("""
    SELECT transaction_id, transaction_created_at FROM chain_deposits WHERE id = :id
""")
_SET_LINK = text("""
    UPDATE chain_deposits SET transaction_id = :tid, transaction_created_at = :at
     WHERE id = :id AND transaction_id IS NULL
""")
_BY_KEY = text("""
    SELECT id FROM chain_deposits
     WHERE chain_id = :chain_id AND tx_hash = :tx_hash AND log_index = :log_index
""")
_MERGE = text("""
    UPDATE transactions SET metadata = metadata || CAST(:metadata AS jsonb), updated_at = now()
     WHERE id = :id AND created_at = :created_at
""")
# One statement per scan: every waiting deposit's confirmations so far (capped at the number
# required; only rows whose figure changed are written).
_CONFIRMATIONS = text("""
    UPDATE transactions t
       SET metadata = t.metadata || jsonb_build_object('confirmations', c.confirmations),
           updated_at = now()
      FROM (SELECT transaction_id, transaction_created_at,
                   least(:required, greatest(0, :head - block_number + 1)) AS confirmations
              FROM chain_deposits
             WHERE chain_id = :chain_id AND status = 'seen' AND transaction_id IS NOT NULL) AS c
     WHERE t.id = c.transaction_id AND t.created_at = c.transaction_created_at
       AND t.status = 'pending'
       AND (t.metadata ->> 'confirmations') IS DISTINCT FROM c.confirmations::text
""")


def _chain_details(deposit: DepositRow, required: int) -> dict[str, Any]:
    return {
        "chain_id": deposit.chain_id,
        "tx_hash": deposit.tx_hash,
        "log_index": deposit.log_index,
        "block_number": deposit.block_number,
        "from_address": deposit.from_address,
        "to_address": deposit.to_address,
        "required_confirmations": required,
    }


async def _link(session: AsyncSession, deposit_id: int) -> tuple[uuid.UUID, datetime] | None:
    row = (await session.execute(_LINK, {"id": deposit_id})).one()
    return None if row.transaction_id is None else (row.transaction_id, row.transaction_created_at)


async def _merge(
    session: AsyncSession, link: tuple[uuid.UUID, datetime], metadata: dict[str, Any]
) -> None:
    await session.execute(
        _MERGE, {"id": link[0], "created_at": link[1], "metadata": json.dumps(metadata)}
    )


async def _open(
    session: AsyncSession, deposit: DepositRow, wallet: WalletRow, domain: str, required: int
) -> tuple[uuid.UUID, datetime] | None:
    """The deposit's transaction, written (pending) if it has none yet; None for a deposit
    address that is not a user's."""
    link = await _link(session, deposit.id)
    if link is not None or wallet.owner_type != "user":
        return link
    transaction_id = uuid7()
    await transactions.insert_transactions(
        session,
        [
            NewTransaction(
                id=transaction_id,
                user_id=wallet.owner_id,
                type=TYPE,
                status="pending",
                domain=domain,
                asset=deposit.asset,
                amount=deposit.amount,
                provider=f"chain:{deposit.chain_id}",
                description=f"{deposit.asset} received on chain",
                metadata={
                    **_chain_details(deposit, required),
                    "confirmations": 0,
                    "chain_status": "seen",
                },
            )
        ],
    )
    created_at = uuid7_time(transaction_id)
    await session.execute(_SET_LINK, {"id": deposit.id, "tid": transaction_id, "at": created_at})
    return transaction_id, created_at


async def seen(
    session: AsyncSession,
    *,
    chain_id: int,
    tx_hash: str,
    log_index: int,
    wallet: WalletRow,
    domain: str,
    required: int,
) -> None:
    """After ``repository.record_seen``: the deposit's history row exists and names the
    block it is in now (a re-mined transfer keeps its row)."""
    key = {"chain_id": chain_id, "tx_hash": tx_hash.lower(), "log_index": log_index}
    deposit_id = (await session.execute(_BY_KEY, key)).scalar_one()
    deposit = await repository.lock_deposit(session, deposit_id)
    if deposit.status == "credited":
        return
    link = await _open(session, deposit, wallet, domain, required)
    if link is not None:
        await _merge(
            session,
            link,
            {
                "block_number": deposit.block_number,
                "block_hash": deposit.block_hash,
                "chain_status": deposit.status,
            },
        )


async def refresh_confirmations(
    session: AsyncSession, chain_id: int, head: int, required: int
) -> None:
    """Every waiting deposit's confirmations as of ``head`` (one statement)."""
    await session.execute(
        _CONFIRMATIONS, {"chain_id": chain_id, "head": head, "required": required}
    )


async def orphaned(session: AsyncSession, deposit_id: int) -> None:
    """A reorganisation removed the transfer: still pending, with no confirmations."""
    link = await _link(session, deposit_id)
    if link is not None:
        await _merge(session, link, {"chain_status": "orphaned", "confirmations": 0})


async def credited(
    session: AsyncSession,
    deposit: DepositRow,
    wallet: WalletRow,
    *,
    domain: str,
    required: int,
    confirmations: int,
    entry_reference: str,
) -> None:
    """In the crediting transaction (before the deposit row becomes final): completed."""
    link = await _open(session, deposit, wallet, domain, required)
    if link is None:
        return
    await _merge(
        session,
        link,
        {
            **_chain_details(deposit, required),
            "block_hash": deposit.block_hash,
            "confirmations": confirmations,
            "chain_status": "credited",
            "entry_reference": entry_reference,
        },
    )
    found = await transactions.get_transaction(session, link[0], lock=True)
    if found is not None and found.status != "completed":
        await transactions.set_status(session, found, "completed")
