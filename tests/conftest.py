from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest

from dispatcher.config import Settings

from .databases import POSTGRES_ADMIN_URL, Databases, postgres_problem
from .harness import AppServer
from .pgcluster import pg_cluster  # noqa: F401 - a PostgreSQL server of the test's own

# `make test` runs the suite on pytest-xdist workers (--dist loadgroup). Each worker has its
# own session fixtures: its own template databases (named by its pid, databases.py) and free
# ports of its own (harness.free_port). Tests marked xdist_group("heavy") start several
# processes or a PostgreSQL server each and load the machine for tens of seconds: they all run
# on one worker, one after another, so that no two of them load the machine at once.

ADMIN_TOKEN = "test-admin-token-0123456789"
# Settings every test server starts from: fast retries, private targets allowed.
TEST_SETTINGS: dict[str, object] = {
    "admin_token": ADMIN_TOKEN,
    "allow_private_targets": True,
    "retry_schedule": (0.2, 0.4),
    "retry_jitter": 0.0,
    "delivery_timeout_seconds": 5.0,
    "poll_interval_seconds": 0.2,
}


ENGINES = [e.strip() for e in os.environ.get(
    "DISPATCHER_TEST_ENGINES", "sqlite,postgresql").split(",") if e.strip()]
_postgres: dict[str, str | None] = {}


def _postgres_problem() -> str | None:
    if "problem" not in _postgres:
        _postgres["problem"] = postgres_problem()
    return _postgres["problem"]


@pytest.fixture(scope="session", params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    """Every test that touches a database runs once per engine."""
    if request.param == "postgresql" and _postgres_problem() is not None:
        if os.environ.get("DISPATCHER_TEST_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required but does not answer: {_postgres_problem()}")
        pytest.skip(f"PostgreSQL does not answer at {POSTGRES_ADMIN_URL}: {_postgres_problem()}")
    return request.param


@pytest.fixture(scope="session")
def databases(engine: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    made = Databases(engine, tmp_path_factory.mktemp(engine))
    yield made
    made.close()


@pytest.fixture
def database_url(databases: Databases) -> Iterator[str]:
    url = databases.new()
    yield url
    databases.drop(url)


def pytest_report_header() -> str:
    if "postgresql" not in ENGINES:
        return "engines: " + ", ".join(ENGINES) + " (PostgreSQL not asked for)"
    problem = _postgres_problem()
    if problem is None:
        return f"engines: {', '.join(ENGINES)} (PostgreSQL at {POSTGRES_ADMIN_URL})"
    return f"engines: sqlite only -- PostgreSQL SKIPPED, it does not answer: {problem}"


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if "postgresql" in ENGINES and _postgres_problem() is not None:
        terminalreporter.write_line(
            f"PostgreSQL SKIPPED: {POSTGRES_ADMIN_URL} does not answer "
            f"({_postgres_problem()}); only SQLite was tested.", yellow=True, bold=True)


@pytest.fixture
def make_settings(database_url: str) -> Callable[..., Settings]:
    def make(**overrides: object) -> Settings:
        values = {**TEST_SETTINGS, "database_url": database_url, **overrides}
        return Settings(**values)  # type: ignore[arg-type]

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app_server(settings: Settings) -> Iterator[AppServer]:
    with AppServer(settings) as server:
        yield server


@pytest.fixture
def serve(make_settings: Callable[..., Settings]) -> Callable[..., Any]:
    """``with serve(**overrides) as admin:`` an app of its own, and an admin client for it."""

    @contextmanager
    def start(**overrides: object) -> Iterator[httpx.Client]:
        with AppServer(make_settings(**overrides)) as server, httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
        ) as client:
            yield client

    return start


@pytest.fixture
def admin(app_server: AppServer) -> Iterator[httpx.Client]:
    """An HTTP client for the running app, with the admin key."""
    with httpx.Client(
        base_url=app_server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30
    ) as client:
        yield client


@pytest.fixture
def client_for(app_server: AppServer) -> Iterator[Callable[[str], httpx.Client]]:
    """Clients for the running app with a given API key (or none: pass "")."""
    made: list[httpx.Client] = []

    def make(key: str) -> httpx.Client:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        client = httpx.Client(base_url=app_server.url, headers=headers, timeout=30)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
