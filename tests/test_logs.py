"""The log: JSON lines (or text) with one line per attempt, carrying its ids, and never a
secret."""

from __future__ import annotations

import io
import json
import logging
import re
from datetime import UTC, datetime

import httpx
import pytest

from dispatcher import logs

from .conftest import ADMIN_TOKEN
from .harness import Receiver, Reply, ServeProcess, poll

ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
FAST = {"DISPATCHER_RETRY_SCHEDULE": "0.2,0.4", "DISPATCHER_RETRY_JITTER": "0",
        "DISPATCHER_POLL_INTERVAL_SECONDS": "0.2"}
URL_SECRET = "url-secret-query-4f1c9a"
HEADER_SECRET = "custom-header-value-8d2e7b"
TEXT_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")


def subscribe(base: str, url: str, **fields: object) -> dict:
    answer = httpx.post(base + "/v1/subscriptions", headers=ADMIN, json={"url": url, **fields})
    assert answer.status_code == 201, answer.text
    return answer.json()


def publish(base: str, key: str, event_type: str) -> dict:
    answer = httpx.post(base + "/v1/events", json={"type": event_type, "data": {"n": 1}},
                        headers={"authorization": f"Bearer {key}"})
    assert answer.status_code == 202, answer.text
    return answer.json()


def deliveries(base: str) -> list[dict]:
    return httpx.get(base + "/v1/deliveries", headers=ADMIN,
                     params={"limit": 500}).json()["data"]


def attempts_of(base: str, delivery_id: str) -> list[dict]:
    answer = httpx.get(base + f"/v1/deliveries/{delivery_id}/attempts", headers=ADMIN)
    assert answer.status_code == 200, answer.text
    return answer.json()["data"]


def all_settled(base: str, count: int) -> list[dict] | None:
    found = deliveries(base)
    return found if len(found) == count and all(
        d["status"] != "pending" for d in found) else None


@pytest.mark.slow
def test_json_log_has_one_line_per_attempt_with_its_ids_and_no_secret(tmp_path, database_url):
    server = ServeProcess(database_url, tmp_path / "serve.log",
                          DISPATCHER_LOG_FORMAT="json", **FAST).start()
    secrets = [ADMIN_TOKEN, URL_SECRET, HEADER_SECRET]
    try:
        # First a 500 (retried), then 200; a redirect that quotes the URL's secret query.
        with Receiver(lambda n, r: Reply(500 if n == 1 else 200)) as flaky, \
                Receiver(lambda n, r: Reply(302, headers={
                    "location": f"https://elsewhere.example/hook?token={URL_SECRET}"})) \
                as moved:
            base = server.url
            key = httpx.post(base + "/v1/api-keys", headers=ADMIN,
                             json={"role": "publisher", "name": "billing"}).json()["key"]
            first = subscribe(base, f"{flaky.url}?token={URL_SECRET}", event_types=["a.*"],
                              headers={"x-api-key": HEADER_SECRET})
            second = subscribe(base, f"{moved.url}?token={URL_SECRET}", event_types=["b.*"])
            rotated = httpx.post(base + f"/v1/subscriptions/{first['id']}/rotate-secret",
                                 headers=ADMIN).json()
            secrets += [key, first["secret"], second["secret"], rotated["secret"]]
            events = [publish(base, key, "a.one"), publish(base, key, "b.one")]
            found = poll(lambda: all_settled(base, 2), 15, 0.1, message="2 settled")
            assert flaky.requests[0].headers["x-api-key"] == HEADER_SECRET
            stored = {a["id"]: (d, a) for d in found for a in attempts_of(base, d["id"])}
            assert len(stored) == 3  # 500 then 200; the redirect fails at once
    finally:
        assert server.stop() == 0, server.log()

    lines = [json.loads(line) for line in server.log().splitlines()]
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    for line in lines:
        assert datetime.fromisoformat(line["time"]).tzinfo == UTC
    per_attempt = [line for line in lines if "attempt_id" in line]
    assert sorted(line["attempt_id"] for line in per_attempt) == sorted(stored)
    for line in per_attempt:
        delivery, attempt = stored[line["attempt_id"]]
        assert line["level"] == "info" and line["logger"] == "dispatcher.worker"
        assert line["event_id"] == delivery["event_id"]
        assert line["event_id"] in {e["id"] for e in events}
        assert line["delivery_id"] == delivery["id"]
        assert line["subscription_id"] == delivery["subscription_id"]
        for field in ("number", "trigger", "status_code", "duration_ms", "outcome"):
            assert line[field] == attempt[field], field
        assert "next_attempt_at" in line and "delivery_status" in line and "error" in line
    retried = [line for line in per_attempt if line["subscription_id"] == first["id"]]
    assert [(r["status_code"], r["delivery_status"]) for r in sorted(
        retried, key=lambda r: r["number"])] == [(500, "pending"), (200, "succeeded")]
    assert sorted(retried, key=lambda r: r["number"])[0]["next_attempt_at"].endswith("Z")
    redirect = next(line for line in per_attempt if line["subscription_id"] == second["id"])
    assert redirect["status_code"] == 302 and "elsewhere.example" in redirect["error"]
    # uvicorn's own lines are in the same format.
    assert any(line["logger"] == "uvicorn.access" and "POST /v1/events" in line["message"]
               for line in lines)
    assert any(line["logger"] == "uvicorn.error" for line in lines)

    text = server.log()
    for secret in secrets:
        for form in (secret, secret.removeprefix("whsec_")):
            assert form not in text, "a secret is in the log"
    assert flaky.url not in text and moved.url not in text  # nor any subscription URL


