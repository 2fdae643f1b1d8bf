"""Custodial wallets: one Ethereum key per (chain, owner, purpose), generated here and kept
sealed with AES-256-GCM (``kit.crypto``) in ``chain_wallets``; opened only to sign.

A key rotation re-seals every key under the new version (``reseal_batch``, driven by
``diboas keys reseal``); a key sealed under a version that is not configured refuses to sign
with ``KeyUnavailableError`` (the job that wanted it retries; nothing is sent)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.chain import repository
from diboas.chain.repository import WalletRow
from diboas.kit.crypto import KeyRing, Sealed
from diboas.ledger.models import PLATFORM_OWNER_ID, OwnerType
from diboas.settings import Settings

DEPOSIT = "deposit"
HOT = "hot"  # the platform's own key: pays gas, acts on DeFi protocols


class WalletKeyMismatchError(RuntimeError):
    """A sealed key opened to another address than its row's (tampering or a bad import)."""


@dataclass(frozen=True, slots=True)
class Wallet:
    """A custodial wallet (never carries its key)."""

    id: uuid.UUID
    chain_id: int
    owner_type: str
    owner_id: uuid.UUID
    purpose: str
    address: str  # checksummed

    @classmethod
    def of(cls, row: WalletRow) -> Wallet:
        return cls(
            row.id,
            row.chain_id,
            row.owner_type,
            row.owner_id,
            row.purpose,
            to_checksum_address(row.address),
        )


def _context(wallet_id: uuid.UUID, address: str) -> bytes:
    # Binds the ciphertext to its row: copied into another wallet row it does not open.
    return f"chain_wallet:{wallet_id}:{address.lower()}".encode()


async def _store(
    session: AsyncSession,
    settings: Settings,
    account: LocalAccount,
    *,
    chain_id: int,
    owner_type: str,
    owner_id: uuid.UUID,
    purpose: str,
) -> Wallet:
    wallet_id = uuid.uuid4()
    sealed = KeyRing.from_settings(settings).encrypt(
        bytes(account.key), context=_context(wallet_id, account.address)
    )
    await repository.insert_wallet(
        session,
        wallet_id=wallet_id,
        chain_id=chain_id,
        owner_type=owner_type,
        owner_id=owner_id,
        purpose=purpose,
        address=account.address,
        key_ciphertext=sealed.ciphertext,
        key_version=sealed.key_version,
    )
    # Whoever won a concurrent race, the stored row is the wallet.
    row = await repository.find_wallet(
        session, chain_id=chain_id, owner_type=owner_type, owner_id=owner_id, purpose=purpose
    )
    assert row is not None  # noqa: S101 - inserted or already there
    return Wallet.of(row)


async def deposit_wallet(
    session: AsyncSession,
    settings: Settings,
    *,
    chain_id: int,
    owner_id: uuid.UUID,
    owner_type: OwnerType = OwnerType.USER,
) -> Wallet:
    """The owner's deposit address on ``chain_id``, created with a fresh key on first use."""
    row = await repository.find_wallet(
        session, chain_id=chain_id, owner_type=owner_type, owner_id=owner_id, purpose=DEPOSIT
    )
    if row is not None:
        return Wallet.of(row)
    return await _store(
        session,
        settings,
        Account.create(),
        chain_id=chain_id,
        owner_type=owner_type,
        owner_id=owner_id,
        purpose=DEPOSIT,
    )


async def import_hot_wallet(
    session: AsyncSession, settings: Settings, *, chain_id: int, private_key: str
) -> Wallet:
    """Keep the platform's hot wallet key (funded outside the platform) sealed in the table."""
    return await _store(
        session,
        settings,
        Account.from_key(private_key),
        chain_id=chain_id,
        owner_type=OwnerType.PLATFORM,
        owner_id=PLATFORM_OWNER_ID,
        purpose=HOT,
    )


async def signer(
    session: AsyncSession, settings: Settings, *, chain_id: int, wallet: Wallet
) -> LocalAccount:
    """Open a wallet's key to sign (kept in memory only for the caller's use)."""
    row = await repository.find_wallet(
        session,
        chain_id=chain_id,
        owner_type=wallet.owner_type,
        owner_id=wallet.owner_id,
        purpose=wallet.purpose,
    )
    if row is None or row.id != wallet.id:
        raise LookupError(f"wallet {wallet.id} is not stored")
    key = KeyRing.from_settings(settings).decrypt(
        Sealed(row.key_version, bytes(row.key_ciphertext)), context=_context(row.id, row.address)
    )
    account: LocalAccount = Account.from_key(key)
    if account.address.lower() != row.address:
        raise WalletKeyMismatchError(f"wallet {row.id}'s key does not match its address")
    return account


# --- key rotation ------------------------------------------------------------------------------


@dataclass(slots=True)
class ResealBatch:
    """What one batch of re-sealing did; ``last_id`` is where the next batch starts."""

    resealed: int = 0
    last_id: uuid.UUID | None = None
    exhausted: bool = False  # no rows left after this batch
    # Keys sealed under a version this ring lacks: left alone (``keys status`` reports them).
    unavailable: list[uuid.UUID] = field(default_factory=list)


async def reseal_batch(
    session: AsyncSession, keys: KeyRing, *, after: uuid.UUID | None, limit: int
) -> ResealBatch:
    """Re-seal up to ``limit`` wallet keys (after ``after`` by id) under the current key
    version, each under its row lock; a key that does not match its address is not re-sealed
    (``WalletKeyMismatchError``): sealing it again would bury the problem."""
    rows = await repository.wallets_to_reseal(
        session, after=after, current=keys.current, limit=limit
    )
    batch = ResealBatch(last_id=rows[-1].id if rows else after, exhausted=len(rows) < limit)
    for row in rows:
        if not keys.can_open(row.key_version):
            batch.unavailable.append(row.id)
            continue
        context = _context(row.id, row.address)
        key = keys.decrypt(Sealed(row.key_version, bytes(row.key_ciphertext)), context=context)
        if Account.from_key(key).address.lower() != row.address:
            raise WalletKeyMismatchError(f"wallet {row.id}'s key does not match its address")
        sealed = keys.encrypt(key, context=context)
        await repository.reseal_wallet(
            session,
            wallet_id=row.id,
            key_ciphertext=sealed.ciphertext,
            key_version=sealed.key_version,
        )
        batch.resealed += 1
    return batch


async def key_versions(session: AsyncSession) -> dict[int, int]:
    """Wallets per key version."""
    return await repository.wallet_key_versions(session)
