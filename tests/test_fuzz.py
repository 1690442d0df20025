"""API fuzzing: schemathesis against our own ``/openapi.json``, on a real uvicorn server.

Every operation gets a bounded, deterministic set of generated requests, valid and invalid
(schemathesis' coverage cases plus ``FUZZ_EXAMPLES`` Hypothesis examples), sent with the
admin key. No answer may be a 5xx, and each one's status, content type, headers and body
must be what ``/openapi.json`` documents for that operation. Half the requests to a
``/{id}`` path use an id the server gave out earlier in the run, so the operations are
also fuzzed on real subscriptions, events, deliveries and keys, not only on 404s.

Nothing the fuzzer creates is ever delivered: the server runs without delivery workers
(``workers=False``), so the subscriptions it makes, with whatever URLs it generated, stay
rows in the database. ``POST /v1/subscriptions/{sub_id}/test`` is excluded: it sends a
request from the request handler itself, to the subscription's URL, which the fuzzer
would point at generated hosts. Its answers are tested with a receiver on 127.0.0.1
(test_bad_input.py, test_delivery.py).
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from schemathesis import checks

from dispatcher import ids
from dispatcher.api import create_app
from dispatcher.config import Settings

from .conftest import ADMIN_TOKEN, TEST_SETTINGS
from .databases import Databases
from .harness import AppServer

# Hypothesis examples per operation (on top of schemathesis' coverage cases). Keeps the
# whole run well under 2 minutes for both engines on 2 cores. A longer hunt:
# DISPATCHER_FUZZ_EXAMPLES=300 make test PYTEST_ARGS=tests/test_fuzz.py
FUZZ_EXAMPLES = int(os.environ.get("DISPATCHER_FUZZ_EXAMPLES", "50"))
FUZZ_SEED = int(os.environ.get("DISPATCHER_FUZZ_SEED", "20250131"))

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]


def _settings(database_url: str) -> Settings:
    return Settings(**{**TEST_SETTINGS, "database_url": database_url})  # type: ignore[arg-type]


def _documented_schema() -> dict[str, Any]:
    """What ``/openapi.json`` serves: FastAPI's ``app.openapi()``, which does not need the
    database. Schemathesis makes one test per operation when pytest collects, before any
    server runs; ``served`` checks that the running server serves exactly this. (Loading
    it from the server through ``schemathesis.pytest.from_fixture`` would be the other way,
    but schemathesis 4.32 renames pytest nodes through ``_nodeid``, gone in pytest 9.2.)"""
    return create_app(_settings("sqlite+aiosqlite://"), workers=False).openapi()


DOCUMENTED = _documented_schema()
schema = schemathesis.openapi.from_dict(DOCUMENTED, config=schemathesis.Config.from_dict({
    "seed": FUZZ_SEED,
    "headers": {"Authorization": f"Bearer {ADMIN_TOKEN}"},
    "request-timeout": 30,
    "generation": {
        "mode": "all",  # valid requests and invalid ones
        "max-examples": FUZZ_EXAMPLES,
        "deterministic": True,  # the same requests on every run
        "database": "none",  # no example database: no replay of an earlier run's failures
    },
})).exclude(
    # It sends a request from the handler to the subscription's URL (see the top).
    method="POST", path="/v1/subscriptions/{sub_id}/test",
)

# Path parameters, and where ids of their kind are learnt from answers.
PATH_IDS = {"sub_id": "sub", "event_id": "evt", "delivery_id": "dlv", "key_id": "key"}
ID_FIELDS = ("id", "subscription_id", "event_id")


class Served:
    """The server under test, and the ids it gave out (to use in ``/{id}`` paths)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.known: dict[str, list[str]] = defaultdict(list)
        self.turns: dict[str, Iterator[int]] = defaultdict(itertools.count)

    def use_known_ids(self, case: schemathesis.Case) -> None:
        """Every other case of an operation with an id in its path gets a known id."""
        names = [n for n in PATH_IDS if n in (case.path_parameters or {})]
        if not names:
            return
        turn = next(self.turns[case.operation.label])
        for name in names:
            pool = self.known[PATH_IDS[name]]
            if turn % 2 and pool:
                case.path_parameters[name] = pool[(turn // 2) % len(pool)]

    def learn_ids(self, case: schemathesis.Case, response: Any) -> None:
        media = response.headers.get("content-type", [""])[0]
        if not 200 <= response.status_code < 300 or not media.startswith("application/json"):
            return  # ids come in JSON bodies (/metrics answers in text)
        body = response.json()
        rows = body.get("data", [body]) if isinstance(body, dict) else []
        for row in rows:
            for field in ID_FIELDS:
                value = row.get(field) if isinstance(row, dict) else None
                # Key ids only from keys the fuzzer made: never the admin key it runs with.
                if not isinstance(value, str) or value.startswith("key_") and not (
                    case.method == "POST" and case.path == "/v1/api-keys"
                ):
                    continue
                prefix = value.partition("_")[0]
                if ids.is_id(value, prefix) and value not in self.known[prefix]:
                    self.known[prefix].append(value)


@pytest.fixture(scope="module")
def served(databases: Databases) -> Iterator[Served]:
    """One real server per engine for the whole module; what the fuzzer makes piles up."""
    url = databases.new()
    try:
        # workers=False: no delivery loop, so nothing the fuzzer creates is ever sent.
        with AppServer(_settings(url), workers=False) as server:
            assert requests.get(server.url + "/openapi.json", timeout=10).json() == DOCUMENTED
            yield Served(server.url)
            # And nothing was sent: none of the deliveries the run made has an attempt.
            made = requests.get(server.url + "/v1/deliveries", params={"limit": 500},
                                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)
            assert made.status_code == 200, made.text
            assert all(d["attempts"] == 0 for d in made.json()["data"])
    finally:
        databases.drop(url)


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


@schema.parametrize()
def test_api_matches_its_schema(
    case: schemathesis.Case, served: Served, http: requests.Session
) -> None:
    served.use_known_ids(case)
    response = case.call_and_validate(base_url=served.url, session=http, checks=CHECKS)
    served.learn_ids(case, response)
