"""The business app's pages, driven like a browser: the same services and rules as the business
API (roles, IP allow-list, last admin, keys shown once, payout reports, execution once),
refusals shown as pages, CSRF on every form, the upload bounded."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from diboas.business.access import PERMISSION
from diboas.db.engine import SessionFactory
from diboas.web import web_routes
from tests.banking.helpers import balance, fund
from tests.business.helpers import OUTSIDE_IP
from tests.orchestration.conftest import assert_ledger_clean
from tests.web.helpers import hidden_fields, post_form, web_sign_up

_ORG_LOCATION = re.compile(r"^/business/orgs/([0-9a-f-]{36})\?done=created$")


def browser(client: httpx.AsyncClient, ip: str = "127.0.0.1") -> httpx.AsyncClient:
    """Another browser (its own cookies) on the same app, its requests coming from ``ip``."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=transport.app, client=(ip, 123)),
        base_url="http://testserver",
    )


async def _user_id(engine: AsyncEngine, email: str) -> uuid.UUID:
    async with engine.connect() as conn:
        found = await conn.execute(text("SELECT id FROM users WHERE email = :e"), {"e": email})
        return uuid.UUID(str(found.scalar_one()))


async def verified_user(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    sessions: SessionFactory,
    *,
    name: str = "Grace Hopper",
    money: str | None = None,
) -> tuple[str, uuid.UUID]:
    """Signed up (and in) through the web; KYC tier 1 set in SQL; ``money`` USD in banking."""
    email = await web_sign_up(client, name=name)
    async with engine.begin() as conn:
        await conn.execute(
            text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE email = :e"),
            {"e": email},
        )
    user_id = await _user_id(engine, email)
    if money is not None:
        await fund(sessions, user_id, money)
    return email, user_id


async def create_org(client: httpx.AsyncClient, name: str = "Acme Ltd") -> str:
    response = await post_form(client, "/business", {"name": name})
    assert response.status_code == 303, response.text
    found = _ORG_LOCATION.match(response.headers["location"])
    assert found is not None, response.headers["location"]
    return found.group(1)


async def add_member(client: httpx.AsyncClient, oid: str, email: str, role: str) -> None:
    added = await post_form(client, f"/business/orgs/{oid}/members", {"email": email, "role": role})
    assert added.status_code == 303, added.text


async def fund_treasury(client: httpx.AsyncClient, oid: str, amount: str) -> httpx.Response:
    return await post_form(
        client,
        f"/business/orgs/{oid}/fundings",
        {"amount": amount},
        form_page=f"/business/orgs/{oid}",
    )


def _csv(*lines: str) -> bytes:
    return ("recipient_email,amount,currency,note\r\n" + "\r\n".join(lines) + "\r\n").encode()


async def upload(
    client: httpx.AsyncClient, oid: str, content: bytes, fields: dict[str, str] | None = None
) -> httpx.Response:
    """The payout form: its hidden fields (CSRF, form key) and the file, as multipart."""
    if fields is None:
        page = await client.get(f"/business/orgs/{oid}/payouts")
        assert page.status_code == 200, page.text
        fields = hidden_fields(page.text)
    return await client.post(
        f"/business/orgs/{oid}/payouts",
        data=fields,
        files={"file": ("payroll.csv", content, "text/csv")},
    )


async def _treasury(engine: AsyncEngine, oid: str) -> Decimal:
    async with engine.connect() as conn:
        value = (
            await conn.execute(
                text("""SELECT b.balance FROM balances b JOIN accounts a ON a.id = b.account_id
                         WHERE a.owner_type = 'organisation' AND a.owner_id = :id
                           AND a.kind = 'available'"""),
                {"id": uuid.UUID(oid)},
            )
        ).scalar()
    return Decimal(0) if value is None else Decimal(value)


async def _batches(engine: AsyncEngine, oid: str) -> int:
    async with engine.connect() as conn:
        query = text("SELECT count(*) FROM payout_batches WHERE organisation_id = :id")
        return int((await conn.execute(query, {"id": uuid.UUID(oid)})).scalar_one())


# --- routes ------------------------------------------------------------------------------------