@pytest.mark.slow
def test_text_log_has_the_ids_as_key_values(tmp_path, database_url):
    server = ServeProcess(database_url, tmp_path / "serve.log", **FAST).start()
    try:
        with Receiver() as ok:
            base = server.url
            sub = subscribe(base, ok.url)
            event = httpx.post(base + "/v1/events", headers=ADMIN,
                               json={"type": "a.b", "data": {}}).json()
            delivery = poll(lambda: all_settled(base, 1), 15, 0.1, message="delivered")[0]
            attempt = attempts_of(base, delivery["id"])[0]
    finally:
        assert server.stop() == 0, server.log()
    lines = server.log().splitlines()
    assert all(TEXT_LINE.match(line) for line in lines), lines
    mine = [line for line in lines if f"attempt_id={attempt['id']}" in line]
    assert len(mine) == 1
    assert " INFO dispatcher.worker: " in mine[0]
    for part in (f"event_id={event['id']}", f"delivery_id={delivery['id']}",
                 f"subscription_id={sub['id']}", "number=1", "trigger=scheduled",
                 "status_code=200", "outcome=succeeded", "delivery_status=succeeded",
                 "next_attempt_at=-", "error=-"):
        assert part in mine[0], part
    assert any(" INFO uvicorn.access: " in line and "POST /v1/events" in line
               for line in lines)


@pytest.mark.slow
def test_at_warning_no_line_per_attempt(tmp_path, database_url):
    server = ServeProcess(database_url, tmp_path / "serve.log", DISPATCHER_LOG_LEVEL="warning",
                          DISPATCHER_LOG_FORMAT="json", **FAST).start()
    try:
        with Receiver() as ok:
            subscribe(server.url, ok.url)
            httpx.post(server.url + "/v1/events", headers=ADMIN,
                       json={"type": "a.b", "data": {}})
            poll(lambda: all_settled(server.url, 1), 15, 0.1, message="delivered")
    finally:
        assert server.stop() == 0, server.log()
    assert "attempt_id" not in server.log()


def _formatted(formatter: logging.Formatter, emit) -> str:
    """What ``emit`` logs, through ``formatter`` (the one ``logs.configure`` installs)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    log = logging.getLogger("dispatcher.test")
    log.addHandler(handler)
    try:
        emit(log)
    finally:
        log.removeHandler(handler)
    return stream.getvalue()


def test_json_lines_carry_exceptions_and_cut_urls_in_errors():
    def emit(log: logging.Logger) -> None:
        try:
            raise ValueError("bad thing")
        except ValueError:
            log.exception("it broke", extra={"delivery_id": "dlv_1", "error": (
                "redirect not followed (location: https://user:pw@host.example:8443/p/"
                "T0/B0/secretpath?token=abc#frag)"), "next_attempt_at": datetime(
                    2025, 1, 31, 9, 30, tzinfo=UTC), "unrelated": "x"})

    line = json.loads(_formatted(logs.JsonFormatter(), emit))
    assert line["level"] == "error" and line["logger"] == "dispatcher.test"
    assert line["message"] == "it broke" and line["delivery_id"] == "dlv_1"
    assert "Traceback" in line["exc_info"] and "ValueError: bad thing" in line["exc_info"]
    assert line["error"] == "redirect not followed (location: https://host.example:8443/…)"
    assert line["next_attempt_at"] == "2025-01-31T09:30:00.000Z"
    assert "unrelated" not in line


def test_text_lines_quote_values_with_spaces():
    out = _formatted(logs.TextFormatter(), lambda log: log.warning(
        "hello", extra={"attempt_id": "att_1", "status_code": None, "error": 'a "b" c'}))
    assert out.rstrip("\n").endswith(
        ' WARNING dispatcher.test: hello attempt_id=att_1 status_code=- error="a \\"b\\" c"')
