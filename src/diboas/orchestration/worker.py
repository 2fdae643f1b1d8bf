"""The job worker: PgQueuer's QueueManager with every registered job, retries with
exponential backoff, and a dead-letter state (``failed``) for jobs out of attempts."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
import structlog
from pgqueuer import QueueManager
from pgqueuer.db import AsyncpgDriver
from pgqueuer.executors import DatabaseRetryEntrypointExecutor, EntrypointExecutorParameters
from pgqueuer.models import Job
from pgqueuer.queries import Queries

from diboas.db.engine import SessionFactory
from diboas.db.urls import plain_url
from diboas.orchestration.jobs import PERIODIC, REGISTRY, JobContext, JobSpec, PeriodicSpec
from diboas.settings import Settings

log = structlog.get_logger(__name__)


def load_job_modules() -> None:
    """Import every module that registers jobs."""
    from diboas import tasks  # noqa: F401 - imported for its registrations


def _executor(spec: JobSpec) -> Any:
    def factory(parameters: EntrypointExecutorParameters) -> DatabaseRetryEntrypointExecutor:
        return DatabaseRetryEntrypointExecutor(
            parameters=parameters,
            max_attempts=spec.max_attempts,
            initial_delay=timedelta(milliseconds=500),
            max_delay=timedelta(minutes=5),
        )

    return factory


class Worker:
    """Runs jobs until stopped. One per process; several processes may run at once."""

    def __init__(
        self,
        database_url: str,
        sessions: SessionFactory,
        settings: Settings,
        services: dict[str, Any],
    ) -> None:
        self.database_url = database_url
        self.sessions = sessions
        self.settings = settings
        self.services = services
        self._manager: QueueManager | None = None
        self._connection: asyncpg.Connection | None = None

    async def run(self, *, drain: bool = False) -> None:
        """Process jobs (until ``stop``, or until the queue is empty with ``drain``)."""
        load_job_modules()
        self._connection = await asyncpg.connect(plain_url(self.database_url))
        manager = QueueManager(Queries(AsyncpgDriver(self._connection)))
        self._manager = manager
        for spec in REGISTRY.values():
            manager.entrypoint(
                spec.name,
                concurrency_limit=spec.concurrency_limit,
                on_failure="hold",  # out of attempts: kept as 'failed' (dead letter) for operators
                executor_factory=_executor(spec),
            )(self._handler(spec))
        from pgqueuer.types import QueueExecutionMode

        repeating = (
            [] if drain else [asyncio.create_task(self._repeat(p)) for p in PERIODIC.values()]
        )
        try:
            await manager.run(
                dequeue_timeout=timedelta(seconds=1),
                batch_size=10,
                heartbeat_timeout=timedelta(seconds=self.settings.job_heartbeat_timeout_seconds),
                mode=QueueExecutionMode.drain if drain else QueueExecutionMode.continuous,
            )
        finally:
            for task in repeating:
                task.cancel()
            await asyncio.gather(*repeating, return_exceptions=True)
            await self._connection.close()

    async def _repeat(self, spec: PeriodicSpec) -> None:
        context = JobContext(self.sessions, self.settings, 0, self.services)
        while True:
            try:
                await spec.handler(context)
            except Exception:
                log.exception("periodic work failed", work=spec.name)
            await asyncio.sleep(spec.every(self.settings))

    def _handler(self, spec: JobSpec) -> Any:
        async def handle(job: Job) -> None:
            payload = json.loads(job.payload or b"{}")
            context = JobContext(self.sessions, self.settings, job.attempts, self.services)
            structlog.contextvars.bind_contextvars(
                job=spec.name, job_id=int(job.id), attempt=job.attempts
            )
            try:
                await spec.handler(context, payload)
            except Exception:
                log.exception("job failed", job=spec.name)
                raise
            finally:
                structlog.contextvars.unbind_contextvars("job", "job_id", "attempt")

        return handle

    def stop(self) -> None:
        """Ask the worker to finish the jobs in hand and return."""
        if self._manager is not None:
            self._manager.shutdown.set()


async def run_until_cancelled(worker: Worker) -> None:
    """Run a worker as a background task that stops cleanly when cancelled."""
    try:
        await worker.run()
    except asyncio.CancelledError:
        worker.stop()
        raise
