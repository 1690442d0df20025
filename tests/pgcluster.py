"""A PostgreSQL server of a test's own, to stop and restart at will.

``initdb`` in a temporary folder, ``pg_ctl start`` on a free port of 127.0.0.1 (its Unix
socket in that folder too), trust authentication, no fsync: the shared server at 5432 is
left alone. PostgreSQL refuses to run as root, so as root the binaries run as the
``postgres`` OS user, in a folder that user owns.

    with PgCluster() as cluster:    # or the ``pg_cluster`` fixture (conftest.py has it)
        url = cluster.create_database("app")
        cluster.restart()
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import free_port

BIN = Path(os.environ.get("DISPATCHER_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def cluster_problem() -> str | None:
    """None when a cluster of our own can be made here, else why not."""
    for tool in ("initdb", "pg_ctl", "postgres"):
        if not (BIN / tool).exists():
            return f"no {BIN / tool}"
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root and there is no postgres OS user to run PostgreSQL as"
    return None


SESSION_NAME = "held_open"  # the application_name of PgCluster.session()


class PgCluster:
    """One PostgreSQL server: ``start``, ``stop``, ``restart``; removed on exit."""

    def __init__(self) -> None:
        self.port = free_port()
        self.folder = Path(tempfile.mkdtemp(prefix="dispatcher-pg-"))
        self.data = self.folder / "data"
        self.log_path = self.folder / "server.log"
        self.as_postgres: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]

    def _run(self, *argv: str, timeout: float = 60) -> str:
        done = subprocess.run([*self.as_postgres, *argv], capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): "
                               f"{done.stdout}{done.stderr}")
        return done.stdout

    def init(self) -> None:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(self.port),
            "unix_socket_directories": f"'{self.folder}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "32MB",
        }
        with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run(str(BIN / "pg_ctl"), "start", "-w", "-t", "30", "-D", str(self.data),
                  "-l", str(self.log_path))

    def stop(self, mode: str = "fast", wait: bool = True) -> None:
        """``mode``: smart (waits for sessions to end), fast (ends them), immediate."""
        self._run(str(BIN / "pg_ctl"), "stop", "-w" if wait else "-W", "-t", "30",
                  "-m", mode, "-D", str(self.data))

    def restart(self, mode: str = "fast") -> None:
        self._run(str(BIN / "pg_ctl"), "restart", "-w", "-t", "30", "-m", mode,
                  "-D", str(self.data), "-l", str(self.log_path))

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def url(self, database: str = "postgres", driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://postgres@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run ``sql`` over the Unix socket; its output, unaligned; RuntimeError if it fails."""
        return self._run(str(BIN / "psql"), "-h", str(self.folder), "-p", str(self.port),
                         "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1", "-tA",
                         "-c", sql, timeout=30)

    def session(self) -> subprocess.Popen[str]:
        """An interactive ``psql`` session over the Unix socket, idle until its stdin gets
        SQL; it ends when stdin is closed. It holds a "smart" shutdown open. Its
        ``application_name`` is ``SESSION_NAME``, to tell it from the service's own sessions."""
        return subprocess.Popen(
            [*self.as_postgres, str(BIN / "psql"), "-h", str(self.folder), "-p", str(self.port),
             "-U", "postgres", "-d", f"dbname=postgres application_name={SESSION_NAME}", "-q"],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            text=True)

    def create_database(self, name: str) -> str:
        """A new, empty database; its SQLAlchemy URL."""
        self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def server_log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def close(self) -> None:
        try:
            if self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        try:
            self.init()
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@pytest.fixture
def pg_cluster() -> Iterator[PgCluster]:
    """A running PostgreSQL server of this test's own; skipped where none can be made
    (failed when DISPATCHER_TEST_REQUIRE_POSTGRES is set)."""
    problem = cluster_problem()
    if problem is not None:
        if os.environ.get("DISPATCHER_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"a PostgreSQL cluster of the test's own is required: {problem}")
        pytest.skip(f"no PostgreSQL cluster of our own: {problem}")
    with PgCluster() as cluster:
        yield cluster
