"""Health, readiness, OpenAPI, migrations, start-up with no configuration."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys

import httpx
import pytest

from dispatcher import migrate

from .harness import ServeProcess, poll


def test_health_and_readiness(app_server):
    assert httpx.get(app_server.url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(app_server.url + "/readyz").status_code == 200


def test_readiness_fails_while_the_database_does_not_answer(make_settings, databases):
    from .harness import AppServer

    settings = make_settings(database_url=databases.unreachable_url(),
                             db_connect_timeout_seconds=1)
    with AppServer(settings, workers=False) as server:
        ready = httpx.get(server.url + "/readyz")
        assert ready.status_code == 503
        assert ready.json()["error"]["code"] == "database_unavailable"
        assert httpx.get(server.url + "/healthz").status_code == 200


def test_openapi_and_docs(app_server):
    spec = httpx.get(app_server.url + "/openapi.json").json()
    for path in ("/v1/events", "/v1/subscriptions", "/v1/subscriptions/{sub_id}/test",
                 "/v1/deliveries", "/v1/deliveries/{delivery_id}/attempts",
                 "/v1/deliveries/{delivery_id}/retry", "/v1/api-keys", "/healthz", "/readyz"):
        assert path in spec["paths"], path
    assert "202" in spec["paths"]["/v1/events"]["post"]["responses"]
    docs = httpx.get(app_server.url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def _tables(path) -> set[str]:
    with sqlite3.connect(path) as db:
        return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_db_upgrade_creates_the_schema_from_migrations(tmp_path):
    path = tmp_path / "fresh.db"
    env = {"DISPATCHER_DATABASE_URL": f"sqlite+aiosqlite:///{path}", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-m", "dispatcher.cli", "db", "upgrade"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert {"api_key", "subscription", "event", "delivery", "attempt",
            "alembic_version"} <= _tables(path)
    with sqlite3.connect(path) as db:
        version = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    assert version == migrate.head()


@pytest.mark.slow
def test_serve_with_no_configuration_migrates_and_prints_an_admin_key(tmp_path):
    path = tmp_path / "empty.db"
    server = ServeProcess(f"sqlite+aiosqlite:///{path}", tmp_path / "serve.log",
                          DISPATCHER_ADMIN_TOKEN="")
    server.env.pop("DISPATCHER_ADMIN_TOKEN")
    server.start()
    try:
        key = poll(lambda: re.search(r"DISPATCHER_ADMIN_TOKEN=(\S+)", server.log()), 10)[1]
        headers = {"authorization": f"Bearer {key}"}
        assert httpx.get(server.url + "/v1/api-keys", headers=headers).status_code == 200
        assert "delivery" in _tables(path)
    finally:
        assert server.stop() == 0
    # A second start finds the admin key and prints none.
    again = ServeProcess(f"sqlite+aiosqlite:///{path}", tmp_path / "serve2.log")
    again.env.pop("DISPATCHER_ADMIN_TOKEN")
    again.start()
    try:
        assert "DISPATCHER_ADMIN_TOKEN=" not in again.log()
    finally:
        assert again.stop() == 0
