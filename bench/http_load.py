"""HTTP load: fee quote, balance and P2P transfer at 32 concurrent clients (DESIGN §6).

The platform runs as in production — ``diboas serve`` (uvicorn, the in-process job worker)
in a subprocess on loopback — against a fresh database on the benchmark server (the same
handling as ``bench.ledger_throughput``), with rate limits off and ``DIBOAS_ENV=test``; its
log goes to .data/bench/http-load-server.log. 32 senders sign up and sign in through the
API, 96 recipients sign up; KYC tier 1 and the senders' money (USD, BTC, ETH, USDC) are set
up directly in the database. Then, in each round, pgbench measures the raw-SQL transfer
ceiling of the same database, and 32 clients (``aiohttp.ClientSession``, one keep-alive
connection each, one sender each) call each endpoint in turn for a fixed time: a card
deposit fee quote, the balance, and a 0.01-0.10 USD transfer to a random recipient under a
fresh ``Idempotency-Key``. The report gives the medians over the rounds of p50/p95/p99
latency (from request to full response, as the client sees it) and throughput per endpoint
against the DESIGN §6 budgets, and the HTTP transfer rate as a share of pgbench's; the
ledger is verified at the end.

Environment: as ``bench.ledger_throughput`` (``DIBOAS_BENCH_DATABASE_URL``,
``DIBOAS_BENCH_SECONDS`` default 10, ``DIBOAS_BENCH_ROUNDS`` default 3). The exit status is
non-zero when a request failed, the server did not start, or the ledger does not verify;
a missed budget is reported, not fatal (the figures depend on the machine and its load).
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncSession

from bench.ledger_throughput import (
    PROJECT_ROOT,
    Settings,
    bench_database,
    database_server,
    pgbench_round,
    seed_database,
    server_version,
    verify,
)
from diboas.db.engine import create_engine, create_session_factory
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url
from diboas.ledger import service as ledger
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType

CLIENTS = 32
# Transfers go from each client's user to one of RECIPIENTS other users: P2P payments among
# distinct people, not 32 clients paying each other (which would make every transfer wait
# on another's row locks, a contention real traffic does not have).
RECIPIENTS = 96
PASSWORD = "bench-load-passphrase-31"  # noqa: S105 - throwaway users of a throwaway database
# Each client's user holds money in every domain, so a balance read values several assets.
FUNDING = (
    (Domain.BANKING, "USD", Decimal("100000.00")),
    (Domain.INVESTING, "BTC", Decimal("0.25")),
    (Domain.INVESTING, "ETH", Decimal("3.5")),
    (Domain.DEFI, "USDC", Decimal("2500.000000")),
)
SIGN_UP_CONCURRENCY = 4
STARTUP_SECONDS = 90.0
SHUTDOWN_SECONDS = 20.0
REQUEST_TIMEOUT_SECONDS = 30.0
TOKEN_TTL_SECONDS = 6 * 3600
API = "/api/v1"
TRANSFERS_PATH = f"{API}/banking/transfers"
LOG_DIR = PROJECT_ROOT / ".data" / "bench"

# DESIGN §6: p95 at 32 concurrent clients, and HTTP transfers at >= 25 % of pgbench.
BUDGETS_MS = {"fee quote": 50.0, "balance": 100.0, "transfer": 200.0}
TRANSFER_SHARE_TARGET = 25.0


# --- measurements ---------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, round(q / 100 * len(ordered) + 0.5 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


@dataclass(frozen=True, slots=True)
class Run:
    """One endpoint for one round: latencies of the successful requests (ms) and failures."""

    endpoint: str
    latencies_ms: list[float]
    failures: list[str]
    seconds: float

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.latencies_ms, q)


@dataclass(frozen=True, slots=True)
class Summary:
    """Medians over the rounds for one endpoint."""

    endpoint: str
    p50: float
    p95: float
    p99: float
    throughput: float
    requests: int

    @classmethod
    def of(cls, runs: Sequence[Run]) -> Summary:
        return cls(
            endpoint=runs[0].endpoint,
            p50=statistics.median(r.p(50) for r in runs),
            p95=statistics.median(r.p(95) for r in runs),
            p99=statistics.median(r.p(99) for r in runs),
            throughput=statistics.median(r.throughput for r in runs),
            requests=sum(len(r.latencies_ms) for r in runs),
        )


# --- the server -----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def platform_server(url: URL) -> AsyncIterator[str]:
    """``diboas serve`` on a free loopback port in a subprocess; yields its base URL."""
    port = _free_port()
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / "http-load-server.log"
    base = f"http://127.0.0.1:{port}"
    with (
        log_path.open("wb") as log,
        tempfile.TemporaryDirectory(prefix="diboas-http-load-") as data_dir,
    ):
        env = dict(
            os.environ,
            DIBOAS_DATABASE_URL=plain_url(url),
            DIBOAS_HOST="127.0.0.1",
            DIBOAS_PORT=str(port),
            DIBOAS_ENV="test",
            DIBOAS_RATE_LIMITS_ENABLED="false",
            # Sign-up emails land in the sandbox outbox under the data dir: a throwaway one.
            DIBOAS_DATA_DIR=data_dir,
            DIBOAS_EMAIL_PROVIDER="sandbox",
            # Tokens signed in at the start must outlive every round, whatever their length.
            DIBOAS_ACCESS_TOKEN_TTL_SECONDS=str(TOKEN_TTL_SECONDS),
        )
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "diboas.cli", "serve", env=env, stdout=log, stderr=log
        )
        try:
            await _wait_until_ready(base, process, log_path)
            print(f"server: pid {process.pid} on {base} (log: {log_path})")
            yield base
        finally:
            await _stop(process)


async def _wait_until_ready(base: str, process: asyncio.subprocess.Process, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    async with httpx.AsyncClient(base_url=base, timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                break
            try:
                if (await client.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    tail = (await asyncio.to_thread(log.read_text, errors="replace"))[-4000:]
    raise RuntimeError(f"the server did not become ready (exit {process.returncode}):\n{tail}")


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.terminate()  # SIGTERM: uvicorn shuts down cleanly, then the CLI exits
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


# --- users ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BenchUser:
    """A signed-in user of the benchmark."""

    id: uuid.UUID
    email: str
    headers: dict[str, str]


async def sign_up_users(base: str, count: int, *, sign_in: bool) -> list[BenchUser]:
    """Register ``count`` users through the API (a few at a time), signed in when asked."""
    run_id = uuid.uuid4().hex[:8]
    gate = asyncio.Semaphore(SIGN_UP_CONCURRENCY)

    async def one(client: httpx.AsyncClient, n: int) -> BenchUser:
        email = f"bench-{run_id}-{n}@example.com"
        headers: dict[str, str] = {}
        async with gate:
            registered = await client.post(
                f"{API}/auth/register",
                json={"email": email, "password": PASSWORD, "full_name": f"Bench User {n}"},
            )
            if registered.status_code != 201:
                raise RuntimeError(f"register: {registered.status_code} {registered.text}")
            if sign_in:
                login = await client.post(
                    f"{API}/auth/login", json={"email": email, "password": PASSWORD}
                )
                if login.status_code != 200:
                    raise RuntimeError(f"login: {login.status_code} {login.text}")
                headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
        return BenchUser(uuid.UUID(registered.json()["id"]), email, headers)

    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        return list(await asyncio.gather(*(one(client, n) for n in range(count))))


async def _approve_and_fund(
    session: AsyncSession, senders: Sequence[BenchUser], recipients: Sequence[BenchUser]
) -> None:
    await session.execute(
        text("UPDATE users SET kyc_tier = 1, kyc_status = 'approved' WHERE id = ANY(:ids)"),
        {"ids": [user.id for user in (*senders, *recipients)]},
    )
    for domain, asset, amount in FUNDING:
        external = await ledger.platform_account(session, asset=asset, kind=AccountKind.EXTERNAL)
        accounts: list[Account] = [
            await ledger.customer_account(
                session, owner_type=OwnerType.USER, owner_id=user.id, domain=domain, asset=asset
            )
            for user in senders
        ]
        postings = [(external, -amount * len(accounts)), *((a, amount) for a in accounts)]
        await ledger.post_entry(session, kind="bench_seed", postings=postings)


async def prepare_users(
    url: URL, senders: Sequence[BenchUser], recipients: Sequence[BenchUser]
) -> None:
    """Everyone at KYC tier 1; each sender funded in every domain (one transaction)."""
    engine = create_engine(url, pool_size=1, max_overflow=0, application_name="diboas-bench")
    try:
        await run_in_transaction(
            create_session_factory(engine), lambda s: _approve_and_fund(s, senders, recipients)
        )
    finally:
        await engine.dispose()


# --- the load -------------------------------------------------------------------------------

# The load itself goes through aiohttp: on a 2-core machine the client shares the CPU with the
# server and PostgreSQL, and httpx costs about twice aiohttp's CPU per request, which would be
# charged to the server's latency.
Call = Callable[[aiohttp.ClientSession, BenchUser], Awaitable[tuple[int, str]]]


def _cents(low: int, high: int) -> str:
    return str(Decimal(random.randint(low, high)).scaleb(-2))


async def _send(
    client: aiohttp.ClientSession, method: str, path: str, headers: dict[str, str], body: Any = None
) -> tuple[int, str]:
    async with client.request(method, path, json=body, headers=headers) as response:
        return response.status, await response.text()


def quote_call(client: aiohttp.ClientSession, user: BenchUser) -> Awaitable[tuple[int, str]]:
    body = {"operation": "deposit", "amount": _cents(100, 100_000), "currency": "USD"}
    return _send(client, "POST", f"{API}/fees/quote", user.headers, body)


def balance_call(client: aiohttp.ClientSession, user: BenchUser) -> Awaitable[tuple[int, str]]:
    return _send(client, "GET", f"{API}/balances", user.headers)


def transfer_call_to(recipients: Sequence[BenchUser]) -> Call:
    """A transfer of 0.01-0.10 USD to a random recipient, under a fresh Idempotency-Key."""

    def call(client: aiohttp.ClientSession, user: BenchUser) -> Awaitable[tuple[int, str]]:
        recipient = random.choice(recipients)
        headers = {**user.headers, "Idempotency-Key": str(uuid.uuid4())}
        body = {"recipient_email": recipient.email, "amount": _cents(1, 10), "currency": "USD"}
        return _send(client, "POST", TRANSFERS_PATH, headers, body)

    return call


async def load(
    base: str,
    endpoint: str,
    call: Call,
    expected: int,
    senders: Sequence[BenchUser],
    seconds: float,
) -> Run:
    """CLIENTS clients, each a user with its own keep-alive connection, calling until the deadline."""
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_SECONDS)
    clients = [
        aiohttp.ClientSession(
            base_url=base, timeout=timeout, connector=aiohttp.TCPConnector(limit=1)
        )
        for _ in senders
    ]
    latencies: list[float] = []
    failures: list[str] = []
    try:
        # One call each first, so that connecting is not measured.
        pairs = list(zip(clients, senders, strict=True))
        warm = await asyncio.gather(*(call(c, u) for c, u in pairs))
        failures += [
            f"warm-up {status}: {text[:300]}" for status, text in warm if status != expected
        ]

        async def client_loop(
            client: aiohttp.ClientSession, user: BenchUser, deadline: float
        ) -> None:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                status, text = await call(client, user)
                elapsed = (time.perf_counter() - started) * 1000
                if status == expected:
                    latencies.append(elapsed)
                else:
                    failures.append(f"{status}: {text[:300]}")

        started = time.perf_counter()
        deadline = started + seconds
        await asyncio.gather(*(client_loop(c, u, deadline) for c, u in pairs))
        elapsed = time.perf_counter() - started
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    return Run(endpoint, latencies, failures, elapsed)


async def has_route(base: str, path: str) -> bool:
    """Whether the running app serves ``path`` (per its OpenAPI document)."""
    async with httpx.AsyncClient(base_url=base, timeout=REQUEST_TIMEOUT_SECONDS) as client:
        document = (await client.get(f"{API}/openapi.json")).json()
    return path in document.get("paths", {})


# --- the run --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """Everything the run measured and checked."""

    server_version: str
    runs: dict[str, list[Run]]
    pgbench: list[float]
    transfers_served: bool
    ledger_ok: bool = False
    ledger_summary: str = ""

    @property
    def failures(self) -> list[str]:
        return [f for runs in self.runs.values() for r in runs for f in r.failures]


async def measure(server_url: str, settings: Settings) -> Outcome:
    """A fresh database, the server on it, users, then the rounds; the ledger verified."""
    async with bench_database(server_url) as url:
        version = await server_version(url)
        print(f"PostgreSQL {version}, database {url.database}")
        accounts = await seed_database(url)  # pgbench's accounts
        async with platform_server(url) as base:
            started = time.monotonic()
            senders = await sign_up_users(base, CLIENTS, sign_in=True)
            recipients = await sign_up_users(base, RECIPIENTS, sign_in=False)
            await prepare_users(url, senders, recipients)
            funded = ", ".join(f"{amount} {asset}" for _, asset, amount in FUNDING)
            print(
                f"{CLIENTS} senders ({funded} each) and {RECIPIENTS} recipients signed up "
                f"through the API at KYC tier 1 ({time.monotonic() - started:.1f} s)"
            )
            transfers = await has_route(base, TRANSFERS_PATH)
            scenarios: list[tuple[str, Call, int]] = [
                ("fee quote", quote_call, 201),
                ("balance", balance_call, 200),
            ]
            if transfers:
                scenarios.append(("transfer", transfer_call_to(recipients), 201))
            else:
                print(f"{TRANSFERS_PATH} is not served by this build: transfers not measured")
            outcome = Outcome(version, {name: [] for name, _, _ in scenarios}, [], transfers)
            for number in range(1, settings.rounds + 1):
                raw = await pgbench_round(url, accounts, settings.seconds)
                outcome.pgbench.append(raw)
                line = [f"round {number}: pgbench {raw:7.1f} tps"]
                for name, call, expected in scenarios:
                    run = await load(base, name, call, expected, senders, settings.seconds)
                    outcome.runs[name].append(run)
                    line.append(
                        f"{name} p95 {run.p(95):6.1f} ms {run.throughput:7.1f}/s"
                        + (f" ({len(run.failures)} failed)" if run.failures else "")
                    )
                print(" | ".join(line))
        outcome.ledger_ok, outcome.ledger_summary = await verify(url)
    return outcome


def report(outcome: Outcome, settings: Settings, label: str) -> None:
    """The Markdown table for the README, and the transfer share of pgbench."""
    today = datetime.now(UTC).date().isoformat()
    print(
        f"\nHTTP load, {today}, PostgreSQL {outcome.server_version} ({label}), {CLIENTS} clients,"
        f" medians of {len(outcome.pgbench)} round(s) × {settings.seconds} s per endpoint\n"
    )
    print("| endpoint | p50 ms | p95 ms | p99 ms | requests/s | p95 budget | |")
    print("|---|---:|---:|---:|---:|---:|---|")
    summaries = {name: Summary.of(runs) for name, runs in outcome.runs.items() if runs}
    for name, s in summaries.items():
        budget = BUDGETS_MS[name]
        verdict = "within" if s.p95 < budget else "**over**"
        print(
            f"| {name} | {s.p50:.1f} | {s.p95:.1f} | {s.p99:.1f} | {s.throughput:.0f} "
            f"| < {budget:.0f} ms | {verdict} |"
        )
    raw = statistics.median(outcome.pgbench)
    if "transfer" in summaries:
        share = 100 * summaries["transfer"].throughput / raw
        verdict = "within" if share >= TRANSFER_SHARE_TARGET else "**under**"
        print(
            f"\nHTTP transfers: {summaries['transfer'].throughput:.0f}/s = {share:.1f} % of the "
            f"pgbench raw-SQL transfer ceiling ({raw:.0f} tps, same database, same run); "
            f"target ≥ {TRANSFER_SHARE_TARGET:.0f} % ({verdict})"
        )
    else:
        print(f"\npgbench raw-SQL transfers: {raw:.0f} tps; HTTP transfers not measured")
    print(outcome.ledger_summary)


def _run(work: Coroutine[Any, Any, Outcome]) -> Outcome:
    # The load generator shares two cores with the server and PostgreSQL: uvloop (a runtime
    # dependency, uvicorn's loop too) keeps its own overhead down.
    try:
        import uvloop
    except ImportError:
        return asyncio.run(work)
    return uvloop.run(work)


def main() -> int:
    """Run the benchmark; non-zero when a request failed or the ledger does not verify."""
    settings = Settings.from_env()
    print(
        f"HTTP load: {CLIENTS} clients, {settings.rounds} round(s) of {settings.seconds} s "
        "per endpoint, after pgbench on the same database"
    )
    with database_server() as (server_url, label):
        safe = make_url(server_url).render_as_string(hide_password=True)
        print(f"database server: {safe} ({label})")
        outcome = _run(measure(server_url, settings))
    report(outcome, settings, label)
    failures = outcome.failures
    if failures:
        print(f"{len(failures)} request(s) failed; first ones:", *failures[:5], sep="\n  ")
    return 0 if outcome.ledger_ok and not failures else 1


if __name__ == "__main__":
    sys.exit(main())
