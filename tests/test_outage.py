"""The database goes away mid-run and comes back: nothing stops for good, nothing is lost."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import make_url

from .databases import scalar
from .harness import Receiver, Reply, TcpProxy, poll

pytestmark = [
    pytest.mark.slow,
    pytest.mark.parametrize("engine", ["postgresql"], indirect=True),
]


def test_readyz_and_delivery_through_a_database_outage(serve, database_url):
    real = make_url(database_url)
    with TcpProxy(real.host, real.port) as proxy, \
            Receiver(lambda n, r: Reply(200, delay=0.2)) as receiver:
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(False)
        with serve(database_url=proxied, db_connect_timeout_seconds=2,
                   db_command_timeout_seconds=5, poll_interval_seconds=0.5) as admin:
            assert admin.get("/readyz").status_code == 200
            admin.post("/v1/subscriptions", json={"url": receiver.url}).raise_for_status()
            accepted = [admin.post("/v1/events", json={"type": "a.b", "data": {"n": n}})
                        for n in range(20)]
            assert {a.status_code for a in accepted} == {202}

            proxy.down()  # mid-flight: attempts cannot be recorded, claims fail
            poll(lambda: admin.get("/readyz").status_code == 503, 20,
                 message="/readyz says 503 while the database is away")
            refused = admin.post("/v1/events", json={"type": "a.b"})
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "database_unavailable"

            proxy.up()
            poll(lambda: admin.get("/readyz").status_code == 200, 30,
                 message="/readyz says 200 once the database is back")
            after = admin.post("/v1/events", json={"type": "a.b", "data": {"n": 99}})
            assert after.status_code == 202
            ids = {a.json()["id"] for a in accepted} | {after.json()["id"]}
            poll(lambda: scalar(database_url, "SELECT count(*) FROM delivery "
                                              "WHERE status = 'succeeded'") == len(ids), 60,
                 message="every accepted event delivered")
        assert ids <= set(receiver.ids())
