from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from dispatcher import migrate
from dispatcher.config import Settings

from .harness import AppServer

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


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate.upgrade(f"sqlite+aiosqlite:///{path}")
    return path


@pytest.fixture
def database_url(tmp_path: Path, migrated_template: Path) -> str:
    path = tmp_path / "dispatcher.db"
    shutil.copy(migrated_template, path)
    return f"sqlite+aiosqlite:///{path}"


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
