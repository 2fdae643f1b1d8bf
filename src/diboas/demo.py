"""Demo data for `diboas run` in development: platform accounts and a funded demo user who
has verified their email and passed the sandbox KYC, so they can move money at once.

Safe to run on every start: accounts are opened if missing and the demo deposit is posted
once, under an idempotency key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from diboas.compliance import kyc
from diboas.compliance.audit import AuditContext
from diboas.db.engine import SessionFactory
from diboas.db.transactions import run_in_transaction
from diboas.identity import repository as users
from diboas.identity.passwords import hash_password
from diboas.ledger import idempotency, service
from diboas.ledger.models import AccountKind, Domain, OwnerType
from diboas.providers.kyc import KycApplicant, SandboxKycProvider

DEMO_EMAIL = "demo@example.com"
DEMO_PASSWORD = "demo-Passw0rd!"  # noqa: S105 - printed on purpose; development only
DEMO_DEPOSIT = Decimal("1000.00")
PLATFORM_KINDS = (
    AccountKind.EXTERNAL,
    AccountKind.CLEARING,
    AccountKind.FEES,
    AccountKind.ROUNDING,
    AccountKind.SUSPENSE,
)


@dataclass(frozen=True, slots=True)
class DemoSummary:
    """What the demo set up, for the start-up banner."""

    email: str
    password: str
    usd_balance: Decimal


async def open_platform_accounts(session: AsyncSession) -> None:
    """The platform's own accounts for every asset."""
    assets = (await session.execute(text("SELECT code FROM assets ORDER BY code"))).scalars()
    for asset in list(assets):
        for kind in PLATFORM_KINDS:
            await service.platform_account(session, asset=asset, kind=kind)


async def _pass_sandbox_kyc(sessions: SessionFactory, user: users.User) -> None:
    """The demo user goes through the same sandbox KYC as anyone signing up."""
    applicant = KycApplicant(
        first_name="Demo",
        last_name="User",
        date_of_birth=date(1990, 1, 1),
        country="US",
        address="1 Demo Street, Springfield",
        document_type="passport",
        document_number="DEMO00001",
    )
    decision = await SandboxKycProvider().submit(applicant)
    await run_in_transaction(
        sessions,
        lambda s: kyc.record_decision(
            s,
            user_id=user.id,
            provider="sandbox",
            applicant=applicant,
            decision=decision,
            context=AuditContext(actor_id=user.id, actor_role=user.role),
        ),
    )


async def seed(sessions: SessionFactory) -> DemoSummary:
    """Platform accounts, the demo user and its first deposit."""
    await run_in_transaction(sessions, open_platform_accounts)

    async def demo_user(session: AsyncSession) -> users.User:
        existing = await users.find_by_email(session, DEMO_EMAIL)
        if existing is not None:
            return existing
        created = await users.insert(
            session,
            email=DEMO_EMAIL,
            full_name="Demo User",
            password_hash=hash_password(DEMO_PASSWORD),
        )
        await users.mark_email_verified(session, created.id)
        return created

    user = await run_in_transaction(sessions, demo_user)
    if user.kyc_status == "none":
        await _pass_sandbox_kyc(sessions, user)

    async def deposit(session: AsyncSession) -> tuple[int, dict[str, int]]:
        external = await service.platform_account(session, asset="USD", kind=AccountKind.EXTERNAL)
        wallet = await service.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user.id, domain=Domain.BANKING, asset="USD"
        )
        entry = await service.transfer(
            session, source=external, destination=wallet, amount=DEMO_DEPOSIT, kind="demo.deposit"
        )
        return 201, {"entry_id": entry.id}

    await idempotency.run_idempotent(
        sessions, scope="demo", key=f"initial-deposit:{user.id}", request={}, work=deposit
    )

    async def read_balance(session: AsyncSession) -> Decimal:
        wallet = await service.customer_account(
            session, owner_type=OwnerType.USER, owner_id=user.id, domain=Domain.BANKING, asset="USD"
        )
        return (await service.balance(session, wallet.id)).balance

    usd = await run_in_transaction(sessions, read_balance)
    return DemoSummary(DEMO_EMAIL, DEMO_PASSWORD, usd)
