"""The `diboas` command."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import click

from diboas.settings import Settings, get_settings


@contextmanager
def database(settings: Settings) -> Iterator[str]:
    """The database URL to use: the configured server, or the embedded one (started here)."""
    if not settings.embedded_database:
        yield settings.database_url
        return
    from diboas.db.embedded import EmbeddedPostgres

    embedded = EmbeddedPostgres(settings.data_dir)
    url = embedded.start()
    try:
        yield url
    finally:
        embedded.stop()


def _configure(settings: Settings) -> None:
    from diboas.observability.logging import configure_logging

    configure_logging(settings.log_level)


@click.group()
def main() -> None:
    """diBoaS: a unified finance platform on a double-entry ledger."""


@main.command()
def migrate() -> None:
    """Apply the database migrations and create the partitions ahead."""
    from diboas.db.migrate import upgrade

    settings = get_settings()
    _configure(settings)
    with database(settings) as url:
        asyncio.run(upgrade(url, months_ahead=settings.partition_months_ahead))
    click.echo("database is up to date")


def _interrupt_on_sigterm(signum: int, frame: object) -> None:
    # uvicorn re-raises the signal it stopped on once it has shut down; SIGTERM then ends
    # like Ctrl-C, unwinding through `database()`, which stops the embedded PostgreSQL.
    raise KeyboardInterrupt


def _serve(settings: Settings, url: str) -> None:
    import uvicorn

    signal.signal(signal.SIGTERM, _interrupt_on_sigterm)
    from diboas.api.app import create_app

    if settings.web_concurrency > 1:
        # Several processes: uvicorn imports the app in each from the environment, so the
        # resolved database URL (the embedded server's socket included) travels there.
        os.environ["DIBOAS_DATABASE_URL"] = url
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.run(
                "diboas.api.app:app_from_environment",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.web_concurrency,
                log_config=None,
            )
        return
    app = create_app(settings, database_url=url)
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_config=None, lifespan="on"
    )
    with contextlib.suppress(KeyboardInterrupt):  # a requested stop is a clean exit
        uvicorn.Server(config).run()


@main.command()
def serve() -> None:
    """Serve the HTTP API (migrations must already be applied)."""
    settings = get_settings()
    _configure(settings)
    with database(settings) as url:
        _serve(settings, url)


@main.command()
def run() -> None:
    """All in one: database (embedded unless configured), migrations, demo data, the server."""
    from diboas.chain import setup as chain_setup
    from diboas.db.migrate import upgrade

    settings = get_settings()
    _configure(settings)
    with database(settings) as url:
        asyncio.run(upgrade(url, months_ahead=settings.partition_months_ahead))
        # With DIBOAS_CHAIN_RPC_URL: the platform's contracts, deployed once (nothing without).
        settings = chain_setup.prepare(settings)
        if settings.demo_data and settings.env != "production":
            summary = asyncio.run(_seed_demo(url))
            click.echo(
                f"\n  diBoaS is starting on http://{settings.host}:{settings.port}\n"
                f"  demo user: {summary.email} / {summary.password}"
                f" (USD balance {summary.usd_balance})\n"
                f"  API docs: http://{settings.host}:{settings.port}/api/v1/docs\n"
                "  Ctrl-C stops everything; the data stays for next time.\n"
            )
        _serve(settings, url)


async def _seed_demo(url: str):  # type: ignore[no-untyped-def]
    from diboas import demo
    from diboas.db.engine import create_engine, create_session_factory

    engine = create_engine(url, pool_size=2)
    try:
        return await demo.seed(create_session_factory(engine))
    finally:
        await engine.dispose()


@main.command()
def worker() -> None:
    """Run durable jobs (as many worker processes as you like, beside `serve`)."""
    settings = get_settings()
    _configure(settings)
    with database(settings) as url, contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_work(settings, url))


async def _work(settings: Settings, url: str) -> None:
    from diboas.db.engine import create_engine, create_session_factory
    from diboas.orchestration.worker import Worker
    from diboas.realtime.events import HUB_KEY
    from diboas.realtime.hub import hub_for

    engine = create_engine(url, pool_size=settings.db_pool_size)
    # Live updates from a separate worker reach the API processes only through Redis.
    hub = hub_for(settings.redis_url)
    await hub.start()
    try:
        sessions = create_session_factory(engine, info={HUB_KEY: hub})
        await Worker(url, sessions, settings, {}).run()
    finally:
        await engine.dispose()
        await hub.close()


@main.group()
def jobs() -> None:
    """Durable jobs: the dead letters, one job's history, putting failed jobs back."""


@jobs.command("list")
@click.option(
    "--status",
    default="failed",
    show_default=True,
    type=click.Choice(["failed", "queued", "picked"]),
    help="which jobs",
)
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000))
def jobs_list(status: str, limit: int) -> None:
    """Jobs in a status, newest first (failed = out of attempts, kept for an operator)."""
    from diboas.orchestration import operator

    for view in _with_connection(lambda conn: operator.jobs(conn, status=status, limit=limit)):
        click.echo(
            f"{view.id}\t{view.entrypoint}\t{view.status}\tattempts={view.attempts}\t"
            f"created={view.created.isoformat()}\t{json.dumps(view.payload, default=str)}"
        )


