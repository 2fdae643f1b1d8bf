"""SQL for chain custody: wallets, deposits and the watcher's cursor."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession


@dataclass(frozen=True, slots=True)
class WalletRow:
    """A custodial wallet as stored (the key still sealed)."""

    id: uuid.UUID
    chain_id: int
    owner_type: str
    owner_id: uuid.UUID
    purpose: str
    address: str
    key_ciphertext: bytes
    key_version: int


@dataclass(frozen=True, slots=True)
class DepositRow:
    """A transfer to a deposit address, as stored."""

    id: int
    chain_id: int
    tx_hash: str
    log_index: int
    wallet_id: uuid.UUID
    asset: str
    token: str | None
    from_address: str
    to_address: str
    amount: Decimal
    block_number: int
    block_hash: str
    status: str
    entry_id: int | None
    credited_at: datetime | None


_WALLET_COLUMNS = (
    "id, chain_id, owner_type, owner_id, purpose, address, key_ciphertext, key_version"
)
_DEPOSIT_COLUMNS = (
    "id, chain_id, tx_hash, log_index, wallet_id, asset, token, from_address, to_address, "
    "amount, "
    "block_number, block_hash, status, entry_id, credited_at"
)


async def insert_wallet(
    session: AsyncSession,
    *,
    wallet_id: uuid.UUID,
    chain_id: int,
    owner_type: str,
    owner_id: uuid.UUID,
    purpose: str,
    address: str,
    key_ciphertext: bytes,
    key_version: int,
) -> bool:
    """Store a wallet; False when the owner already has one for this purpose (a race lost)."""
    result = await session.execute(
        text("""
            INSERT INTO chain_wallets
                (id, chain_id, owner_type, owner_id, purpose, address, key_ciphertext, key_version)
            VALUES (:id, :chain_id, :owner_type, :owner_id, :purpose, :address, :ct, :kv)
            ON CONFLICT (chain_id, owner_type, owner_id, purpose) DO NOTHING
            RETURNING id
        """),
        {
            "id": wallet_id,
            "chain_id": chain_id,
            "owner_type": owner_type,
            "owner_id": owner_id,
            "purpose": purpose,
            "address": address.lower(),
            "ct": key_ciphertext,
            "kv": key_version,
        },
    )
    return result.scalar_one_or_none() is not None


async def find_wallet(
    session: AsyncSession, *, chain_id: int, owner_type: str, owner_id: uuid.UUID, purpose: str
) -> WalletRow | None:
    row = (
        await session.execute(
            text(f"""
                SELECT {_WALLET_COLUMNS} FROM chain_wallets
                WHERE chain_id = :chain_id AND owner_type = :owner_type
                  AND owner_id = :owner_id AND purpose = :purpose
            """),
            {
                "chain_id": chain_id,
                "owner_type": owner_type,
                "owner_id": owner_id,
                "purpose": purpose,
            },
        )
    ).one_or_none()
    return None if row is None else WalletRow(*row)


async def get_wallet(session: AsyncSession, wallet_id: uuid.UUID) -> WalletRow:
    row = (
        await session.execute(
            text(f"SELECT {_WALLET_COLUMNS} FROM chain_wallets WHERE id = :id"),
            {"id": wallet_id},
        )
    ).one()
    return WalletRow(*row)


async def deposit_wallets(
    session: AsyncSession, chain_id: int, addresses: list[str] | None = None
) -> dict[str, WalletRow]:
    """Deposit wallets of a chain by lower-case address (all, or those among ``addresses``)."""
    query = (
        f"SELECT {_WALLET_COLUMNS} FROM chain_wallets "
        "WHERE chain_id = :chain_id AND purpose = 'deposit'"
    )
    params: dict[str, object] = {"chain_id": chain_id}
    statement = text(query)
    if addresses is not None:
        statement = text(query + " AND address IN :addresses").bindparams(
            bindparam("addresses", expanding=True)
        )
        params["addresses"] = [a.lower() for a in addresses]
    rows = (await session.execute(statement, params)).all()
    return {row.address: WalletRow(*row) for row in rows}


async def record_seen(
    session: AsyncSession,
    *,
    chain_id: int,
    tx_hash: str,
    log_index: int,
    wallet_id: uuid.UUID,
    asset: str,
    token: str | None,
    from_address: str,
    to_address: str,
    amount: Decimal,
    block_number: int,
    block_hash: str,
) -> None:
    """Note a transfer found on chain. Seen again (maybe in another block after a
    reorganisation), it takes the new block; an orphaned one is back to 'seen'; a credited
    one is left alone."""
    await session.execute(
        text("""
            INSERT INTO chain_deposits (chain_id, tx_hash, log_index, wallet_id, asset, token,
                                        from_address, to_address, amount, block_number,
                                        block_hash)
            VALUES (:chain_id, :tx_hash, :log_index, :wallet_id, :asset, :token,
                    :from_address, :to_address, :amount, :block_number, :block_hash)
            ON CONFLICT (chain_id, tx_hash, log_index) DO UPDATE
               SET block_number = EXCLUDED.block_number, block_hash = EXCLUDED.block_hash,
                   status = 'seen', updated_at = now()
             WHERE chain_deposits.status <> 'credited'
               AND (chain_deposits.block_hash <> EXCLUDED.block_hash
                    OR chain_deposits.status = 'orphaned')
        """),
        {
            "chain_id": chain_id,
            "tx_hash": tx_hash.lower(),
            "log_index": log_index,
            "wallet_id": wallet_id,
            "asset": asset,
            "token": token.lower() if token else None,
            "from_address": from_address.lower(),
            "to_address": to_address.lower(),
            "amount": amount,
            "block_number": block_number,
            "block_hash": block_hash.lower(),
        },
    )


async def open_deposits(
    session: AsyncSession, chain_id: int, *, up_to_block: int
) -> list[DepositRow]:
    """Deposits not credited yet whose block is at or below ``up_to_block``."""
    rows = (
        await session.execute(
            text(f"""
                SELECT {_DEPOSIT_COLUMNS} FROM chain_deposits
                WHERE chain_id = :chain_id AND status = 'seen' AND block_number <= :up_to
                ORDER BY block_number, id
            """),
            {"chain_id": chain_id, "up_to": up_to_block},
        )
    ).all()
    return [DepositRow(*row) for row in rows]


async def lock_deposit(session: AsyncSession, deposit_id: int) -> DepositRow:
    row = (
        await session.execute(
            text(f"SELECT {_DEPOSIT_COLUMNS} FROM chain_deposits WHERE id = :id FOR UPDATE"),
            {"id": deposit_id},
        )
    ).one()
    return DepositRow(*row)


async def mark_credited(
    session: AsyncSession, deposit_id: int, *, entry_id: int, entry_created_at: datetime
) -> None:
    await session.execute(
        text("""
            UPDATE chain_deposits
               SET status = 'credited', entry_id = :entry_id, entry_created_at = :at,
                   credited_at = now(), updated_at = now()
             WHERE id = :id
        """),
        {"id": deposit_id, "entry_id": entry_id, "at": entry_created_at},
    )


async def mark_orphaned(session: AsyncSession, deposit_id: int) -> None:
    await session.execute(
        text("""
            UPDATE chain_deposits SET status = 'orphaned', updated_at = now()
             WHERE id = :id AND status = 'seen'
        """),
        {"id": deposit_id},
    )


async def deposits_for_wallet(session: AsyncSession, wallet_id: uuid.UUID) -> list[DepositRow]:
    rows = (
        await session.execute(
            text(f"""
                SELECT {_DEPOSIT_COLUMNS} FROM chain_deposits
                WHERE wallet_id = :wallet_id ORDER BY first_seen_at, id
            """),
            {"wallet_id": wallet_id},
        )
    ).all()
    return [DepositRow(*row) for row in rows]


async def cursor(session: AsyncSession, chain_id: int, name: str) -> int | None:
    """The last block scanned, or None before the first scan."""
    value = (
        await session.execute(
            text("SELECT block_number FROM chain_cursors WHERE chain_id = :c AND name = :n"),
            {"c": chain_id, "n": name},
        )
    ).scalar_one_or_none()
    return None if value is None else int(value)


async def set_cursor(session: AsyncSession, chain_id: int, name: str, block_number: int) -> None:
    await session.execute(
        text("""
            INSERT INTO chain_cursors (chain_id, name, block_number) VALUES (:c, :n, :b)
            ON CONFLICT (chain_id, name) DO UPDATE
               SET block_number = EXCLUDED.block_number, updated_at = now()
        """),
        {"c": chain_id, "n": name, "b": block_number},
    )


# --- key rotation (diboas keys reseal / status) ---------------------------------------------


async def wallets_to_reseal(
    session: AsyncSession, *, after: uuid.UUID | None, current: int, limit: int
) -> list[WalletRow]:
    """The next ``limit`` wallets after ``after`` (by id) sealed under another key version
    than ``current``, each locked until the transaction ends."""
    rows = await session.execute(
        text(f"""
            SELECT {_WALLET_COLUMNS} FROM chain_wallets
             WHERE id > :after AND key_version <> :current
             ORDER BY id LIMIT :limit
               FOR UPDATE
        """),
        {"after": after or uuid.UUID(int=0), "current": current, "limit": limit},
    )
    return [WalletRow(*row) for row in rows]


async def reseal_wallet(
    session: AsyncSession, *, wallet_id: uuid.UUID, key_ciphertext: bytes, key_version: int
) -> None:
    """Store a wallet's key sealed again."""
    await session.execute(
        text("UPDATE chain_wallets SET key_ciphertext = :ct, key_version = :kv WHERE id = :id"),
        {"id": wallet_id, "ct": key_ciphertext, "kv": key_version},
    )


async def wallet_key_versions(session: AsyncSession) -> dict[int, int]:
    """How many wallets are sealed under each key version."""
    rows = await session.execute(
        text("SELECT key_version, count(*) FROM chain_wallets GROUP BY key_version")
    )
    return {int(version): int(n) for version, n in rows}