def test_every_business_page_declares_the_api_action_it_needs() -> None:
    business = [r for r in web_routes() if r.path.startswith("/business/orgs/")]
    assert len(business) > 15
    assert all(r.access == PERMISSION for r in business)
    assert [r.path for r in business if r.guard is None] == []
    assert all(getattr(r.guard, "action", None) is not None for r in business)
    home = [r for r in web_routes() if r.path == "/business"]
    assert [r.access for r in home] == [PERMISSION]


# --- signing in, organisations, escaping ----------------------------------------------------------


async def test_signed_out_visitors_sign_in_and_come_back(client: httpx.AsyncClient) -> None:
    response = await client.get("/business")
    assert response.status_code == 303
    assert response.headers["location"] == "/app/login?next=/business"
    email = await web_sign_up(client)
    await post_form(client, "/app/logout", {}, form_page="/app")
    signed_in = await post_form(
        client,
        "/app/login?next=/business",
        {"email": email, "password": "correct-horse-battery-staple"},
    )
    assert signed_in.headers["location"] == "/business"
    home = await client.get("/business")
    assert home.status_code == 200
    assert "Create an organisation" in home.text
    assert home.headers["cache-control"] == "no-store"
    assert "unsafe-inline" not in home.headers["content-security-policy"]
    # The consumer app links here; unknown business addresses are a page, not JSON.
    assert 'href="/business"' in (await client.get("/app")).text
    missing = await client.get("/business/no-such-page")
    assert missing.status_code == 404
    assert "Page not found" in missing.text


