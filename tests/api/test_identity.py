"""Identity over HTTP: sign-up, sign-in, lockout, refresh rotation and reuse, sessions,
email verification and password reset through a real SMTP sink, and token attacks."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest

from diboas.identity.tokens import AUDIENCE, ISSUER
from tests.api.conftest import STRONG_PASSWORD, Mailbox, new_email, sign_in, sign_up

API = "/api/v1"


async def test_sign_up_returns_the_profile_without_secrets(client: httpx.AsyncClient) -> None:
    address = new_email()
    response = await client.post(
        f"{API}/auth/register",
        json={"email": address.upper(), "password": STRONG_PASSWORD, "full_name": "Ada"},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == address
    assert body["role"] == "customer" and body["kyc_tier"] == 0 and body["email_verified"] is False
    assert "password" not in json.dumps(body)


async def test_duplicate_email_is_409(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    again = await client.post(
        f"{API}/auth/register",
        json={"email": account["email"], "password": STRONG_PASSWORD, "full_name": "B"},
    )
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"


@pytest.mark.parametrize("password", ["short", "aaaaaaaaaaaaaaaa", "password1234"])
async def test_weak_passwords_are_refused(client: httpx.AsyncClient, password: str) -> None:
    response = await client.post(
        f"{API}/auth/register",
        json={"email": new_email(), "password": password, "full_name": "Ada"},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "weak_password"


@pytest.mark.parametrize(
    "field", [{"role": "admin"}, {"kyc_tier": 2}, {"status": "active"}, {"balance": "1000"}]
)
async def test_privileged_fields_cannot_be_set_at_sign_up(
    client: httpx.AsyncClient, field: dict[str, object]
) -> None:
    response = await client.post(
        f"{API}/auth/register",
        json={"email": new_email(), "password": STRONG_PASSWORD, "full_name": "Mallory", **field},
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_me_needs_a_token(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{API}/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"


async def test_sign_in_and_me(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    tokens = account["tokens"]
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    me = await client.get(f"{API}/me", headers=account["headers"])
    assert me.status_code == 200
    assert me.json()["id"] == account["user"]["id"]


async def test_wrong_password_and_unknown_email_look_the_same(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    wrong = await client.post(
        f"{API}/auth/login", json={"email": account["email"], "password": "not-the-password"}
    )
    unknown = await client.post(
        f"{API}/auth/login", json={"email": new_email(), "password": "not-the-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["error"]["message"] == unknown.json()["error"]["message"]


async def test_lockout_after_too_many_failures(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    codes = [
        (
            await client.post(
                f"{API}/auth/login", json={"email": account["email"], "password": "wrong-password!"}
            )
        ).status_code
        for _ in range(3)
    ]
    assert codes == [401, 401, 423]
    # Locked: even the right password is refused until the lock ends.
    right = await client.post(
        f"{API}/auth/login", json={"email": account["email"], "password": STRONG_PASSWORD}
    )
    assert right.status_code == 423
    assert "locked_until" in right.json()["error"]["details"]


async def test_refresh_rotates_and_reuse_revokes_the_session(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    first = account["tokens"]["refresh_token"]
    rotated = await client.post(f"{API}/auth/refresh", json={"refresh_token": first})
    assert rotated.status_code == 200
    second = rotated.json()["refresh_token"]
    assert second != first

    replay = await client.post(f"{API}/auth/refresh", json={"refresh_token": first})
    assert replay.status_code == 401
    # The whole family is gone: the new refresh token and the access tokens stop working.
    assert (
        await client.post(f"{API}/auth/refresh", json={"refresh_token": second})
    ).status_code == 401
    headers = {"Authorization": f"Bearer {rotated.json()['access_token']}"}
    assert (await client.get(f"{API}/me", headers=headers)).status_code == 401


async def test_logout_ends_the_session(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    assert (await client.post(f"{API}/auth/logout", headers=account["headers"])).status_code == 204
    assert (await client.get(f"{API}/me", headers=account["headers"])).status_code == 401
    refresh = await client.post(
        f"{API}/auth/refresh", json={"refresh_token": account["tokens"]["refresh_token"]}
    )
    assert refresh.status_code == 401


async def test_sessions_are_listed_and_revocable(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    laptop = await sign_in(client, account["email"])
    listed = (await client.get(f"{API}/me/sessions", headers=account["headers"])).json()
    assert len(listed) == 2
    assert sum(1 for s in listed if s["current"]) == 1
    other = next(s for s in listed if not s["current"])
    assert (
        await client.delete(f"{API}/me/sessions/{other['id']}", headers=account["headers"])
    ).status_code == 204
    assert (await client.get(f"{API}/me", headers=laptop["headers"])).status_code == 401
    assert (await client.get(f"{API}/me", headers=account["headers"])).status_code == 200


async def test_another_users_session_is_404(client: httpx.AsyncClient) -> None:
    alice, bob = await sign_up(client), await sign_up(client)
    bobs = (await client.get(f"{API}/me/sessions", headers=bob["headers"])).json()[0]["id"]
    response = await client.delete(f"{API}/me/sessions/{bobs}", headers=alice["headers"])
    assert response.status_code == 404
    assert (await client.get(f"{API}/me", headers=bob["headers"])).status_code == 200


async def test_email_verification_through_the_smtp_sink(
    client: httpx.AsyncClient, inbox: Mailbox
) -> None:
    account = await sign_up(client)
    token = await inbox.token_for(account["email"], "Confirm your email")
    assert (await client.post(f"{API}/auth/verify-email", json={"token": token})).status_code == 204
    assert (await client.get(f"{API}/me", headers=account["headers"])).json()[
        "email_verified"
    ] is True
    reused = await client.post(f"{API}/auth/verify-email", json={"token": token})
    assert reused.status_code == 400
    assert reused.json()["error"]["code"] == "invalid_token"


async def test_password_reset_by_emailed_single_use_token(
    client: httpx.AsyncClient, inbox: Mailbox
) -> None:
    account = await sign_up(client)
    asked = await client.post(
        f"{API}/auth/password-reset/request", json={"email": account["email"]}
    )
    assert asked.status_code == 202
    # Unknown addresses get the same answer (no account enumeration).
    assert (
        await client.post(f"{API}/auth/password-reset/request", json={"email": new_email()})
    ).status_code == 202
    token = await inbox.token_for(account["email"], "Reset your diBoaS password")
    new_password = "a-brand-new-passphrase-42"
    reset = await client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": new_password}
    )
    assert reset.status_code == 204
    # Every session ended; the old password is gone; the token works once.
    assert (await client.get(f"{API}/me", headers=account["headers"])).status_code == 401
    old = await client.post(
        f"{API}/auth/login", json={"email": account["email"], "password": STRONG_PASSWORD}
    )
    assert old.status_code == 401
    await sign_in(client, account["email"], new_password)
    again = await client.post(
        f"{API}/auth/password-reset", json={"token": token, "new_password": "another-passphrase-77"}
    )
    assert again.status_code == 400


async def test_change_password_keeps_this_session_and_ends_the_others(
    client: httpx.AsyncClient,
) -> None:
    account = await sign_up(client)
    phone = await sign_in(client, account["email"])
    changed = await client.post(
        f"{API}/me/password",
        headers=account["headers"],
        json={"current_password": STRONG_PASSWORD, "new_password": "changed-passphrase-2026"},
    )
    assert changed.status_code == 204
    assert (await client.get(f"{API}/me", headers=account["headers"])).status_code == 200
    assert (await client.get(f"{API}/me", headers=phone["headers"])).status_code == 401


def _forge(payload: dict[str, object], key: bytes | str, **header: object) -> str:
    return jwt.encode(payload, key, algorithm="HS256", headers=header or None)


async def test_token_attacks_are_401(client: httpx.AsyncClient) -> None:
    account = await sign_up(client)
    real = account["tokens"]["access_token"]
    claims = jwt.decode(real, options={"verify_signature": False})
    header = jwt.get_unverified_header(real)

    def b64(data: dict[str, object]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    unsigned = f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': header['kid']})}.{b64(claims)}."
    wrong_key = _forge(claims, b"x" * 32, kid=header["kid"])
    wrong_kid = _forge(claims, b"x" * 32, kid="attacker")
    wrong_audience = _forge({**claims, "aud": "someone-else"}, b"x" * 32, kid=header["kid"])
    expired = {**claims, "exp": int((datetime.now(UTC) - timedelta(minutes=1)).timestamp())}
    tampered_payload = real.split(".")
    tampered_payload[1] = b64({**claims, "role": "admin"})
    attempts = {
        "alg none": unsigned,
        "wrong key": wrong_key,
        "unknown kid": wrong_kid,
        "wrong audience": wrong_audience,
        "expired (re-signed with a wrong key)": _forge(expired, b"y" * 32, kid=header["kid"]),
        "tampered payload": ".".join(tampered_payload),
        "garbage": "not.a.token",
    }
    for name, token in attempts.items():
        response = await client.get(f"{API}/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, name
    assert claims["aud"] == AUDIENCE and claims["iss"] == ISSUER


async def test_signing_keys_rotate_with_no_failed_request() -> None:
    """Add the new key, switch the current id, retire the old key later: a token signed before
    the switch keeps working until the old key is retired."""
    import uuid as uuid_module

    from pydantic import SecretStr

    from diboas.identity import tokens
    from diboas.settings import Settings

    old = Settings(jwt_signing_keys={"2026-10": SecretStr("k" * 40)}, jwt_current_kid="2026-10")
    both = Settings(
        jwt_signing_keys={"2026-10": SecretStr("k" * 40), "2026-11": SecretStr("n" * 40)},
        jwt_current_kid="2026-11",
    )
    retired = Settings(jwt_signing_keys={"2026-11": SecretStr("n" * 40)}, jwt_current_kid="2026-11")
    user, session = uuid_module.uuid4(), uuid_module.uuid4()
    before, _ = tokens.issue_access_token(old, user_id=user, session_id=session, role="customer")
    after, _ = tokens.issue_access_token(both, user_id=user, session_id=session, role="customer")

    assert jwt.get_unverified_header(before)["kid"] == "2026-10"
    assert jwt.get_unverified_header(after)["kid"] == "2026-11"
    assert tokens.verify_access_token(both, before).user_id == user  # old token, during rotation
    assert tokens.verify_access_token(retired, after).user_id == user
    with pytest.raises(tokens.InvalidTokenError):
        tokens.verify_access_token(retired, before)  # the retired key verifies nothing
