"""Ledger transfer throughput: the application's transfer path against raw SQL in pgbench.

Both sides run the same transfer on the same freshly migrated database, in alternating
rounds, at the same concurrency: pgbench runs bench/transfer.pgbench (lock both balance
rows in id order, insert the entry and its two postings, commit) and the application runs
``service.transfer`` through ``run_in_transaction`` on an asyncpg engine. The ratio of the
medians is the figure DESIGN.md §6 sets a target for; the ledger is verified at the end.

Environment: ``DIBOAS_BENCH_DATABASE_URL`` (else ``DIBOAS_DATABASE_URL``, else the embedded
PostgreSQL under .data/bench) names the server, ``DIBOAS_BENCH_SECONDS`` (default 10) the
length of each run and ``DIBOAS_BENCH_ROUNDS`` (default 3) the number of rounds.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path

import asyncpg
from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from diboas.db.embedded import EmbeddedPostgres, client_bin_dir
from diboas.db.engine import SessionFactory, create_engine, create_session_factory
from diboas.db.migrate import upgrade
from diboas.db.transactions import run_in_transaction
from diboas.db.urls import plain_url, with_database
from diboas.ledger import service
from diboas.ledger.models import Account, AccountKind, Domain, OwnerType
from diboas.ledger.verify import verify_ledger

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PGBENCH_SCRIPT = Path(__file__).with_name("transfer.pgbench")

ASSET = "USD"
ACCOUNTS = 1_000
FUNDING = Decimal("1000000.00")
SEED_BATCH = 100
CLIENTS = 32
PGBENCH_THREADS = 2
POOL_SIZE = CLIENTS + 2

_TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.MULTILINE)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Settings:
    """How long and how often to measure, from the environment."""

    seconds: int
    rounds: int

    @classmethod
    def from_env(cls) -> Settings:
        seconds = int(os.environ.get("DIBOAS_BENCH_SECONDS", "10"))
        rounds = int(os.environ.get("DIBOAS_BENCH_ROUNDS", "3"))
        if seconds < 1 or rounds < 1:
            raise ValueError("DIBOAS_BENCH_SECONDS and DIBOAS_BENCH_ROUNDS must be at least 1")
        return cls(seconds=seconds, rounds=rounds)


@dataclass(frozen=True, slots=True)
class Round:
    """One round's throughput on each side, in committed transfers per second."""

    pgbench: float
    in_process: float


@dataclass(frozen=True, slots=True)
class Outcome:
    """Everything the run measured and checked."""

    server_version: str
    rounds: list[Round]
    ledger_ok: bool
    ledger_summary: str


# --- the server and the database ------------------------------------------------------------


@contextmanager
def database_server() -> Iterator[tuple[str, str]]:
    """The server to measure on, as (URL, label): a configured one, or the embedded one."""
    for variable in ("DIBOAS_BENCH_DATABASE_URL", "DIBOAS_DATABASE_URL"):
        configured = os.environ.get(variable, "").strip()
        if configured:
            yield configured, "server"
            return
    embedded = EmbeddedPostgres(PROJECT_ROOT / ".data" / "bench")
    url = embedded.start()
    try:
        yield url, "embedded"
    finally:
        embedded.stop()


@asynccontextmanager
async def bench_database(server_url: str) -> AsyncIterator[URL]:
    """A fresh database on the server, migrated, and dropped at the end whatever happens."""
    name = f"diboas_bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(plain_url(with_database(server_url, "postgres")))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = with_database(server_url, name)
            await upgrade(url)
            yield url
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def server_version(url: URL) -> str:
    """The PostgreSQL server's version string."""
    conn = await asyncpg.connect(plain_url(url))
    try:
        return str(await conn.fetchval("SHOW server_version"))
    finally:
        await conn.close()


# --- seeding --------------------------------------------------------------------------------


async def _external_account(session: AsyncSession) -> Account:
    return await service.platform_account(session, asset=ASSET, kind=AccountKind.EXTERNAL)


