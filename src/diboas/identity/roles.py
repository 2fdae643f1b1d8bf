"""Roles and the permissions each grants. Every route names one permission (deny by default)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role."""

    CUSTOMER = "customer"
    BUSINESS_ADMIN = "business_admin"
    BUSINESS_MEMBER = "business_member"
    SUPPORT = "support"
    ADMIN = "admin"


# What every signed-in person may do with their own money and profile.
_OWN_MONEY = frozenset(
    {
        "profile:read",
        "profile:write",
        "sessions:manage",
        "kyc:submit",
        "banking:read",
        "banking:deposit",
        "banking:withdraw",
        "banking:transfer",
        "bank_accounts:manage",
        "balances:read",
        "transactions:read",
        "fees:quote",
        "market:read",
        # Use the business app; what a person may do in an organisation is decided by their
        # role in it (diboas.business.access), not by this global role.
        "business:access",
        "defi:read",
        "defi:invest",
        "investing:read",
        "investing:trade",
    }
)

ROLE_PERMISSIONS: dict[Role, frozenset[str]] = {
    Role.CUSTOMER: _OWN_MONEY,
    Role.BUSINESS_MEMBER: _OWN_MONEY | {"business:read"},
    Role.BUSINESS_ADMIN: _OWN_MONEY | {"business:read", "business:manage"},
    # Support helps customers: it reads and reviews identities and refunds card deposits to
    # their card; it moves no other money.
    Role.SUPPORT: frozenset(
        {
            "profile:read",
            "sessions:manage",
            "market:read",
            "audit:read",
            "users:read",
            "kyc:review",
            "payments:refund",
        }
    ),
    Role.ADMIN: _OWN_MONEY
    | {
        "audit:read",
        "users:read",
        "users:manage",
        "admin:ledger",
        "payments:refund",
        "business:read",
        "business:manage",
        "kyc:review",
    },
}


def has_permission(role: str, permission: str) -> bool:
    """True when ``role`` grants ``permission``; unknown roles grant nothing."""
    try:
        return permission in ROLE_PERMISSIONS[Role(role)]
    except ValueError:
        return False