async def test_names_are_shown_as_text(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    hostile = '<script>alert("org")</script> & <img src=x onerror=alert(1)>'
    oid = await create_org(client, hostile)
    async with browser(client) as other:
        member_name = "<svg onload=alert(2)>Eve"
        email, _ = await verified_user(other, engine, sessions, name=member_name)
    await add_member(client, oid, email, "viewer")
    for path in ("/business", f"/business/orgs/{oid}", f"/business/orgs/{oid}/members"):
        page = await client.get(path)
        assert page.status_code == 200
        assert "<script>alert" not in page.text
        assert "<img src=x" not in page.text
        assert "<svg onload" not in page.text
        assert "&lt;script&gt;alert(&#34;org&#34;)&lt;/script&gt; &amp; &lt;img" in page.text
    members = await client.get(f"/business/orgs/{oid}/members")
    assert "&lt;svg onload=alert(2)&gt;Eve" in members.text


async def test_an_empty_name_is_refused_on_the_form(client: httpx.AsyncClient) -> None:
    await web_sign_up(client)
    refused = await post_form(client, "/business", {"name": ""})
    assert refused.status_code == 422
    assert 'id="f-name-error"' in refused.text


# --- roles: 403 for a member without the role, 404 for anyone else ------------------------------


async def test_each_page_needs_the_role_its_api_action_needs(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    oid = await create_org(client)
    base = f"/business/orgs/{oid}"
    async with browser(client) as viewer, browser(client) as stranger:
        viewer_email, _ = await verified_user(viewer, engine, sessions, name="Vera Viewer")
        await web_sign_up(stranger, name="Sam Stranger")
        await add_member(client, oid, viewer_email, "viewer")

        for tail in ("", "/members", "/payouts", "/exports", "/exports/movements.csv"):
            assert (await viewer.get(base + tail)).status_code == 200, tail
        for tail in ("/api-keys", "/allowlist", "/audit", "/exports/audit-log.csv"):
            refused = await viewer.get(base + tail)
            assert refused.status_code == 403, tail
            assert "Not available to your role" in refused.text
        # The viewer sees neither the funding form nor the admin's links.
        overview = (await viewer.get(base)).text
        assert "Fund treasury" not in overview
        assert f'href="{base}/api-keys"' not in overview
        # Forms too: refused before anything happens (the role is checked before the form).
        fields = hidden_fields((await viewer.get(base + "/members")).text)
        refused = await viewer.post(base + "/fundings", data={**fields, "amount": "10.00"})
        assert refused.status_code == 403
        refused = await upload(viewer, oid, _csv("a@example.com,1.00,USD,"), fields)
        assert refused.status_code == 403
        assert await _batches(engine, oid) == 0

        # Not a member: the organisation does not exist for them.
        for tail in ("", "/members", "/payouts", "/api-keys", "/exports/movements.csv"):
            missing = await stranger.get(base + tail)
            assert missing.status_code == 404, tail
            assert "Organisation not found" in missing.text
            assert "Acme Ltd" not in missing.text
        assert (await stranger.get(f"/business/orgs/{uuid.uuid4()}")).status_code == 404
        assert (await stranger.get("/business/orgs/not-a-uuid/members")).status_code == 404


async def test_members_are_managed_and_the_last_admin_stays(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    _, admin_id = await verified_user(client, engine, sessions)
    oid = await create_org(client)
    base = f"/business/orgs/{oid}"
    unknown = await post_form(
        client, base + "/members", {"email": "nobody-here@example.com", "role": "member"}
    )
    assert unknown.status_code == 404
    assert "No diBoaS user has this email address" in unknown.text

    demote = await post_form(
        client, f"{base}/members/{admin_id}/role", {"role": "viewer"}, form_page=base + "/members"
    )
    assert demote.status_code == 409
    assert "The organisation needs at least one admin" in demote.text
    remove = await post_form(
        client, f"{base}/members/{admin_id}/remove", {}, form_page=base + "/members"
    )
    assert remove.status_code == 409
    leave = await post_form(client, f"{base}/leave", {}, form_page=base + "/members")
    assert leave.status_code == 409

    async with browser(client) as other:
        email, other_id = await verified_user(other, engine, sessions, name="Mo Member")
    await add_member(client, oid, email, "member")
    promoted = await post_form(
        client, f"{base}/members/{other_id}/role", {"role": "admin"}, form_page=base + "/members"
    )
    assert promoted.headers["location"] == f"{base}/members?done=changed"
    # Now there are two admins: I may step down.
    stepped = await post_form(
        client, f"{base}/members/{admin_id}/role", {"role": "viewer"}, form_page=base + "/members"
    )
    assert stepped.status_code == 303
    assert (await client.get(base + "/api-keys")).status_code == 403


# --- CSRF -----------------------------------------------------------------------------------------


async def test_forms_without_the_csrf_token_are_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    await client.get("/business")  # the CSRF cookie is set
    refused = await client.post("/business", data={"name": "Forged Ltd"})
    assert refused.status_code == 403
    assert "This form has expired" in refused.text
    assert "Forged Ltd" not in (await client.get("/business")).text

    oid = await create_org(client)
    forged = await upload(client, oid, _csv("a@example.com,1.00,USD,"), {"csrf_token": "forged"})
    assert forged.status_code == 403
    assert "This form has expired" in forged.text
    missing = await upload(client, oid, _csv("a@example.com,1.00,USD,"), {})
    assert missing.status_code == 403
    assert await _batches(engine, oid) == 0


async def test_an_upload_past_the_limit_is_refused(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    oid = await create_org(client)
    huge = _csv(*[f"someone-{i}@example.com,1.00,USD,{'x' * 400}" for i in range(3000)])
    refused = await upload(client, oid, huge)
    assert refused.status_code == 413
    assert "too large" in refused.text
    assert await _batches(engine, oid) == 0


# --- the IP allow-list ----------------------------------------------------------------------------


async def test_the_allow_list_applies_to_the_pages(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    oid = await create_org(client)
    base = f"/business/orgs/{oid}"
    async with browser(client, OUTSIDE_IP) as outside:
        outside.cookies = client.cookies  # the same signed-in browser, from another network
        refused = await outside.get(base)
        assert refused.status_code == 403
        assert "Not allowed from this network" in refused.text
        assert f">{OUTSIDE_IP}<" in refused.text
        assert "Acme Ltd" not in refused.text
        async with engine.connect() as conn:
            audited = await conn.execute(
                text("""SELECT count(*) FROM audit_log WHERE action = 'business.ip_refused'
                         AND subject_id = :id"""),
                {"id": oid},
            )
            assert audited.scalar_one() == 1
        # The landing page is no organisation's: it still answers.
        assert (await outside.get("/business")).status_code == 200

        allowed = await post_form(
            client, base + "/allowlist", {"cidr": "203.0.113.0/24", "label": "office"}
        )
        assert allowed.headers["location"] == f"{base}/allowlist?done=added"
        assert (await outside.get(base)).status_code == 200

        # Removing the network your own address is allowed by is refused, as in the API.
        listing = await outside.get(base + "/allowlist")
        assert f">{OUTSIDE_IP}<" in listing.text
        entry = re.search(r'action="[^"]*/allowlist/([0-9a-f-]{36})/remove"', listing.text)
        assert entry is not None
        locked = await outside.post(
            f"{base}/allowlist/{entry.group(1)}/remove", data=hidden_fields(listing.text)
        )
        assert locked.status_code == 422
        assert "would refuse your own address" in locked.text
        assert (await outside.get(base)).status_code == 200
        # From loopback (allowed besides the list in development and test) it may go.
        removed = await post_form(
            client, f"{base}/allowlist/{entry.group(1)}/remove", {}, form_page=base + "/allowlist"
        )
        assert removed.status_code == 303
        assert (await outside.get(base)).status_code == 403

    bad = await post_form(client, base + "/allowlist", {"cidr": "10.0.0.1/8"})
    assert bad.status_code == 422
    assert 'id="f-cidr-error"' in bad.text


# --- API keys -------------------------------------------------------------------------------------


async def test_an_api_key_is_shown_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions)
    oid = await create_org(client)
    base = f"/business/orgs/{oid}"
    form = await client.get(base + "/api-keys")
    fields = hidden_fields(form.text)
    data = {**fields, "name": "Payroll <system>", "scopes": ["payouts:read", "treasury:read"]}
    created = await client.post(base + "/api-keys", data=data)
    assert created.status_code == 201
    assert created.headers["cache-control"] == "no-store"
    secret = re.search(r'value="(dbk_[0-9a-f]{12}_[A-Za-z0-9_-]{43})"', created.text)
    assert secret is not None
    key = secret.group(1)
    api = f"/api/v1/business/organisations/{oid}"
    headers = {"Authorization": f"Bearer {key}"}
    assert (await client.get(api + "/treasury", headers=headers)).status_code == 200
    assert (await client.get(api + "/members", headers=headers)).status_code == 403  # scope

    # The same form sent again makes no second key and never shows the secret again.
    again = await client.post(base + "/api-keys", data=data)
    assert again.status_code == 200
    assert key not in again.text
    assert "shown once" in again.text
    listing = await client.get(base + "/api-keys")
    assert key not in listing.text
    assert listing.text.count('data-testid="key-row"') == 1
    assert "Payroll &lt;system&gt;" in listing.text

    no_scope = await post_form(client, base + "/api-keys", {"name": "nothing"})
    assert no_scope.status_code == 422

    unknown = await client.post(
        f"{base}/api-keys/{uuid.uuid4()}/revoke", data=hidden_fields(listing.text)
    )
    assert unknown.status_code == 404
    assert "No such API key" in unknown.text
    revoke = re.search(r'action="([^"]*/api-keys/[0-9a-f-]{36}/revoke)"', listing.text)
    assert revoke is not None
    revoked = await client.post(revoke.group(1), data=hidden_fields(listing.text))
    assert revoked.status_code == 303
    assert (await client.get(api + "/treasury", headers=headers)).status_code == 401
    assert "revoked" in (await client.get(base + "/api-keys")).text


# --- treasury and payouts -------------------------------------------------------------------------


async def test_an_invalid_file_gets_its_report_and_cannot_be_executed(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    await verified_user(client, engine, sessions, money="100.00")
    oid = await create_org(client)
    assert (await fund_treasury(client, oid, "50.00")).status_code == 303
    async with browser(client) as other:
        payee, _ = await verified_user(other, engine, sessions, name="Paula Payee")
    report = await upload(
        client,
        oid,
        _csv(
            f"{payee},10.00,USD,ok",
            "not-an-email,5.00,USD,",
            f"{payee},1.001,USD,",
            "nobody-at-all@example.com,5.00,USD,",
            f"{payee},45.00,USD,too much",
        ),
    )
    assert report.status_code == 303
    batch_url = report.headers["location"]
    page = await client.get(batch_url)
    assert page.status_code == 200
    assert page.text.count('data-status="invalid"') == 4
    assert page.text.count('data-status="ok"') == 1
    for code in (
        "invalid_email",
        "invalid_amount",
        "unknown_recipient",
        "insufficient_treasury_balance",
    ):
        assert f"({code})" in page.text
    assert "Execute payouts" not in page.text
    assert "cannot be executed" in page.text
    executed = await post_form(client, batch_url + "/execute", {}, form_page=batch_url)
    assert executed.status_code == 422
    assert await _treasury(engine, oid) == Decimal("50.00")

    header = await upload(client, oid, b"email,amount\r\nx@example.com,1.00\r\n")
    assert header.status_code == 422
    assert 'role="alert"' in header.text


async def test_a_batch_is_paid_once(
    client: httpx.AsyncClient, engine: AsyncEngine, sessions: SessionFactory
) -> None:
    _, admin_id = await verified_user(client, engine, sessions, money="300.00")
    oid = await create_org(client)
    base = f"/business/orgs/{oid}"

    # Funding the treasury from my balance, once per form.
    form = await client.get(base)
    data = {**hidden_fields(form.text), "amount": "200.00", "note": "seed"}
    assert (await client.post(base + "/fundings", data=data)).status_code == 303
    assert (await client.post(base + "/fundings", data=data)).status_code == 303
    assert await _treasury(engine, oid) == Decimal("200.00")
    assert await balance(engine, admin_id) == Decimal("100.00")
    too_much = await fund_treasury(client, oid, "500.00")
    assert too_much.status_code in (402, 409, 422)
    assert 'role="alert"' in too_much.text

    payees = []
    async with browser(client) as other:
        for name in ("Ann Payee", "Ben Payee"):
            email, user_id = await verified_user(other, engine, sessions, name=name)
            payees.append((email, user_id))
            await other.post("/app/logout", data=hidden_fields((await other.get("/app")).text))
    content = _csv(f"{payees[0][0]},60.00,USD,June", f"{payees[1][0]},40.50,USD,June")
    page = await client.get(base + "/payouts")
    fields = hidden_fields(page.text)
    first = await upload(client, oid, content, fields)
    assert first.status_code == 303
    # The upload form sent twice makes one batch.
    second = await upload(client, oid, content, fields)
    assert second.headers["location"] == first.headers["location"]
    assert await _batches(engine, oid) == 1
    # The same file in a new form is a new batch, marked as the same file as the first.
    third = await upload(client, oid, content)
    earlier = first.headers["location"].rsplit("/", 1)[1]
    assert third.headers["location"].endswith(f"?duplicate_of={earlier}")
    assert (
        "The very same file was uploaded before"
        in (await client.get(third.headers["location"])).text
    )
    assert await _batches(engine, oid) == 2

    batch_url = first.headers["location"]
    report = await client.get(batch_url)
    assert report.text.count('data-status="ok"') == 2
    assert "Execute payouts" in report.text
    assert "100.50 USD" in report.text
    assert await _treasury(engine, oid) == Decimal("200.00")  # nothing moved yet

    executed = await post_form(client, batch_url + "/execute", {}, form_page=batch_url)
    assert executed.headers["location"] == batch_url + "?done=paid&rows=2"
    again = await post_form(client, batch_url + "/execute", {}, form_page=batch_url)
    assert again.headers["location"] == batch_url + "?done=already"
    assert await balance(engine, payees[0][1]) == Decimal("60.00")
    assert await balance(engine, payees[1][1]) == Decimal("40.50")
    assert await _treasury(engine, oid) == Decimal("99.50")

    paid = await client.get(batch_url + "?done=already")
    assert "was paid already" in paid.text
    assert paid.text.count('data-status="completed"') == 2
    assert "Execute payouts" not in paid.text
    listing = await client.get(base + "/payouts")
    assert "completed" in listing.text

    movements = await client.get(base + "/exports/movements.csv")
    assert movements.status_code == 200
    assert movements.headers["content-type"].startswith("text/csv")
    assert "attachment" in movements.headers["content-disposition"]
    assert payees[0][0] in movements.text
    audit_csv = await client.get(base + "/exports/audit-log.csv")
    assert "business.payout_batch_executed" in audit_csv.text
    audit_page = await client.get(base + "/audit")
    assert "business.export_downloaded" in audit_page.text
    assert "business.treasury_funded" in audit_page.text
    await assert_ledger_clean(engine)