async def _open_funded_accounts(
    session: AsyncSession, *, external: Account, count: int
) -> list[Account]:
    """Open ``count`` user accounts and fund each from the external account in one entry."""
    accounts = [
        await service.customer_account(
            session,
            owner_type=OwnerType.USER,
            owner_id=uuid.uuid4(),
            domain=Domain.BANKING,
            asset=ASSET,
        )
        for _ in range(count)
    ]
    postings = [(external, -FUNDING * count), *((account, FUNDING) for account in accounts)]
    await service.post_entry(session, kind="bench_seed", postings=postings)
    return accounts


async def seed(sessions: SessionFactory) -> list[Account]:
    """The funded user accounts both sides move money between; their ids are contiguous."""
    external = await run_in_transaction(sessions, _external_account)
    accounts: list[Account] = []
    for start in range(0, ACCOUNTS, SEED_BATCH):
        count = min(SEED_BATCH, ACCOUNTS - start)
        work = partial(_open_funded_accounts, external=external, count=count)
        accounts += await run_in_transaction(sessions, work)
    ids = [account.id for account in accounts]
    if ids != list(range(ids[0], ids[0] + len(ids))):
        raise RuntimeError("seeded account ids are not contiguous; pgbench cannot pick them")
    return accounts


# --- pgbench: the raw-SQL ceiling -----------------------------------------------------------


def _query_value(url: URL, key: str) -> str | None:
    value = url.query.get(key)
    if isinstance(value, tuple):
        return value[0] if value else None
    return value


def pgbench_invocation(
    url: URL, *, first_id: int, count: int, seconds: int
) -> tuple[list[str], dict[str, str]]:
    """The pgbench command line and environment for the transfer script on ``url``."""
    host = _query_value(url, "host") or url.host
    port = _query_value(url, "port") or (str(url.port) if url.port else None)
    command = [str(client_bin_dir() / "pgbench"), "-n"]
    command += ["-c", str(CLIENTS), "-j", str(PGBENCH_THREADS), "-T", str(seconds)]
    command += ["-f", str(PGBENCH_SCRIPT), "-D", f"first={first_id}", "-D", f"n={count}"]
    if host:
        command += ["-h", host]
    if port:
        command += ["-p", port]
    if url.username:
        command += ["-U", url.username]
    command.append(str(url.database))
    env = dict(os.environ, PGAPPNAME="diboas-bench-pgbench")
    if url.password:
        env["PGPASSWORD"] = url.password
    return command, env


def parse_pgbench(output: str) -> float:
    """Transactions per second from pgbench's report; refuses a run with failures."""
    failed = _FAILED.search(output)
    if failed and int(failed.group(1)):
        raise RuntimeError(f"pgbench: {failed.group(1)} failed transaction(s)\n{output}")
    match = _TPS.search(output)
    if match is None:
        raise RuntimeError(f"pgbench printed no tps figure:\n{output}")
    return float(match.group(1))


async def pgbench_round(url: URL, accounts: Sequence[Account], seconds: int) -> float:
    """Run pgbench for ``seconds``; its transfers per second without connection time."""
    command, env = pgbench_invocation(
        url, first_id=accounts[0].id, count=len(accounts), seconds=seconds
    )
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    stdout, stderr = await process.communicate()
    output = stdout.decode() + stderr.decode()
    if process.returncode != 0:
        raise RuntimeError(f"pgbench exited with {process.returncode}:\n{output}")
    return parse_pgbench(output)


# --- the application, in process ------------------------------------------------------------


def _random_amount() -> Decimal:
    return Decimal(random.randint(1, 100)).scaleb(-2)


async def _client(sessions: SessionFactory, accounts: Sequence[Account], deadline: float) -> int:
    """One client: transfers between random distinct accounts until the deadline."""
    done = 0
    while time.monotonic() < deadline:
        source, destination = random.sample(accounts, 2)
        work = partial(
            service.transfer, source=source, destination=destination, amount=_random_amount()
        )
        await run_in_transaction(sessions, work)
        done += 1
    return done


async def _warm_pool(engine: AsyncEngine, connections: int) -> None:
    """Open ``connections`` pooled connections at once, so no round pays for connecting."""
    barrier = asyncio.Barrier(connections)

    async def hold_one() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            await barrier.wait()

    await asyncio.gather(*(hold_one() for _ in range(connections)))