@jobs.command("show")
@click.argument("job_id", type=int)
def jobs_show(job_id: int) -> None:
    """One job: its payload and every status change, with the error of each failure."""
    from diboas.kit.errors import NotFoundError
    from diboas.orchestration import operator

    try:
        view = _with_connection(lambda conn: operator.job(conn, job_id))
    except NotFoundError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        json.dumps(
            {
                "id": view.id,
                "entrypoint": view.entrypoint,
                "status": view.status,
                "attempts": view.attempts,
                "created": view.created.isoformat(),
                "payload": view.payload,
                "history": view.history,
            },
            indent=2,
            default=str,
        )
    )


@jobs.command("retry")
@click.argument("job_ids", type=int, nargs=-1, required=True)
def jobs_retry(job_ids: tuple[int, ...]) -> None:
    """Queue failed jobs again now (attempts reset). Jobs are idempotent, so this is safe."""
    from diboas.orchestration import operator

    count = _with_connection(lambda conn: operator.retry(conn, list(job_ids)), commit=True)
    click.echo(f"{count} job(s) queued again")
    if count < len(job_ids):
        raise click.ClickException("some ids are not failed jobs: nothing done for them")


def _with_connection(work: Any, *, commit: bool = False) -> Any:
    from diboas.db.engine import create_engine

    settings = get_settings()

    async def run(url: str) -> Any:
        engine = create_engine(url, pool_size=1)
        try:
            async with engine.connect() as conn:
                result = await work(conn)
                if commit:
                    await conn.commit()
                return result
        finally:
            await engine.dispose()

    with database(settings) as url:
        return asyncio.run(run(url))


@main.group()
def ledger() -> None:
    """Ledger operations."""


@ledger.command("verify")
def ledger_verify() -> None:
    """Check every entry balances, balances match postings, and hash chains are intact."""
    settings = get_settings()
    with database(settings) as url:
        ok, summary = asyncio.run(_verify(url))
    click.echo(summary)
    sys.exit(0 if ok else 1)


async def _verify(url: str) -> tuple[bool, str]:
    from diboas.db.engine import create_engine
    from diboas.ledger.verify import verify_ledger

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.connect() as conn:
            report = await verify_ledger(conn)
        return report.ok, report.summary()
    finally:
        await engine.dispose()


@main.command()
def partitions() -> None:
    """Create the monthly partitions of the growing tables ahead of time."""
    settings = get_settings()
    with database(settings) as url:
        created = asyncio.run(_partitions(url, settings.partition_months_ahead))
    click.echo(f"{created} partition(s) created")


async def _partitions(url: str, months_ahead: int) -> int:
    from diboas.db.engine import create_engine
    from diboas.db.migrate import ensure_partitions

    engine = create_engine(url, pool_size=1)
    try:
        async with engine.begin() as conn:
            return await ensure_partitions(conn, months_ahead=months_ahead)
    finally:
        await engine.dispose()


@main.command()
def maintain() -> None:
    """Housekeeping: expire holds past their time and purge idempotency keys past 24 hours."""
    settings = get_settings()
    with database(settings) as url:
        expired, purged = asyncio.run(_maintain(url))
    click.echo(f"{expired} hold(s) expired, {purged} idempotency key(s) purged")


async def _maintain(url: str) -> tuple[int, int]:
    from diboas.db.engine import create_engine, create_session_factory
    from diboas.db.transactions import run_in_transaction
    from diboas.ledger import holds, idempotency

    engine = create_engine(url, pool_size=1)
    sessions = create_session_factory(engine)
    try:
        expired = await run_in_transaction(
            sessions, lambda s: holds.expire_holds(s, now=datetime.now(UTC))
        )
        purged = await run_in_transaction(sessions, idempotency.purge_expired)
        return expired, purged
    finally:
        await engine.dispose()


@main.group()
def keys() -> None:
    """Data-at-rest encryption keys: re-seal under the current version, rows per version."""


@keys.command("reseal")
@click.option("--batch-size", default=100, show_default=True, type=click.IntRange(1, 10_000))
def keys_reseal(batch_size: int) -> None:
    """Re-seal every bank account number and custody key under the current key version (and
    make fingerprints again), in batches, while the platform serves. Safe to run again."""
    from diboas.ops import keys as key_ops

    settings = get_settings()
    _configure(settings)
    with database(settings) as url:
        reports, status = asyncio.run(key_ops.reseal_database(url, settings, batch_size=batch_size))
    for report in reports:
        click.echo(
            f"{report.table}: {report.resealed} row(s) re-sealed in {report.batches} batch(es)"
        )
        for row_id in report.unavailable:
            click.echo(f"  {row_id}: its key version is not configured, left as it is")
        for row_id in report.kept_fingerprint:
            click.echo(f"  {row_id}: duplicate of another active account, fingerprint kept")
    for line in status.lines():
        click.echo(line)
    sys.exit(1 if status.missing else 0)


@keys.command("status")
def keys_status() -> None:
    """Rows per key version; exit 1 if a version in use is not configured."""
    from diboas.ops import keys as key_ops

    settings = get_settings()
    with database(settings) as url:
        status = asyncio.run(key_ops.status_of_database(url, settings))
    for line in status.lines():
        click.echo(line)
    sys.exit(1 if status.missing else 0)


if __name__ == "__main__":
    main()
