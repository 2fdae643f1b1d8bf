"""Passwords: Argon2id hashes (argon2-cffi, RFC 9106 parameters) and the password policy."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from diboas.kit.errors import DomainError

_hasher = PasswordHasher()

MAX_LENGTH = 128
# The most common passwords of public breach corpora that pass a length rule.
_COMMON = frozenset(
    {
        "password1234",
        "123456789012",
        "qwertyuiopas",
        "passwordpassword",
        "iloveyou1234",
        "administrator",
        "letmein12345",
        "welcome12345",
        "changeme1234",
        "qwerty123456",
        "1234567890ab",
        "abc123456789",
        "password123!",
        "p@ssw0rd1234",
        "trustno1trustno1",
    }
)


class WeakPasswordError(DomainError):
    """The password does not meet the policy."""

    status_code = 422
    code = "weak_password"


def check_policy(password: str, *, email: str, min_length: int) -> None:
    """Refuse a password that is short, common, repetitive or made of the email address.

    Length over composition rules, after NIST SP 800-63B.
    """
    problems: list[str] = []
    if len(password) < min_length:
        problems.append(f"at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        problems.append(f"at most {MAX_LENGTH} characters")
    if len(set(password)) < 5:
        problems.append("at least 5 different characters")
    local_part = email.split("@", 1)[0].lower()
    if password.lower() in _COMMON or (len(local_part) >= 4 and local_part in password.lower()):
        problems.append("not a common password or your email address")
    if problems:
        raise WeakPasswordError(
            "the password does not meet the policy", details={"requirements": problems}
        )


def hash_password(password: str) -> str:
    """An Argon2id hash of ``password`` with a fresh salt."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when ``password`` matches ``password_hash``."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Checked when no user matches a login, so that a wrong email costs the same time as a wrong
# password (no account enumeration by timing).
DUMMY_HASH = _hasher.hash("no-such-user-dummy-password")