async def in_process_round(url: URL, accounts: Sequence[Account], seconds: int) -> float:
    """Run CLIENTS tasks through the ledger service for ``seconds``; transfers per second."""
    engine = create_engine(
        url, pool_size=POOL_SIZE, max_overflow=0, application_name="diboas-bench"
    )
    try:
        sessions = create_session_factory(engine)
        await _warm_pool(engine, CLIENTS)
        started = time.monotonic()
        deadline = started + seconds
        counts = await asyncio.gather(
            *(_client(sessions, accounts, deadline) for _ in range(CLIENTS))
        )
        elapsed = time.monotonic() - started
    finally:
        await engine.dispose()
    return sum(counts) / elapsed


# --- the run --------------------------------------------------------------------------------


async def verify(url: URL) -> tuple[bool, str]:
    """The ledger's own verification of everything the benchmark wrote."""
    engine = create_engine(url, pool_size=1, max_overflow=0, application_name="diboas-bench")
    try:
        async with engine.connect() as conn:
            report = await verify_ledger(conn)
        return report.ok, report.summary()
    finally:
        await engine.dispose()


async def seed_database(url: URL) -> list[Account]:
    """Seed the accounts on a short-lived engine and report how long it took."""
    engine = create_engine(url, pool_size=2, max_overflow=0, application_name="diboas-bench")
    try:
        started = time.monotonic()
        accounts = await seed(create_session_factory(engine))
    finally:
        await engine.dispose()
    print(
        f"seeded {len(accounts)} {ASSET} accounts of {FUNDING:,} each "
        f"in {time.monotonic() - started:.1f} s"
    )
    return accounts


async def measure(server_url: str, settings: Settings) -> Outcome:
    """Create, seed and measure a fresh database, then verify its ledger."""
    async with bench_database(server_url) as url:
        version = await server_version(url)
        print(f"PostgreSQL {version}, database {url.database}")
        accounts = await seed_database(url)
        rounds: list[Round] = []
        for number in range(1, settings.rounds + 1):
            raw = await pgbench_round(url, accounts, settings.seconds)
            app = await in_process_round(url, accounts, settings.seconds)
            rounds.append(Round(pgbench=raw, in_process=app))
            print(
                f"round {number}: pgbench {raw:8.1f} tps | in-process {app:8.1f} transfers/s"
                f" | {100 * app / raw:5.1f} %"
            )
        ok, summary = await verify(url)
    return Outcome(version, rounds, ok, summary)


def report(outcome: Outcome, settings: Settings, label: str) -> None:
    """Print the medians, their ratio and a README table row."""
    raw = statistics.median(r.pgbench for r in outcome.rounds)
    app = statistics.median(r.in_process for r in outcome.rounds)
    ratio = 100 * app / raw
    print(f"median: pgbench {raw:.1f} tps, in-process {app:.1f} transfers/s, ratio {ratio:.1f} %")
    today = datetime.now(UTC).date().isoformat()
    print("README row (date | PostgreSQL | clients | rounds | pgbench tps | in-process/s | %):")
    print(
        f"| {today} | {outcome.server_version} ({label}) | {CLIENTS} "
        f"| {len(outcome.rounds)} × {settings.seconds} s | {raw:.0f} | {app:.0f} | {ratio:.1f} % |"
    )
    print(outcome.ledger_summary)


def main() -> int:
    """Run the benchmark; non-zero when anything failed or the ledger does not verify."""
    settings = Settings.from_env()
    print(
        f"ledger throughput: {CLIENTS} clients, {settings.rounds} round(s) of "
        f"{settings.seconds} s each side, {ACCOUNTS} accounts"
    )
    with database_server() as (server_url, label):
        safe = make_url(server_url).render_as_string(hide_password=True)
        print(f"server: {safe} ({label})")
        outcome = asyncio.run(measure(server_url, settings))
    report(outcome, settings, label)
    return 0 if outcome.ledger_ok else 1


if __name__ == "__main__":
    sys.exit(main())
